"""Soak the Serve application: steady load for minutes on new candle windows; errors and the
replica's memory.

Run from the repo root with the venv's python:  .venv/bin/python benchmarks/soak.py
[--minutes N] [--quick] [--home DATA_ROOT] [--concurrency C] [--feedback-every K]

The ensemble: the champions of ``--home`` (a data root that has them, e.g. after ``make demo``),
else of a fresh evolution of the shipped sample (``configs/evolve-demo.yaml``, about two minutes,
as ``benchmarks/serve.py`` does). One Ray (``ray.init(num_cpus=2)``), one Serve on a free loopback
port, one ``RedlineAPI`` replica with its defaults (batching on), no token.

The load: ``C`` clients (asyncio + httpx, keep-alive; default 8) post ``/v1/predict`` back to back
for ``N`` minutes (default 30; ``--quick``: 1). Every request carries a **new** window of 500 real
Binance BTC/USDT 1h candles (``../shared/data``, 2020-2024: windows slide forward one bar at a
time, about 36,000 of them, so the replica's candle cache never answers and every request
computes its regime and features). Every ``K``-th answer (default 20) is followed by a real trade
on it, reported to ``/v1/feedback`` (entered at the window's last close, exited at the next
bar's close, fees 10 bps a side): the prediction log, the trades tables and the members' live
records grow as they do in production.

Memory: the replica's resident set (the Serve replica actor's process, by Ray's state API and
psutil) every 5 s. The baseline is the first sample after the warm-up (a tenth of the run, at
least 10 s: models loaded, the candle cache full); ``rss_growth_mb`` is the last sample minus
the baseline (a leak grows it steadily; a full cache does not).

The last line is ``RESULT requests=<n> errors=<n> feedback=<n> rss_start_mb=<baseline>
rss_end_mb=<last> rss_growth_mb=<last - baseline> p50_ms=<predict p50> p99_ms=<predict p99>
rps=<requests per second> minutes=<N>``. Any error is printed (the first five) and the exit
status is 1. tests/serving/test_soak.py runs the same load for 45 s in the suite.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HISTORY = 500
FEE = 0.001
SAMPLE_S = 5.0


@dataclass(frozen=True)
class Window:
    """A predict body and the bar after its last candle (for the trade reported on it)."""

    body: dict[str, Any]
    next_ts: int
    next_close: float


def candle_windows(
    candles: pd.DataFrame, *, history: int = HISTORY, symbol: str = "BTC/USDT"
) -> list[Window]:
    """Every ``history``-bar window of ``candles`` (``ts`` in ms, OHLCV) that has a next bar,
    oldest first: each a different request."""
    table = candles[["ts", "open", "high", "low", "close", "volume"]]
    rows = [[int(r[0]), *map(float, r[1:])] for r in table.itertuples(index=False)]
    return [
        Window({"exchange": "binance", "symbol": symbol, "timeframe": "1h",
                "candles": rows[start : start + history]},
               int(rows[start + history][0]), rows[start + history][4])
        for start in range(len(rows) - history)
    ]  # fmt: skip


def shared_btc_1h() -> pd.DataFrame:
    """The real Binance BTC/USDT 1h candles of ../shared/data (REDLINE_SHARED_DATA overrides)."""
    import os

    folder = Path(os.environ.get("REDLINE_SHARED_DATA") or REPO.parent / "shared" / "data")
    frame = pd.read_csv(folder / "binance_BTC-USDT_1h.csv.gz")
    return frame.rename(columns={"timestamp": "ts"})


def replica_pids(app: str, deployment: str = "RedlineAPI") -> list[int]:
    """The process ids of the live replicas of ``app``'s ``deployment`` (Ray's state API, on
    this process's Ray: other Ray instances may run on the machine)."""
    import ray
    from ray.util.state import list_actors

    name = f"ServeReplica:{app}:{deployment}"
    address = ray.get_runtime_context().gcs_address
    actors = list_actors(address, filters=[("state", "=", "ALIVE")], limit=1000, timeout=30)
    return [int(a.pid) for a in actors if a.class_name == name and a.pid]


def rss_mb(pids: Sequence[int]) -> float:
    """The resident set of ``pids``, summed, in MB."""
    import psutil

    return sum(psutil.Process(pid).memory_info().rss for pid in pids) / 2**20


@dataclass
class SoakResult:
    requests: int = 0
    errors: int = 0
    feedback: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    rss: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MB)
    seconds: float = 0.0
    warmup_s: float = 0.0

    @property
    def rss_start_mb(self) -> float:
        after = [mb for t, mb in self.rss if t >= self.warmup_s]
        return after[0] if after else float("nan")

    @property
    def rss_end_mb(self) -> float:
        return self.rss[-1][1] if self.rss else float("nan")

    @property
    def rss_growth_mb(self) -> float:
        return self.rss_end_mb - self.rss_start_mb

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(np.array(self.latencies) * 1000, q)) if self.latencies else 0.0

    def line(self, minutes: float) -> str:
        rps = self.requests / self.seconds if self.seconds else 0.0
        return (
            f"RESULT requests={self.requests} errors={self.errors} feedback={self.feedback} "
            f"rss_start_mb={self.rss_start_mb:.1f} rss_end_mb={self.rss_end_mb:.1f} "
            f"rss_growth_mb={self.rss_growth_mb:.1f} p50_ms={self.percentile_ms(50):.1f} "
            f"p99_ms={self.percentile_ms(99):.1f} rps={rps:.1f} minutes={minutes:g}"
        )


