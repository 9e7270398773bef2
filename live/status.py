"""``redline status [--json]``: where the living loop stands, read from the store alone (the
service need not run). The JSON's keys (documented in the README, "The living loop"):

- ``now``: when the status was read (ISO, UTC); ``clock``: the loop's last clock reading (a
  replay's simulated time);
- ``series``: per watched series ``first``, ``last`` (open times, ISO), ``rows``, ``holes``
  (missing bars), ``lag_bars`` (closed bars behind ``clock``), ``labelled``, ``training``
  (enabled), ``enabled_at``;
- ``schedules``: per job ``last_slot``, ``started``, ``finished``, ``outcome``, ``detail``,
  ``runs``, ``next`` (its next slot);
- ``champions``: per champion ``specialty``, ``regime``, ``model`` (run/agent), ``stage``,
  ``sharpe``, ``age_hours`` (since crowned), ``validated_at``, ``last_validation`` (its reason);
- ``swaps``, ``refusals``: the last 10 promotions and refusals the loop logged, with reasons;
- ``errors``: the errors of the last 24 hours (of ``clock``).
"""

from __future__ import annotations

from typing import Any

from cluster.config import LiveConfig
from live.jobs import closed_until
from live.schedule import Schedule
from market.timeframes import timeframe_ms
from market.when import iso_ts
from store.db import Store

DAY_MS = 86_400_000


def iso(ms: int | None) -> str | None:
    return None if ms is None else iso_ts(ms)


def status(store: Store, live: LiveConfig | None, now_ms: int) -> dict[str, Any]:
    jobs = store.live.jobs()
    clock = max((j.finished_ms or j.started_ms or 0 for j in jobs), default=0) or now_ms
    series = []
    for record in store.live.watched():
        info = store.candles.series_info(record.key)
        step = timeframe_ms(record.key.timeframe)
        last = info.last_ts if info else None
        lag = None if last is None else max((closed_until(clock, step) - last) // step - 1, 0)
        series.append({
            "series": f"{record.key.exchange} {record.key.symbol} {record.key.timeframe}",
            "first": iso(info.first_ts if info else None), "last": iso(last),
            "rows": info.rows if info else 0, "holes": info.missing_bars if info else 0,
            "lag_bars": lag, "labelled": record.labelled, "training": record.enabled,
            "enabled_at": iso(record.enabled_ms),
        })  # fmt: skip
    crons = {} if live is None else live.schedules.model_dump()
    schedules = {
        job.name: {
            "last_slot": iso(job.last_slot_ms), "started": iso(job.started_ms),
            "finished": iso(job.finished_ms), "outcome": job.outcome, "detail": job.detail,
            "runs": job.runs,
            "next": iso(Schedule(job.name, crons[job.name]).following(clock))
            if crons.get(job.name) else None,
        }
        for job in jobs
    }  # fmt: skip
    champions = []
    for row in store.champions.champions():
        validations = store.live.validations(row.run_id, row.agent_id)
        passed = [v for v in validations if v.passed]
        crowned = passed[0].at_ms if passed else None  # its first pass: crowned or adopted
        champions.append({
            "specialty": row.specialty, "regime": row.regime,
            "model": f"{row.run_id}/{row.agent_id}", "stage": str(row.stage),
            "sharpe": row.sharpe,
            "age_hours": None if crowned is None else round((clock - crowned) / 3_600_000, 1),
            "validated_at": iso(passed[-1].at_ms) if passed else None,
            "last_validation": validations[-1].reason if validations else None,
        })  # fmt: skip
    decisions = store.live.events(kinds=["promotion", "refusal"])
    errors = store.live.events(since_ms=clock - DAY_MS, kinds=["error"])

    def brief(events: list[Any]) -> list[dict[str, Any]]:
        return [{"at": iso(e.at_ms), "subject": e.subject, **e.detail} for e in events[-10:]]

    return {
        "now": iso(now_ms), "clock": iso(clock), "series": series, "schedules": schedules,
        "champions": champions,
        "swaps": brief([e for e in decisions if e.kind == "promotion"]),
        "refusals": brief([e for e in decisions if e.kind == "refusal"]),
        "errors": brief(errors),
    }  # fmt: skip
