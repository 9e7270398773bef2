"""A no-op Serve deployment with the same HTTP surface as ``/v1/predict``: the benchmark's floor.

It reads and parses the JSON body (as the real route must) and answers a constant flat signal,
so a latency beside it measures what the ensemble adds over Serve's own HTTP path.
"""

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from ray import serve
from ray.serve.deployment import Application

__all__ = ["NoopAPI", "build_noop_app", "noop_api"]

noop_api = FastAPI(title="Redline no-op", version="1")

_ANSWER = {"signal": {"direction": 0, "score": 0.0, "confidence": 0.0, "reason": "no-op"}}


@serve.deployment(name="NoopAPI", max_ongoing_requests=32)
@serve.ingress(noop_api)
class NoopAPI:
    @noop_api.post("/v1/predict")
    async def predict(self, request: Request) -> dict[str, Any]:
        body = await request.json()
        return {"symbol": body.get("symbol") if isinstance(body, dict) else None, **_ANSWER}

    @noop_api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}


def build_noop_app(deployment: Mapping[str, Any] | None = None) -> Application:
    """The bound no-op deployment; ``deployment`` are Serve deployment options."""
    options = {"ray_actor_options": {"num_cpus": 1}, **(deployment or {})}
    return NoopAPI.options(**options).bind()  # type: ignore[attr-defined]
