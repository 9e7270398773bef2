"""Benchmark serving: ``/v1/predict`` of the live ensemble over HTTP on loopback, beside a no-op.

Run from the repo root with the venv's python:  .venv/bin/python benchmarks/serve.py [--quick]
[--home DATA_ROOT] [--replicas N]

The ensemble: the champions of a real evolution of the seven specialties on the shipped sample
(``--home``: a data root that already has them, e.g. after ``make demo``; else a fresh one evolved
here with ``configs/evolve-demo.yaml``, about two minutes). Every champion whose inputs a request
carries votes (``serving.ensemble``); the live members are printed.

One Ray (``ray.init(num_cpus=2)``) and one Serve on a free loopback port run three applications
side by side, one replica each: ``RedlineAPI`` with ``@serve.batch`` (``/batched``), the same
without batching (``/unbatched``) and ``serving.noop`` (``/noop``, parses the same JSON body and
answers a constant). Replicas reserve no CPU (three would not fit on 2 cores otherwise);
``--replicas N`` gives each Redline app N of them (the no-op keeps one: one no-op replica is not
what limits it, the proxy and the client are). Bodies
are BTC/USDT 1h windows of 500 real candles of the sample.

- cases: the no-op; ``batched`` and ``unbatched`` on **new candles** (every request a different
  500-candle window, sliding back through the sample: more windows than the replica's 64-entry
  candle cache holds, so each request computes its regime and features, as a bot's request on a
  new bar does); the same two on one repeated body (``cached``: many bots polling one series at
  one bar, a retry).
- latency: one client, one request at a time (``--quick``: 100 per case, else 400, after 20
  warm-up requests); throughput: 8 concurrent clients (asyncio + httpx), ``--quick`` 400
  requests per case, else 1,600 (new candles: 500, else 2,000 distinct windows); both interleaved by rounds (4, else 8) so drift on the machine
  hits every case alike. p50 and p99 of the wall time of each request as the client sees it
  (httpx, keep-alive); requests per second over all rounds.

The last line is ``RESULT p50_ms=<batched p50> p99_ms=<batched p99> p50_vs_noop=<batched/noop>
throughput_vs_noop=<batched/noop> cached_p50_vs_noop=... cached_throughput_vs_noop=...``: the
headline figures are on new candles (the case that computes features), the ``cached_`` ones on
the repeated body. Goals (issue 6): p50 at most 1.5x the no-op's, throughput at least 70% of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
from market.series import SeriesKey  # noqa: E402
from serving.ensemble import Ensemble, candle_columns  # noqa: E402
from serving.schemas import PredictRequest  # noqa: E402
from store.db import Store  # noqa: E402
from store.ingest import ensure_sample  # noqa: E402

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
    config = load_config(CONFIG_DIR / "evolve-demo.yaml")
    with Store.open(f"sqlite:///{home / 'redline.db'}", home=home) as store:
        ensure_sample(store)
        print(f"evolving champions into {home} ...", flush=True)
        run = start_or_resume(config, config.evolve, store, home)
        print(f"run {run.run_id}: {run.generations_done} generations in {run.seconds:.0f}s")
    return home


def _bodies(store: Store, n: int) -> list[dict[str, Any]]:
    """``n`` request bodies: the last HISTORY candles, then windows ending 1, 2, ... bars earlier."""
    candles = store.candles.load_candles(SeriesKey("binance", "BTC/USDT", "1h"))
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


def _in_process(ensemble: Ensemble, body: dict[str, Any], fresh: list[dict[str, Any]]) -> str:
    """The ensemble's own cost per request, in this process, no HTTP: parse the body, predict
    (``new``: candle sets it has not seen; ``repeated``: one set again). Median milliseconds."""

    def cost(bodies: list[dict[str, Any]]) -> float:
        encoded = [json.dumps(b).encode() for b in bodies]
        times = []
        for raw in encoded:
            started = time.perf_counter()
            request = PredictRequest.model_validate_json(raw)
            assert request.candles is not None
            ensemble.predict(candle_columns(request.candles), exchange=request.exchange,
                             symbol=request.symbol, timeframe=request.timeframe,
                             request_id="bench")  # fmt: skip
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000.0

    cost(fresh[:10])  # warm-up (these ten are then cache hits, not measured as new)
    return (
        f"in process, one thread, parse + predict: new candles {cost(fresh[10:]):.2f} ms, "
        f"repeated candles {cost([body] * 100):.2f} ms (median per request)"
    )


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000.0, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, the smoke run")
    parser.add_argument("--home", type=Path, default=None, help="a data root with champions")
    parser.add_argument("--replicas", type=int, default=1,
                        help="replicas of each Redline app (the no-op keeps one)")  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import ray
    from ray import serve

    from serving.app import build_app
    from serving.noop import build_noop_app

    home = _prepare(args.home, args.quick)
    url = f"sqlite:///{home / 'redline.db'}"
    with Store.open(url, home=home) as store:
        champions = store.champions.champions()
        rounds = 4 if args.quick else 8
        per_round = 25 if args.quick else 50
        n = 100 if args.quick else 200
        windows = _bodies(store, 1 + rounds * (per_round + n))
    body = windows[0]
    fresh = windows[1:]  # distinct windows, each sent once per replica: every one computes
    print(f"champions: {len(champions)} rows, specialties "
          f"{sorted({c.specialty for c in champions})}")  # fmt: skip
    with Store.open(url, home=home) as store:
        print(_in_process(Ensemble.load(store, home), body, fresh[:200]))

    if not ray.is_initialized():  # the evolution above may have started it already
        ray.init(num_cpus=2, logging_level=logging.WARNING)
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    free = {"ray_actor_options": {"num_cpus": 0}}
    serve.run(build_noop_app(free), name="noop", route_prefix="/noop")
    redline = {**free, "num_replicas": args.replicas}
    serve.run(build_app(url, home, token="", deployment=redline), name="batched",
              route_prefix="/batched")  # fmt: skip
    serve.run(build_app(url, home, token="", deployment=redline, batching=False),
              name="unbatched", route_prefix="/unbatched")  # fmt: skip
    urls = {app: f"http://127.0.0.1:{port}/{app}/v1/predict" for app in APPS}
    # (label, app, bodies): the no-op, then each Redline app on new candles and on one body.
    cases = [("noop", "noop", [body]), ("batched", "batched", fresh),
             ("unbatched", "unbatched", fresh), ("batched, cached", "batched", [body]),
             ("unbatched, cached", "unbatched", [body])]  # fmt: skip
    try:
        with httpx.Client(timeout=60) as client:
            answer = client.post(urls["batched"], json=body).json()
        print(f"live regime {answer['regime']['name']}: {len(answer['members'])} voting members "
              f"({sorted(m['specialty'] for m in answer['members'])}), combiner "
              f"{answer['combiner']}, signal {answer['signal']}")  # fmt: skip
        for app in APPS:
            _latencies(urls[app], [body], 20)  # warm-up
        latency: dict[str, list[float]] = {label: [] for label, _, _ in cases}
        elapsed: dict[str, float] = {label: 0.0 for label, _, _ in cases}
        for r in range(rounds):  # interleaved, so drift on the machine hits every case alike
            for label, app, bodies in cases:
                # new candles: this round's own windows, none seen before by that replica
                own = bodies[r * (per_round + n) : (r + 1) * (per_round + n)] or bodies
                latency[label] += _latencies(urls[app], own[:per_round], per_round)
                elapsed[label] += n / asyncio.run(_throughput(urls[app], own[-n:], n, 8))
        rps = {label: rounds * n / elapsed[label] for label in elapsed}
    finally:
        serve.shutdown()
        ray.shutdown()

    print(f"{'case':<18} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'req/s (8 clients)':>18}")
    for label, _, _ in cases:
        print(f"{label:<18} {_pct(latency[label], 50):8.2f} {_pct(latency[label], 99):8.2f} "
              f"{statistics.fmean(latency[label]) * 1000:8.2f} {rps[label]:18.1f}")  # fmt: skip
    noop = _pct(latency["noop"], 50)

    def ratios(label: str) -> tuple[float, float]:
        return _pct(latency[label], 50) / noop, rps[label] / rps["noop"]

    for label in ("unbatched", "batched, cached", "unbatched, cached"):
        p50_ratio, rps_ratio = ratios(label)
        print(f"{label}: p50_vs_noop={p50_ratio:.2f} throughput_vs_noop={rps_ratio:.2f}")
    p50_ratio, rps_ratio = ratios("batched")
    cached_p50, cached_rps = ratios("batched, cached")
    print(f"RESULT p50_ms={_pct(latency['batched'], 50):.2f} "
          f"p99_ms={_pct(latency['batched'], 99):.2f} p50_vs_noop={p50_ratio:.2f} "
          f"throughput_vs_noop={rps_ratio:.2f} cached_p50_vs_noop={cached_p50:.2f} "
          f"cached_throughput_vs_noop={cached_rps:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
