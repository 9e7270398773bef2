"""The soak, short: ``benchmarks/soak.py``'s load for 45 s on real Serve and a real ensemble (the
trained champions), every request a new window of 500 real BTC/USDT 1h candles from
../shared/data and a real trade reported on every 10th answer: no error, and the replica's
resident memory grows less than ``RSS_BOUND_MB`` after the warm-up. The long form is
``benchmarks/soak.py --minutes N``."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.serving.conftest import TOKEN
from tests.serving.trained import (
    Champions,
    champions_fixture,  # noqa: F401  (the session fixture `champions`)
    copy_home,
    sqlite_url,
)

SECONDS = 45.0
WARMUP_S = 15.0
#: Replica RSS growth allowed over the 30 s after the warm-up (measured: see the report line).
RSS_BOUND_MB = 40.0
BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


def _soak_module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_soak", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_a_short_soak_answers_everything_and_does_not_grow(
    serve_port: int, champions: Champions, btc_1h: pd.DataFrame, tmp_path: Path
) -> None:
    from ray import serve

    from serving.app import build_app

    soak = _soak_module()
    home = copy_home(champions, tmp_path / "redline_data")
    windows = soak.candle_windows(btc_1h)
    assert len(windows) > 30_000  # 2020-2024: never a window twice in 45 s
    app = build_app(sqlite_url(home), home, token=TOKEN,
                    deployment={"ray_actor_options": {"num_cpus": 0}})  # fmt: skip
    serve.run(app, name="soak", route_prefix="/soak")
    try:
        [pid] = soak.replica_pids("soak")
        result = asyncio.run(soak.soak(
            f"http://127.0.0.1:{serve_port}/soak", windows, SECONDS,
            rss=lambda: soak.rss_mb([pid]), concurrency=4, feedback_every=10, token=TOKEN,
            warmup_s=WARMUP_S,
        ))  # fmt: skip
    finally:
        serve.delete("soak")
    print(result.line(SECONDS / 60))
    assert result.errors == 0, result.error_samples
    assert result.requests >= 100 and result.feedback >= 10, result.line(SECONDS / 60)
    assert result.rss_growth_mb < RSS_BOUND_MB, result.rss
