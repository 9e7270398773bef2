"""``redline live``: the long-running service that runs the loop's jobs on their schedules.

Start-up: the data-root lock (``live.lock``: a second service on the same data root is refused,
naming the holder), the watch list, then the **backfill** (``collect``, before anything else runs).
Then forever (or to the replay's end): run every job due now, in a fixed order (collect, label,
answer, monitor, retrain, evolve, analysis; ``retention`` after every ``cleanup_every``
retrains), record each run's slot, start, finish and outcome (``live_jobs``), and wait for the
next slot. A job that fails is recorded with its error and the loop goes on; a job killed midway
(SIGKILL, power cut) is still ``running`` in the store, and runs again for the same slot on
restart (``live.schedule``). Ctrl-C (SIGINT) or SIGTERM stops it between jobs, cleanly.

The clock is the wall clock, or a :class:`live.clock.ReplayClock` that stands still while jobs
run and jumps to the next slot when they are done: months of operation replay in minutes.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from cluster.config import LiveConfig, RedlineConfig
from live import jobs
from live.clock import Clock
from live.jobs import LiveContext
from live.lock import LiveLock
from live.retrain import retrain
from live.schedule import Schedule
from store.db import Store

logger = logging.getLogger(__name__)

SIMPLE_JOBS = {
    "label": jobs.label, "answer": jobs.answer, "monitor": jobs.monitor,
    "retention": jobs.retention, "analysis": jobs.analysis,
}  # fmt: skip
ORDER = ("collect", "label", "answer", "monitor", "retrain", "evolve", "analysis")
RUN_AT_START = frozenset({"collect", "label", "answer", "retrain"})


@dataclass
class Tick:
    """What the service reports after each job (for the terminal's progress)."""

    now_ms: int
    job: str
    outcome: str
    ok: bool
    seconds: float


@dataclass
class LiveService:
    config: RedlineConfig
    store: Store
    home: Path
    clock: Clock
    until_ms: int | None = None  # a replay's end: stop once the next slot is past it
    on_tick: Callable[[Tick], None] | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    timings: dict[str, list[float]] = field(default_factory=dict)
    _backfilled: bool = False

    def __post_init__(self) -> None:
        self.live: LiveConfig = self.config.require_live("the config")
        self.ctx = LiveContext(self.config, self.live, self.store, self.home, self.clock.now_ms)
        cron = self.live.schedules
        self.schedules = [
            Schedule(name, getattr(cron, name), name in RUN_AT_START)
            for name in ORDER
            if getattr(cron, name) is not None  # null: that job is off
        ]

    # -- the jobs ------------------------------------------------------------------------------

    def _run(self, name: str, now_ms: int, slot_ms: int) -> str:
        if name == "collect":  # this process's first collect is the backfill (logged per series)
            first, self._backfilled = not self._backfilled, True
            return jobs.collect(self.ctx, now_ms, backfill=first)
        if name in ("retrain", "evolve"):
            generations = self.live.weekly_generations if name == "evolve" else None
            outcome = retrain(self.ctx, now_ms, slot_ms, generations=generations)
            done = len(self.store.live.events(kinds=["retrain"]))
            if not outcome.startswith("skipped") and done % self.live.retention.cleanup_every == 0:
                outcome += "; " + self._job("retention", now_ms, now_ms)
            return outcome
        return SIMPLE_JOBS[name](self.ctx, now_ms)

    def _job(self, name: str, now_ms: int, slot_ms: int) -> str:
        """Run one job for ``slot_ms``, recorded; a failure is recorded and returned, not raised."""
        self.store.live.job_started(name, slot_ms, now_ms)
        started = time.perf_counter()
        try:
            outcome, ok = self._run(name, now_ms, slot_ms), True
        except Exception as exc:  # recorded: the loop goes on
            logger.warning("live job %s failed: %s", name, exc, exc_info=logger.isEnabledFor(10))
            outcome, ok = f"{type(exc).__name__}: {exc}", False
            if name != "collect":  # collect logs its own per-series errors
                self.store.live.event(now_ms, "error", name, error=outcome[:500])
        seconds = time.perf_counter() - started
        self.timings.setdefault(name, []).append(seconds)
        self.store.live.job_finished(name, self.clock.now_ms(), "ok" if ok else "error", outcome)
        if self.on_tick:
            self.on_tick(Tick(now_ms, name, outcome, ok, seconds))
        return outcome

    # -- the loop ------------------------------------------------------------------------------

    def run_due(self, now_ms: int) -> int:
        """Run every job due at ``now_ms``, in order; returns how many ran. At a replay's last
        slot (``until_ms``) only the close's own jobs run: a model trained then answers nothing."""
        ran = 0
        last = self.until_ms is not None and now_ms >= self.until_ms
        for schedule in self.schedules:
            if self.stop.is_set():
                break
            if last and schedule.name in ("retrain", "evolve", "analysis"):
                continue
            slot = schedule.due(self.store.live.job(schedule.name), now_ms)
            if slot is not None:
                self._job(schedule.name, now_ms, slot)
                ran += 1
        return ran

    def next_due(self, now_ms: int) -> int:
        return min(s.following(now_ms) for s in self.schedules)

    def start(self) -> None:
        """Register the watch list and the schedules, then backfill (module doc)."""
        now = self.clock.now_ms()
        for key in self.ctx.keys:
            self.store.live.watch(key, now)
        for schedule in self.schedules:
            if schedule.name not in RUN_AT_START:
                self.store.live.job_registered(schedule.name, schedule.latest(now))
        self.store.live.event(
            now, "start", "live", replay=bool(getattr(self.clock, "replay", False))
        )

    def run(self) -> None:
        """Start, then run due jobs and wait, until stopped (or past ``until_ms``)."""
        with LiveLock(self.home):
            self.start()
            while not self.stop.is_set():
                now = self.clock.now_ms()
                self.run_due(now)
                following = self.next_due(now)
                if self.until_ms is not None and following > self.until_ms:
                    break
                delay = (
                    0
                    if getattr(self.clock, "replay", False)
                    else int(self.live.collect_delay_s * 1000)
                )
                if not self.clock.wait_until(following + delay, self.stop):
                    break
            self.store.live.event(self.clock.now_ms(), "stop", "live")

    def install_signal_handlers(self) -> None:
        """Ctrl-C and SIGTERM stop the service between jobs (the job running finishes)."""

        def handler(signum: int, frame: FrameType | None) -> None:
            if self.stop.is_set():  # a second Ctrl-C: stop now
                raise KeyboardInterrupt
            logger.warning("stopping after the job running now (Ctrl-C again to stop at once)")
            self.stop.set()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
