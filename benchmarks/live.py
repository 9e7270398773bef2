"""The living loop's benchmark: a replay of 1h BTC/USDT and ETH/USDT from the shipped data.

Run from the repo root with the venv's python:  .venv/bin/python benchmarks/live.py [--quick]

The replay (``live.replay``, what ``redline live --replay-*`` runs) of ``configs/live-replay.yaml``
(weekly retrains, a small population, the default champion rules) over 4 weeks from 2024-01-01
(``--quick``: 2 weeks), on a fresh data root: the backfill of a year of history, then every
hourly cycle (collect, label, answer, monitor) and every retrain, against our loopback exchange.

The last line: ``RESULT sim_days_per_min=... cycle_overhead_ms=... answer_ms=... retrain_s=...
year_no_retrain_min=...`` where ``cycle_overhead_ms`` is one collect + label + monitor cycle's
cost per series (the backfill's first cycle left out), ``answer_ms`` the ensemble's answer per
series (the code behind ``/v1/predict``), ``retrain_s`` a retrain's mean wall time, and
``year_no_retrain_min`` a year of hourly cycles with answers and without retrains, projected from
the two. Goal (issue 15): ``cycle_overhead_ms`` under 50, ``year_no_retrain_min`` under 10.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cluster.config import load_config  # noqa: E402
from live.replay import replay  # noqa: E402
from live.service import LiveService  # noqa: E402
from market.when import parse_when  # noqa: E402
from store.db import Store  # noqa: E402

SHARED = Path(os.environ.get("REDLINE_SHARED_DATA", ROOT.parent / "shared" / "data"))
START = "2024-01-01"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def per_cycle(timings: dict[str, list[float]], jobs: tuple[str, ...]) -> list[float]:
    """Seconds of each hourly cycle of ``jobs`` (the first, the backfill's, left out)."""
    runs = [timings.get(job, [])[1:] for job in jobs]
    return [sum(parts) for parts in zip(*runs, strict=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 weeks instead of 4")
    parser.add_argument("--home", type=Path, help="keep the data root here (default: temporary)")
    args = parser.parse_args()
    weeks = 2 if args.quick else 4
    home = args.home or Path(tempfile.mkdtemp(prefix="redline-live-bench-"))
    os.environ["REDLINE_HOME"] = str(home)
    config = load_config(ROOT / "configs" / "live-replay.yaml")
    live = config.require_live("configs/live-replay.yaml")
    changed = config.champions.changed_from_defaults()
    log(f"champion rules: {'defaults' if not changed else ', '.join(changed)}")
    start = parse_when(START, "start")
    until = start + weeks * 7 * 86_400_000
    log(f"replaying {weeks} weeks from {START} of {', '.join(live.watch)} {live.timeframe} "
        f"from {SHARED} into {home}")  # fmt: skip
    captured: dict[str, Any] = {}

    def hook(service: LiveService) -> None:
        captured["service"] = service

    store = Store.open(None, home)
    wall = time.perf_counter()
    report = replay(config, store, home, SHARED, start, until, service_hook=hook)
    wall = time.perf_counter() - wall
    service: LiveService = captured["service"]
    series = len(live.watch)
    cycles = per_cycle(service.timings, ("collect", "label", "monitor"))
    answers = service.timings.get("answer", [])[1:]
    retrains = [t for t in service.timings.get("retrain", [])]
    cycle_ms = statistics.median(cycles) * 1000 / series if cycles else float("nan")
    answer_ms = statistics.median(answers) * 1000 / series if answers else float("nan")
    retrain_s = statistics.mean(retrains) if retrains else float("nan")
    year_min = 365 * 24 * series * (cycle_ms + answer_ms) / 60_000
    sim_days = report.sim_days
    for name, numbers in report.series.items():
        served, bh = numbers["served"], numbers["buy_and_hold"]
        log(f"{name}: served Sharpe {served['sharpe']:+.2f} return {served['total_return']:+.1%}"
            f" | buy & hold {bh['sharpe']:+.2f} {bh['total_return']:+.1%}")  # fmt: skip
    log(f"{len(cycles)} hourly cycles, {len(retrains)} retrains "
        f"({report.promotions} promotions, {report.refusals} refusals) in {wall:.0f} s")  # fmt: skip
    store.close()
    if args.home is None:
        shutil.rmtree(home, ignore_errors=True)
    print(
        f"RESULT sim_days_per_min={sim_days / (wall / 60):.2f} cycle_overhead_ms={cycle_ms:.1f} "
        f"answer_ms={answer_ms:.1f} retrain_s={retrain_s:.1f} year_no_retrain_min={year_min:.1f}"
    )


if __name__ == "__main__":
    main()
