"""The replay: the same living loop over past data, as fast as the work allows.

``redline live --config configs/live-replay.yaml --replay-data DIR --replay-from A --replay-until B``
serves the candle files of ``DIR`` (named and shaped like ``../shared/data``'s) and its Fear &
Greed file through our loopback exchange (``live.loopback``), showing only what had closed
before the simulated now, and runs the service against it on a :class:`live.clock.ReplayClock`
from ``A`` to ``B``. It is the honest walk-forward of the whole system, retraining included: every
answer is computed from candles the loop had collected by then, by the models crowned by then.

It ends with the report (printed, and ``replay_report.json`` under the data root): every
retrain, promotion and refusal with its numbers, and per series the equity of what Serve would
have answered at each close (direction x position size, held close to close, 10 bps per unit of
change) beside buy-and-hold and the SMA crossover chosen on the data before ``A``.

A replay killed midway resumes when run again on the same data root: the clock restarts from
the last job the store recorded, and that job reruns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cluster.config import RedlineConfig
from live.clock import ReplayClock
from live.loopback import LoopbackExchange
from live.report import EVENT_KINDS, REPORT_FILE, ReplayReport
from live.service import LiveService, Tick
from market.equity import compare_series
from market.when import iso_ts
from store.db import Store


def resume_from(store: Store, start_ms: int) -> int:
    """Where a replay's clock starts: ``start_ms``, or the last job an earlier (killed) replay
    on this data root recorded."""
    started = [j.started_ms for j in store.live.jobs() if j.started_ms is not None]
    return max([start_ms, *started])


def replay(
    config: RedlineConfig,
    store: Store,
    home: Path,
    data_dir: Path,
    start_ms: int,
    until_ms: int,
    *,
    on_tick: Callable[[Tick], None] | None = None,
    service_hook: Callable[[LiveService], None] | None = None,
) -> ReplayReport:
    """Run the loop over ``[start_ms, until_ms]`` against ``data_dir``; the report (module doc)."""
    if until_ms <= start_ms:
        raise ValueError(
            f"--replay-until must be after --replay-from; got {iso_ts(start_ms)} .. {iso_ts(until_ms)}"
        )
    live = config.require_live("the config")
    wall, started = time.perf_counter(), datetime.now(UTC)
    clock = ReplayClock(resume_from(store, start_ms))
    with LoopbackExchange(Path(data_dir), now_ms=clock.now_ms) as server:
        live = live.model_copy(update={"api_base": server.url, "fear_greed_url": server.url})
        service = LiveService(
            config.model_copy(update={"live": live}), store, home, clock, until_ms=until_ms,
            on_tick=on_tick,
        )  # fmt: skip
        if service_hook:
            service_hook(service)
        service.run()
    series = {}
    for key in service.ctx.keys:
        candles = store.candles.load_candles(key)
        answers = store.live.answers(key, start_ms, until_ms)
        series[f"{key.exchange} {key.symbol} {key.timeframe}"] = compare_series(
            candles, answers, start_ms, until_ms
        )
    events = [
        {"at": iso_ts(e.at_ms), "kind": e.kind, "subject": e.subject, "numbers": e.detail}
        for e in store.live.events(since_ms=start_ms, kinds=list(EVENT_KINDS))
    ]
    report = ReplayReport(
        started_at=started.isoformat(timespec="seconds"),
        ended_at=datetime.now(UTC).isoformat(timespec="seconds"),
        replay_from=iso_ts(start_ms), replay_until=iso_ts(until_ms),
        wall_seconds=time.perf_counter() - wall, sim_days=(clock.now_ms() - start_ms) / 86_400_000,
        series=series, events=events,
        retrains=sum(e["kind"] == "retrain" for e in events),
        promotions=sum(e["kind"] == "promotion" for e in events),
        refusals=sum(e["kind"] == "refusal" for e in events),
    )  # fmt: skip
    report.write(home / REPORT_FILE)
    return report
