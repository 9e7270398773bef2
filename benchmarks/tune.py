"""Benchmark the training queue on Ray Tune: per-trial overhead, beside a plain loop.

Run from the repo root with the venv's python:  .venv/bin/python benchmarks/tune.py [--quick]

The grid: 32 technical_analyst configs (lookback 4/8/12/16 x hidden 16/32 x lr 0.001/0.003 x
feature_set fast/all; depth 2, batch 256, ``--epochs`` epochs: 2 with ``--quick``, else 4), each
backtested over an inference grid of 10 (5 thresholds x 2 holding horizons), on the real BTC/USDT
1h candles of the shipped sample from 2023-01-01, as ``configs/grids/smoke.yaml`` has them.

- queue: ``tuning.queue.add_grid`` then ``tuning.queue.start`` on ``ray.init(num_cpus=2)``
  (started before the clock; a fresh data root and SQLite store with the sample already imported):
  what ``redline queue add`` and ``redline queue start`` run. Each trial, in a Tune worker (one
  CPU, actors reused), marks its queue row, trains with ``train_child``, saves its checkpoint,
  backtests the inference grid and writes everything in one transaction; the driver considers it
  for champion after each trial (on a thread beside Tune's loop). The clock covers the whole ``start``: datasets built and put in
  the object store, Tune's experiment, 32 trials, champions.
- plain loop: the same 32 configs in a for loop in this process, as a user would write it without
  Ray: the dataset built once (the same builder), then ``train_child`` and
  ``evaluate_inference_grid`` per config (one torch thread), results kept in memory; no
  checkpoint, no database.

**Per-trial overhead** is each trial's wall time as the driver sees it (Tune starting it to Tune
seeing it complete) minus its training time (``train_child``), averaged over the 32 trials: the
inference backtests, the checkpoint, the database transaction and Tune's scheduling and
reporting. The plain loop's own per-config time besides training (the backtests) is printed beside
it. The end-to-end view is printed too: when the first trial's result arrived (the fixed costs:
datasets, Tune's start, its first actors importing torch), the steady pace after it (seconds per
trial per core, from the arrival times of the results), and the core time not spent training over
the whole run (2 cores x the queue's wall time minus the trials' training, per trial).

Ray Tune's published figure for its overhead is about 0.14 s per trial: its scalability benchmark
ran 10,000 trials of 1 s on one 16-CPU node in 715.27 s against 625 s minimum,
(715.27 - 625) x 16 / 10,000 = 0.14 s (docs.ray.io, tune/tutorials/tune-scalability).

Both give the same results for the same config (training is deterministic on one torch thread):
the largest |Sharpe difference| over configs and inference configs is printed. Training on two
busy cores is slower per model than on one (shared caches and memory bandwidth), so the queue's
mean training time is printed beside the loop's.

The last line is ``RESULT overhead_per_trial_s=... vs_plain_loop=<t_plain_loop / t_queue>``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import ray  # noqa: E402
import yaml  # noqa: E402

from agents.inference import evaluate_inference_grid  # noqa: E402
from agents.spec import TrainSpec  # noqa: E402
from agents.specialties import get_specialty  # noqa: E402
from agents.training import train_child  # noqa: E402
from evolution.champions import ChampionPolicy  # noqa: E402
from store.db import Store  # noqa: E402
from store.ingest import ensure_sample  # noqa: E402
from tuning.grids import (  # noqa: E402
    GridSpec,
    compute_config_hash,
    expand,
    inference_configs,
    parse_grid,
)
from tuning.queue import add_grid, start  # noqa: E402
from tuning.runner import TrialOutcome, inference_hash  # noqa: E402

NUM_CPUS = 2
TUNE_OVERHEAD_S = (715.27 - 625.0) * 16 / 10_000  # Ray Tune's scalability benchmark, 16 CPUs
FINISHED_AT: list[float] = []  # seconds into the queue's start when each trial's result arrived


GRID = """
grid:
  name: bench-32
  specialty: technical_analyst
  search: grid
  seed: 7
  data: {exchange: binance, timeframe: 1h, symbols: [BTC/USDT], start: "2023-01-01"}
  genome:
    lookback: [4, 8, 12, 16]
    hidden: [16, 32]
    lr: [0.001, 0.003]
    feature_set: [fast, all]
    horizon: 4
    depth: 2
    dropout: 0.1
    epochs: EPOCHS
    batch_size: 256
  inference: {threshold: [0.1, 0.2, 0.3, 0.4, 0.5], horizon: [1, 4], size: [1.0]}
  fee_bps: 10
