"""Benchmark serving: ``/v1/predict`` of the live ensemble over HTTP on loopback, beside a no-op.

Run from the repo root with the venv's python:  .venv/bin/python benchmarks/serve.py [--quick]
[--home DATA_ROOT]

The ensemble: the champions of a real evolution on the shipped sample (``--home``: a data root
that already has them, e.g. after ``make demo``; else a fresh one evolved here with
``configs/evolve-demo.yaml``, the seven specialties, or ``configs/evolve-smoke.yaml`` with
``--quick``). Every champion whose inputs a request carries votes (``serving.ensemble``); the
count is printed.

One Ray (``ray.init(num_cpus=2)``) and one Serve on a free loopback port run three applications
side by side, one replica each: ``RedlineAPI`` with ``@serve.batch`` (``/batched``), the same
without batching (``/unbatched``) and ``serving.noop`` (``/noop``, parses the same JSON body and
answers a constant). Replicas reserve no CPU (three would not fit on 2 cores otherwise). Every
request sends the same body: BTC/USDT 1h, the last 500 real candles of the sample.

- latency: one client, one request at a time (``--quick``: 100 per app, else 400, after 20
  warm-up requests), interleaved by rounds so drift on the machine hits every app alike; p50 and
  p99 of the wall time of each request as the client sees it (httpx, keep-alive).
- throughput: 8 concurrent clients (asyncio + httpx) for a fixed number of requests (``--quick``:
  200, else 800); requests per second.

The replicas remember the regime and features of the last 64 candle sets
(``serving.ensemble``), so repeating one body measures the answer to candles already seen (many
bots polling one series at one bar). ``batched (new candles)`` measures the other case: every
request a different 500-candle window (sliding back through the sample, more windows than the
cache holds), so each one computes its features.

The last line is ``RESULT p50_ms=<batched p50> p99_ms=<batched p99> p50_vs_noop=<batched/noop>
throughput_vs_noop=<batched/noop> new_candles_p50_vs_noop=... new_candles_throughput_vs_noop=...``
(the first four on the repeated body, the last two on new candles). Goals (issue 6): p50 at most
1.5x the no-op's, throughput at least 70% of it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cluster.config import CONFIG_DIR, load_config  # noqa: E402
from cluster.evolve import start_or_resume  # noqa: E402
from cluster.ingest import ensure_sample  # noqa: E402
from market.series import SeriesKey  # noqa: E402
from store.db import Store  # noqa: E402
from store.training import TrainingStore  # noqa: E402

APPS = ("noop", "batched", "unbatched")
HISTORY = 500


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _prepare(home: Path | None, quick: bool) -> Path:
    if home is not None:
        return home
    home = Path(tempfile.mkdtemp(prefix="redline-bench-serve-")) / "redline_data"
    config = load_config(CONFIG_DIR / ("evolve-smoke.yaml" if quick else "evolve-demo.yaml"))
    with Store.open(f"sqlite:///{home / 'redline.db'}", home=home) as store:
        ensure_sample(store)
        print(f"evolving champions into {home} ...", flush=True)
        run = start_or_resume(config, config.evolve, store, home)
        print(f"run {run.run_id}: {run.generations_done} generations in {run.seconds:.0f}s")
    return home


def _bodies(store: Store, n: int) -> list[dict[str, Any]]:
    """``n`` request bodies: the last HISTORY candles, then windows ending 1, 2, ... bars earlier."""
    candles = store.load_candles(SeriesKey("binance", "BTC/USDT", "1h"))
    table = candles[["ts", "open", "high", "low", "close", "volume"]].tail(HISTORY + n)
    rows = [[int(r[0]), *map(float, r[1:])] for r in table.itertuples(index=False)]
    end = len(rows)
    return [
        {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h",
         "candles": rows[end - i - HISTORY : end - i]}
        for i in range(n)
    ]  # fmt: skip


def _latencies(url: str, bodies: list[dict[str, Any]], n: int) -> list[float]:
    out = []
    with httpx.Client(timeout=60) as client:
        for i in range(n):
            started = time.perf_counter()
            response = client.post(url, json=bodies[i % len(bodies)])
            out.append(time.perf_counter() - started)
            response.raise_for_status()
    return out


async def _throughput(url: str, bodies: list[dict[str, Any]], n: int, concurrency: int) -> float:
    left = n

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            body = bodies[left % len(bodies)]
            (await client.post(url, json=body)).raise_for_status()

    async with httpx.AsyncClient(timeout=60) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return n / (time.perf_counter() - started)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000.0, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, the smoke run")
    parser.add_argument("--home", type=Path, default=None, help="a data root with champions")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import ray
    from ray import serve

    from serving.app import build_app
    from serving.noop import build_noop_app

    home = _prepare(args.home, args.quick)
    url = f"sqlite:///{home / 'redline.db'}"
    with Store.open(url, home=home) as store:
        champions = TrainingStore(store).champions()
        windows = _bodies(store, 200)
    body = windows[0]
    fresh = windows[1:]  # 199 distinct windows > the replica's 64-entry cache: all misses
    print(f"champions: {len(champions)} rows, specialties "
          f"{sorted({c.specialty for c in champions})}")  # fmt: skip

    if not ray.is_initialized():  # the evolution above may have started it already
        ray.init(num_cpus=2, logging_level=logging.WARNING)
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    free = {"ray_actor_options": {"num_cpus": 0}}
    serve.run(build_noop_app(free), name="noop", route_prefix="/noop")
    serve.run(build_app(url, home, token="", deployment=free), name="batched",
              route_prefix="/batched")  # fmt: skip
    serve.run(build_app(url, home, token="", deployment=free, batching=False),
              name="unbatched", route_prefix="/unbatched")  # fmt: skip
    urls = {app: f"http://127.0.0.1:{port}/{app}/v1/predict" for app in APPS}
    try:
        with httpx.Client(timeout=60) as client:
            answer = client.post(urls["batched"], json=body).json()
        print(f"live regime {answer['regime']['name']}: {len(answer['members'])} voting members "
              f"({sorted(m['specialty'] for m in answer['members'])}), combiner "
              f"{answer['combiner']}, signal {answer['signal']}")  # fmt: skip
        for app in APPS:
            _latencies(urls[app], [body], 20)  # warm-up
        per_round = 50 if args.quick else 100
        rounds = 2 if args.quick else 4
        latency: dict[str, list[float]] = {app: [] for app in APPS}
        for _ in range(rounds):
            for app in APPS:
                latency[app] += _latencies(urls[app], [body], per_round)
        n = 200 if args.quick else 800
        rps = {app: asyncio.run(_throughput(urls[app], [body], n, 8)) for app in APPS}
        miss_latency = _latencies(urls["batched"], fresh, per_round * rounds)
        miss_rps = asyncio.run(_throughput(urls["batched"], fresh, n, 8))
    finally:
        serve.shutdown()
        ray.shutdown()

    print(f"{'app':<10} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'req/s (8 clients)':>18}")
    for app in APPS:
        print(f"{app:<10} {_pct(latency[app], 50):8.2f} {_pct(latency[app], 99):8.2f} "
              f"{statistics.fmean(latency[app]) * 1000:8.2f} {rps[app]:18.1f}")  # fmt: skip
    print(f"{'batched (new candles)':<10} {_pct(miss_latency, 50):8.2f} "
          f"{_pct(miss_latency, 99):8.2f} {statistics.fmean(miss_latency) * 1000:8.2f} "
          f"{miss_rps:18.1f}")  # fmt: skip
    p50, p99 = _pct(latency["batched"], 50), _pct(latency["batched"], 99)
    noop = _pct(latency["noop"], 50)
    print(f"new candles: p50_vs_noop={_pct(miss_latency, 50) / noop:.2f} "
          f"throughput_vs_noop={miss_rps / rps['noop']:.2f}")  # fmt: skip
    print(f"unbatched: p50_vs_noop={_pct(latency['unbatched'], 50) / noop:.2f} "
          f"throughput_vs_noop={rps['unbatched'] / rps['noop']:.2f}")  # fmt: skip
    # The repeated body hits the replicas' candle cache; the new-candles ratios say what a
    # request whose features must be computed costs, so both go on the RESULT line.
    print(f"RESULT p50_ms={p50:.2f} p99_ms={p99:.2f} p50_vs_noop={p50 / noop:.2f} "
          f"throughput_vs_noop={rps['batched'] / rps['noop']:.2f} "
          f"new_candles_p50_vs_noop={_pct(miss_latency, 50) / noop:.2f} "
          f"new_candles_throughput_vs_noop={miss_rps / rps['noop']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
