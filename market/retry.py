"""Retrying a call that fails with ``RetryLater``: exponential backoff that honours ``Retry-After``.

One loop for every client that talks to a service over the network (the ccxt adapter, the Fear &
Greed fetch), so that both wait, log and give up the same way. Time is a dependency: ``sleep``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from market.errors import RetryLater

__all__ = ["check_backoff", "with_retries"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def check_backoff(max_retries: int, backoff_initial_s: float, backoff_max_s: float) -> None:
    """ValueError naming the setting unless ``max_retries >= 0`` and ``0 <= initial <= max``."""
    if max_retries < 0:
        raise ValueError(f"max_retries must be 0 or more; got {max_retries}")
    if backoff_initial_s < 0 or backoff_max_s < backoff_initial_s:
        raise ValueError(
            "backoff must satisfy 0 <= backoff_initial_s <= backoff_max_s; "
            f"got {backoff_initial_s} and {backoff_max_s}"
        )


def with_retries(
    call: Callable[[], T],
    *,
    what: str,
    max_retries: int,
    backoff: tuple[float, float],
    sleep: Callable[[float], None],
    log: logging.Logger = logger,
) -> T:
    """``call()``, tried again after each ``RetryLater`` up to ``max_retries`` times.

    The n-th retry waits ``initial * 2**(n-1)`` seconds capped at ``ceiling`` (``backoff``), or the
    server's ``retry_after_s`` when longer (ignoring Retry-After gets an IP banned). Any other
    exception propagates at once. Each retry is a warning on ``log`` (the caller's logger). After the last try, RetryLater says ``what`` failed how many
    times and the last error; its cause is that error's own cause (the client's exception).
    """
    initial, ceiling = backoff
    for attempt in range(max_retries + 1):
        try:
            return call()
        except RetryLater as error:
            tries = attempt + 1
            if attempt == max_retries:
                raise RetryLater(
                    f"{what} failed {tries} times (1 try + {max_retries} retries); "
                    f"last error: {error}",
                    retry_after_s=error.retry_after_s,
                ) from (error.__cause__ or error)
            delay = min(ceiling, initial * 2**attempt)
            if error.retry_after_s is not None:
                delay = max(delay, error.retry_after_s)
            log.warning("%s: try %d failed, retrying in %.2fs: %s", what, tries, delay, error)
            sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")