"""


def grid(epochs: int) -> GridSpec:
    return parse_grid(yaml.safe_load(GRID.replace("EPOCHS", str(epochs))))


def start_ray() -> None:
    os.environ.pop("RAY_ADDRESS", None)  # a fresh local cluster of our own
    ray.init(
        address="local", num_cpus=NUM_CPUS, include_dashboard=False, logging_level=logging.WARNING
    )


def run_queue(
    spec: GridSpec, home: Path
) -> tuple[float, list[TrialOutcome], dict[Any, float | None], float]:
    """``queue add`` + ``queue start`` on a fresh data root: (wall s, outcomes, sharpes, seconds
    spent judging champions)."""
    store = Store.open(f"sqlite:///{home / 'redline.db'}", home=home)
    ensure_sample(store)  # the import is not timed (a data root has its candles already)
    tstore = store.training
    added, _ = add_grid(tstore, spec, store.regimes.regime_rules())
    assert added == 32, added
    outcomes: list[TrialOutcome] = []
    began = time.perf_counter()

    def seen(outcome: TrialOutcome) -> None:
        outcomes.append(outcome)
        FINISHED_AT.append(time.perf_counter() - began)

    result = start(store, home, policy=ChampionPolicy(), on_trial=seen)
    wall = time.perf_counter() - began
    if result.failed or result.done != 32:
        raise RuntimeError(f"the queue trained {result.done} configs, {result.failed} failed")
    sharpes = {
        (b.config_hash, b.inference_hash): b.sharpe
        for run in tstore.training_runs()
        for b in tstore.backtests(run.config_hash)
    }
    store.close()
    return wall, outcomes, sharpes, result.champion_seconds


def run_loop(
    spec: GridSpec, home: Path
) -> tuple[float, list[float], list[float], dict[tuple[str, str], float | None]]:
    """The plain loop: (wall s, train s per config, backtest s per config, sharpes)."""
    from tuning.runner import _datasets  # the queue's dataset builder, to build the same

    store = Store.open(f"sqlite:///{home / 'redline.db'}", home=home)
    ensure_sample(store)
    configs = expand(spec)
    space = get_specialty(spec.specialty).space
    train_s: list[float] = []
    backtest_s: list[float] = []
    sharpes: dict[tuple[str, str], float | None] = {}
    began = time.perf_counter()
    datasets = _datasets(
        store, home, [TrainSpec.from_json(configs[0])], store.regimes.regime_rules()
    )
    for config in configs:
        dataset = datasets[f"{config['specialty']}/{config['dataset']}"]
        config_hash = compute_config_hash(config)
        report, _ = train_child(
            dataset, space.validate(config["genome"]), seed=int(config["seed"]),
            agent_id=f"tr-{config_hash[:12]}", generation=0, fee_bps=float(config["fee_bps"]),
            torch_threads=1,
        )  # fmt: skip
        train_s.append(report.train_seconds)
        t0 = time.perf_counter()
        results = evaluate_inference_grid(
            report, dataset, inference_configs(config), fee_bps=float(config["fee_bps"])
        )
        backtest_s.append(time.perf_counter() - t0)
        for inference, metrics, _ in results:
            sharpe = metrics.get("sharpe")
            sharpes[(config_hash, inference_hash(inference))] = sharpe
    wall = time.perf_counter() - began
    store.close()
    return wall, train_s, backtest_s, sharpes


def max_difference(a: dict[Any, float | None], b: dict[Any, float | None]) -> float:
    if a.keys() != b.keys():
        return math.inf
    worst = 0.0
    for key, x in a.items():
        y = b[key]
        if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            if (x is None or not math.isfinite(x)) != (y is None or not math.isfinite(y)):
                return math.inf
            continue
        worst = max(worst, abs(x - y))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs per config (else 4)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of every config")
    args = parser.parse_args()
    epochs = args.epochs or (2 if args.quick else 4)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's tables at verbose=0: not ours
    spec = grid(epochs)
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.2f} at start"
          + ("  (busy: other processes share the cores)" if load > 0.5 else ""))  # fmt: skip
    print(f"grid: {len(expand(spec))} technical_analyst configs x {len(inference_configs(spec))} "
          f"inference configs, {epochs} epochs each, real BTC/USDT 1h from 2023-01-01")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="redline-bench-tune-") as tmp_dir:
        tmp = Path(tmp_dir)
        t0 = time.perf_counter()
        start_ray()
        t_ray = time.perf_counter() - t0
        t_queue, outcomes, queue_sharpes, t_champions = run_queue(spec, tmp / "queue")
        ray.shutdown()
        t_loop, loop_train, loop_backtest, loop_sharpes = run_loop(spec, tmp / "loop")

    trials = [o for o in outcomes if o.status == "DONE"]
    overhead = [o.wall_seconds - o.train_seconds for o in trials]
    per_trial = statistics.fmean(overhead)
    # Slot time not spent training, per trial: the 2 cores x the queue's wall time, minus the
    # trials' training; includes the fixed costs (datasets, Tune's start, its first actors).
    slot_overhead = (NUM_CPUS * t_queue - sum(o.train_seconds for o in trials)) / len(trials)
    queue_train = statistics.fmean(o.train_seconds for o in trials)
    busy = sum(o.train_seconds for o in trials) / (NUM_CPUS * t_queue)
    backtest = statistics.fmean(loop_backtest)
    print(f"ray.init(num_cpus={NUM_CPUS}): {t_ray:.2f}s (not timed below)")
    print(f"queue       {t_queue:7.2f}s  ({len(trials)} trials, 2 at a time; training "
          f"{queue_train:.2f}s per trial; the cores spent {busy:.0%} of the time training)")  # fmt: skip
    print(f"plain loop  {t_loop:7.2f}s  (training {statistics.fmean(loop_train):.2f}s per config, "
          f"inference backtests {backtest:.3f}s per config; one core)")  # fmt: skip
    print(f"per-trial overhead (trial wall - training): mean {per_trial:.3f}s, median "
          f"{statistics.median(overhead):.3f}s, max {max(overhead):.3f}s; of which the "
          f"inference backtests take about {backtest:.3f}s (the plain loop's)")  # fmt: skip
    first, last = FINISHED_AT[0], FINISHED_AT[-1]
    steady = NUM_CPUS * (last - first) / (len(FINISHED_AT) - 1)
    print(f"first result after {first:.2f}s (datasets, Tune's start, its first 2 actors importing "
          f"torch, the first trial); then one trial every {steady:.3f}s per core (training "
          f"{queue_train:.3f}s of it) until the last at {last:.2f}s")  # fmt: skip
    print(f"end to end: {slot_overhead:.3f}s of core time per trial not spent training (2 cores x "
          f"{t_queue:.2f}s - the trials' training, over {len(trials)}: fixed costs included); "
          f"champion decisions {t_champions:.2f}s in all, on a thread beside Tune's loop")  # fmt: skip
    print(f"Ray Tune's published overhead: {TUNE_OVERHEAD_S:.2f}s per trial on 16 CPUs "
          "(10,000 trials of 1 s in 715.27 s vs 625 s minimum)")  # fmt: skip
    print(f"max |Sharpe difference| queue vs plain loop: "
          f"{max_difference(queue_sharpes, loop_sharpes):.3g} over {len(loop_sharpes)} "
          "backtests")  # fmt: skip
    load_1, load_5, _ = os.getloadavg()
    print(f"load average at the end: {load_1:.2f} (1 min), {load_5:.2f} (5 min)")
    print(f"RESULT overhead_per_trial_s={per_trial:.3f} vs_plain_loop={t_loop / t_queue:.2f}")


if __name__ == "__main__":
    main()
