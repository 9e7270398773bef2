"""The loop's clock: the wall clock, or a replay clock that jumps to the next scheduled time as
soon as the work due now is done (``redline live --replay-from/--replay-until``)."""

from __future__ import annotations

import threading
import time
from typing import Protocol

HOUR_MS = 3_600_000


class Clock(Protocol):
    def now_ms(self) -> int: ...

    def wait_until(self, ms: int, stop: threading.Event) -> bool:
        """Wait until ``ms`` (or ``stop``); returns False when stopped."""
        ...


class WallClock:
    """Real time; waiting sleeps (a set ``stop`` event wakes it: Ctrl-C)."""

    replay = False

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def wait_until(self, ms: int, stop: threading.Event) -> bool:
        while not stop.is_set():
            left = ms - self.now_ms()
            if left <= 0:
                return True
            stop.wait(min(left / 1000, 1.0))
        return False


class ReplayClock:
    """Simulated time from ``start_ms``: it stands still while work runs and jumps forward when
    the loop waits. Thread-safe: the loopback exchange reads it from its own threads."""

    replay = True

    def __init__(self, start_ms: int) -> None:
        self._now = start_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._now

    def wait_until(self, ms: int, stop: threading.Event) -> bool:
        if stop.is_set():
            return False
        with self._lock:
            self._now = max(self._now, ms)
        return True