def _trade(window: Window, answer: dict[str, Any]) -> dict[str, Any]:
    last = window.body["candles"][-1]
    entry, exit_ = last[4], window.next_close
    side = "short" if answer["signal"]["direction"] < 0 else "long"
    qty = 0.01
    pnl = (exit_ - entry) * qty * (1 if side == "long" else -1)
    return {
        "request_id": answer["request_id"], "model_version": answer["model_version"],
        "exchange": "binance", "symbol": window.body["symbol"], "side": side,
        "entry_ts": last[0], "exit_ts": window.next_ts, "entry_price": entry,
        "exit_price": exit_, "pnl": pnl, "fees": FEE * qty * (entry + exit_), "qty": qty,
    }  # fmt: skip


async def soak(
    base_url: str,
    windows: Sequence[Window],
    seconds: float,
    *,
    rss: Callable[[], float],
    concurrency: int = 8,
    feedback_every: int = 20,
    token: str | None = None,
    warmup_s: float | None = None,
    progress: Callable[[SoakResult, float], None] | None = None,
) -> SoakResult:
    """Load ``base_url`` for ``seconds`` (module docstring); ``rss()`` is the replica's MB."""
    result = SoakResult(warmup_s=warmup_s if warmup_s is not None else max(10.0, seconds / 10))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    started = time.monotonic()
    deadline = started + seconds
    cursor = 0

    def failed(what: str) -> None:
        result.errors += 1
        if len(result.error_samples) < 5:
            result.error_samples.append(what)

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal cursor
        while time.monotonic() < deadline:
            window = windows[cursor % len(windows)]
            cursor += 1
            begun = time.perf_counter()
            try:
                answer = await client.post("/v1/predict", json=window.body)
            except httpx.HTTPError as error:
                failed(f"predict: {error!r}")
                continue
            result.latencies.append(time.perf_counter() - begun)
            result.requests += 1
            if answer.status_code != 200:
                failed(f"predict answered {answer.status_code}: {answer.text[:300]}")
                continue
            if feedback_every and result.requests % feedback_every == 0:
                try:
                    reply = await client.post("/v1/feedback", json=_trade(window, answer.json()))
                except httpx.HTTPError as error:
                    failed(f"feedback: {error!r}")
                    continue
                result.feedback += 1
                if reply.status_code != 200:
                    failed(f"feedback answered {reply.status_code}: {reply.text[:300]}")

    async def sampler() -> None:
        while True:
            now = time.monotonic()
            result.rss.append((now - started, await asyncio.to_thread(rss)))
            if progress is not None:
                progress(result, now - started)
            if now >= deadline:
                return
            await asyncio.sleep(min(SAMPLE_S, max(deadline - now, 0.0)))

    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
        await asyncio.gather(sampler(), *(client_loop(client) for _ in range(concurrency)))
    result.seconds = time.monotonic() - started
    result.rss.append((result.seconds, rss()))
    return result


def _serve_bench() -> Any:
    """benchmarks/serve.py as a module (its data-root preparation and free port)."""
    spec = importlib.util.spec_from_file_location(
        "bench_serve", Path(__file__).with_name("serve.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to load")
    parser.add_argument("--quick", action="store_true", help="one minute: the smoke run")
    parser.add_argument("--home", type=Path, default=None, help="a data root with champions")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients")
    parser.add_argument("--feedback-every", type=int, default=20,
                        help="report a trade on every K-th answer (0: never)")  # fmt: skip
    args = parser.parse_args()
    minutes = 1.0 if args.quick else args.minutes
    if not minutes > 0 or args.concurrency < 1 or args.feedback_every < 0:
        parser.error("--minutes must be > 0, --concurrency >= 1, --feedback-every >= 0")
    logging.basicConfig(level=logging.WARNING)

    import ray
    from ray import serve

    from serving.app import build_app

    bench = _serve_bench()
    home = bench._prepare(args.home, args.quick)
    windows = candle_windows(shared_btc_1h())
    print(f"{len(windows)} candle windows of {HISTORY} bars; {args.concurrency} clients for "
          f"{minutes:g} min on the champions of {home}", flush=True)  # fmt: skip
    if not ray.is_initialized():
        ray.init(num_cpus=2, logging_level=logging.WARNING)
    port = bench._free_port()
    quiet = {"log_level": "WARNING", "enable_access_log": False}  # minutes of access lines
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=quiet)
    try:
        serve.run(build_app(f"sqlite:///{home / 'redline.db'}", home, token="",
                            deployment={"ray_actor_options": {"num_cpus": 0}}),
                  name="soak", route_prefix="/soak", logging_config=quiet)  # fmt: skip
        pids = replica_pids("soak")

        def show(result: SoakResult, elapsed: float) -> None:
            if result.rss and int(elapsed) % 60 < SAMPLE_S:
                print(f"  {elapsed:6.0f}s: {result.requests} requests, {result.errors} errors, "
                      f"rss {result.rss[-1][1]:.0f} MB", flush=True)  # fmt: skip

        result = asyncio.run(soak(f"http://127.0.0.1:{port}/soak", windows, minutes * 60,
                                  rss=lambda: rss_mb(pids), concurrency=args.concurrency,
                                  feedback_every=args.feedback_every, progress=show))  # fmt: skip
    finally:
        serve.shutdown()
        ray.shutdown()
    for sample in result.error_samples:
        print(f"error: {sample}")
    print(f"predict latency: mean {statistics.fmean(result.latencies) * 1000:.1f} ms"
          if result.latencies else "no request answered")  # fmt: skip
    print(result.line(minutes))
    return 1 if result.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
