"""When each job of the loop is due: cron expressions (UTC) and the slots they name.

A job's **slot** is a time its cron expression names. The store remembers, per job, the last
slot it ran for (``store.live.LiveStore.job``). At time ``now`` a job is due for the latest slot
``<= now`` when that slot is after the last one it ran for: a job whose times passed while the
service was down runs **once** on restart (for its latest slot), not once per missed slot; a run
that started but never finished (the service was killed) is due again for the same slot.

A job that never ran is due at once when it is a ``run_at_start`` job (collect: the backfill;
label; answer; retrain, so a new service trains at once), otherwise at its next slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter

from store.records.live import JobRecord


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


@dataclass(frozen=True)
class Schedule:
    """One job's cron expression; ``run_at_start``: due at once when it never ran."""

    name: str
    cron: str
    run_at_start: bool = False

    def latest(self, now_ms: int) -> int:
        """The latest slot at or before ``now_ms``."""
        if croniter.match(self.cron, _dt(now_ms)) and now_ms % 60_000 == 0:
            return now_ms
        return _ms(croniter(self.cron, _dt(now_ms)).get_prev(datetime))

    def following(self, now_ms: int) -> int:
        """The first slot strictly after ``now_ms``."""
        return _ms(croniter(self.cron, _dt(now_ms)).get_next(datetime))

    def due(self, job: JobRecord | None, now_ms: int) -> int | None:
        """The slot the job is due for at ``now_ms``, or None (see the module doc)."""
        latest = self.latest(now_ms)
        if job is None or job.last_slot_ms is None:
            return latest if self.run_at_start else None
        if job.outcome == "running":  # started, never finished: killed mid-run
            return job.last_slot_ms
        return latest if latest > job.last_slot_ms else None

    def next_time(self, job: JobRecord | None, now_ms: int) -> int:
        """When the job is next due after a run at ``now_ms``."""
        return self.following(now_ms)
