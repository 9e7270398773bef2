"""The Ray session: a local Ray started on demand, or the cluster named by address/RAY_ADDRESS.

Ray 2.60 turns token authentication on for a local cluster and keeps the token in
``~/.ray/auth_token`` (or ``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH``); the driver, its workers and
``ray job submit`` read it from there, so Redline passes nothing itself.
"""

from __future__ import annotations

import logging
import os

import ray

logger = logging.getLogger(__name__)


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect once per process; a second call is a no-op."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=None, logging_level=logging.WARNING)
    logger.info("Ray: %s CPUs", ray.cluster_resources().get("CPU"))
