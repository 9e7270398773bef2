"""Benchmark the population: one generation on Redline's actor pool, a plain loop and Ray Tune.

Run from the repo root with the venv's python:  .venv/bin/python benchmarks/population.py [--quick]

The population: 8 technical_analyst children, genomes from ``evolution.seeds.initial_population``
(root seed 7) and seeds from ``child_seed``, on the real BTC/USDT 1h candles of the shipped sample
(``market/sample``, imported into a temporary SQLite store with ``store.ingest.ensure_sample``;
the dataset is built once with ``agents.datasets.build_datasets``). The genes that set a child's
cost are pinned to the same values for every child (``COST_GENES``: lookback, feature_set,
hidden, depth, epochs, batch_size), so every child does the same training work; the others (lr,
dropout, weight_decay, horizon, threshold) keep their drawn values and make the children differ.

Modes, each one generation of the same 8 (genome, seed) pairs, timed with a wall clock (the
fastest of 3 runs each, with 8 epochs per child; ``--quick``: one run each, 3 epochs):
- sequential: ``agents.training.train_child`` for each genome in a for loop in this process, as a
  user would write it without Ray (its defaults: one torch thread).
- redline: ``agents.actor.RayPool`` on ``ray.init(num_cpus=2)`` (a pool of 2 ``ChildAgent``
  actors; the dataset is put in the object store once). A run makes its pool once, before
  generation 0, and reuses it for every generation (cluster/evolve.py), so ``t_redline`` is the
  generation on a pool whose actors are up: ``pool.run`` of the 8 tasks, results back in the
  driver (the actors also write playgrounds and checkpoints, as in a run). The pool's start
  (actor processes, their imports of torch and Redline, ``ray.put``) is timed separately and the
  ratios with it added are printed too. The sequential loop's imports are not timed either.
- pbt: Ray Tune ``PopulationBasedTraining`` on the same Ray session: a function trainable calling
  ``train_child`` for the genome in its config and reporting the three objectives; the dataset is
  passed with ``tune.with_parameters`` (object store, once); 1 CPU per trial, ``num_samples=8``
  with the 8 configs as ``points_to_evaluate``; each trial reports once and
  ``perturbation_interval=2`` (training iterations), so PBT runs exactly one generation of the 8
  configs and never perturbs. Tune's defaults otherwise (``reuse_actors=False``; the full mode
  also times ``reuse_actors=True`` for reference).
- for reference, 2 plain processes: a ``multiprocessing`` spawn pool of 2, started (torch
  imported, dataset handed over) before the timing, the same loop split over them. No parallel
  loop does better on this machine, so it is the ceiling vs_sequential can be judged against
  (two busy cores train each child slower than one does alone).
All must give the same objectives for the same genome and seed (training is deterministic with
one torch thread): the maximum absolute difference is printed. Each mode also prints the cores
it kept busy (CPU seconds of this process tree over wall seconds, polled every 100 ms) and the
load average: Ray starts its workers at niceness 15, so whenever other processes share the
machine the Ray modes get less than their 2 cores and the times say more about the neighbours.

Memory: fresh runs of the pool with 2, 4 and 8 children on the same dataset, each in its own
process (``--memory-run N``: load the dataset, ``ray.init(num_cpus=2)``, pool, one generation,
shutdown). A thread of this process samples that process and its whole process tree (the Ray GCS,
raylet, agents and every Ray worker are its descendants; Ray sessions of other processes are not)
every 50 ms and keeps the peak of: the sum over processes of ``RssAnon`` (private anonymous
memory: Python heaps, torch tensors, numpy arrays; a copy of the dataset in a worker lands here)
plus the object store counted once (the largest ``RssShmem`` of any process: plasma is the only
shared memory of the tree, and the driver, which puts the dataset and reads every result, maps
all of it). That is RSS minus shared pages, plus the shared object store once, not once per
worker. File-backed pages (the code of Python, torch, Ray: page cache shared with every process
that maps the same libraries, on this machine too) are left out: they grow with processes, not
children, and the pool has 2 actors whatever the population size. The naive RSS sum is printed
for reference. PSS (``smaps_rollup``) costs tens of ms per process to read, too slow to sample
a dozen processes every 50 ms, and its share of the libraries moves with the neighbours.
``rss_8_minus_2_mb`` is the peak with 8 children minus the one with 2: the same 2 actors train
4 children each instead of 1, so what grows is their allocators' high-water mark (tens of MB,
varying from run to run). The dataset is small (under 3 MB), so a copy per child would hide in
that noise; that it is not copied is checked directly: the driver's ``ray.get`` of the pool's
reference returns read-only arrays, views of the object store (the actors resolve the same
reference the same way).

The last line is ``RESULT vs_sequential=<t_seq/t_redline> vs_pbt=<t_pbt/t_redline>
rss_8_minus_2_mb=...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import ray  # noqa: E402

from agents.actor import RayPool  # noqa: E402
from agents.child import TrainOutcome, TrainTask  # noqa: E402
from agents.dataset import Dataset  # noqa: E402
from agents.datasets import build_datasets  # noqa: E402
from agents.genome import Genome  # noqa: E402
from agents.sources import DataSources  # noqa: E402
from agents.specialties import get_specialty  # noqa: E402
from agents.training import ChildReport, train_child  # noqa: E402
from evolution.seeds import child_seed, initial_population  # noqa: E402
from store.db import Store  # noqa: E402
from store.ingest import ensure_sample  # noqa: E402

SPECIALTY = "technical_analyst"
SYMBOL = "BTC/USDT"
ROOT_SEED = 7
NUM_CPUS = 2
MEMORY_SIZES = (2, 4, 8)
SAMPLE_EVERY_S = 0.05
# Genes that set a child's cost, pinned so every child does the same work (``--epochs`` sets the
# epochs: a few seconds per child on one core).
COST_GENES: dict[str, Any] = {
    "lookback": 8, "feature_set": "all", "hidden": 32, "depth": 2, "batch_size": 128,
}  # fmt: skip
Objectives = tuple[float, float, float]


@dataclass(frozen=True)
class Child:
    index: int
    genome: Genome
    seed: int

    @property
    def agent_id(self) -> str:
        return f"bench.ta-g000-{self.index:03d}"


def population(n: int, epochs: int) -> list[Child]:
    """``n`` children of generation 0 with the cost genes pinned (see the module doc)."""
    space = get_specialty(SPECIALTY).space
    children = []
    for i, drawn in enumerate(initial_population(space, n, ROOT_SEED)):
        genes = {**drawn.as_dict(), **COST_GENES, "epochs": epochs}
        seed = child_seed(ROOT_SEED, 0, i, specialty=SPECIALTY)
        children.append(Child(i, space.validate(genes), seed))
    return children


def load_dataset(store_url: str) -> Dataset:
    store = Store.open(store_url)
    try:
        ensure_sample(store)  # no-op when the store has the sample already
        sources = DataSources(store=store, symbols=(SYMBOL,))
        return build_datasets(SPECIALTY, sources)[0]
    finally:
        store.close()


def start_ray() -> None:
    # address="local": always a fresh cluster of our own, never one another process started.
    os.environ.pop("RAY_ADDRESS", None)
    ray.init(
        address="local", num_cpus=NUM_CPUS, include_dashboard=False, logging_level=logging.WARNING
    )

    @ray.remote(num_cpus=1)
    def noop() -> int:
        return 0

    # Both Ray modes start with the session's idle workers up, not half-started.
    ray.get([noop.remote() for _ in range(NUM_CPUS)], timeout=120)


# --- the modes -------------------------------------------------------------------------------


def run_sequential(dataset: Dataset, children: Sequence[Child]) -> dict[int, ChildReport]:
    reports = {}
    for child in children:
        report, _ = train_child(
            dataset, child.genome, seed=child.seed, agent_id=child.agent_id, generation=0
        )
        reports[child.index] = report
    return reports


# The parallel ceiling: the same loop split over 2 plain processes (no Ray), started beforehand.
_WORKER_DATASET: list[Dataset] = []


def _init_worker(dataset: Dataset) -> None:
    _WORKER_DATASET.append(dataset)


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _train_one(child: Child) -> tuple[int, Objectives, float]:
    report, _ = train_child(
        _WORKER_DATASET[0], child.genome, seed=child.seed, agent_id=child.agent_id, generation=0
    )
    return child.index, report.objectives, report.train_seconds


def ready_process_pool(dataset: Dataset) -> Any:
    """A spawn pool of NUM_CPUS processes, each up with torch imported and the dataset loaded."""
    pool = multiprocessing.get_context("spawn").Pool(
        NUM_CPUS, initializer=_init_worker, initargs=(dataset,)
    )
    for _ in range(30):  # a worker takes a task only once its initializer has run
        if len(set(pool.map(_pid_after, [0.5] * NUM_CPUS, chunksize=1))) == NUM_CPUS:
            return pool
    raise RuntimeError(f"the process pool did not bring up {NUM_CPUS} workers")


def run_processes(pool: Any, children: Sequence[Child]) -> dict[int, tuple[Objectives, float]]:
    return {i: (o, s) for i, o, s in pool.map(_train_one, children, chunksize=1)}


def redline_tasks(dataset: Dataset, children: Sequence[Child], generation: int) -> list[TrainTask]:
    return [
        TrainTask("bench", f"{c.agent_id}.{generation}", generation, c.genome, c.seed, dataset.name)
        for c in children
    ]


def run_pool(pool: RayPool, tasks: Sequence[TrainTask]) -> dict[int, ChildReport]:
    index = {task.agent_id: i for i, task in enumerate(tasks)}
    reports: dict[int, ChildReport] = {}

    def on_done(task: TrainTask, outcome: TrainOutcome) -> None:
        reports[index[task.agent_id]] = outcome.report

    pool.run(tasks, on_done)
    return reports


def new_pool(home: Path, dataset: Dataset) -> RayPool:
    return RayPool(home, {f"{SPECIALTY}/{dataset.name}": dataset}, run_id="bench", timeout_s=900)


def ready_pool(home: Path, dataset: Dataset) -> RayPool:
    """A pool whose actors are up and have imported everything (they answer a ping)."""
    pool = new_pool(home, dataset)
    ray.get([actor.ping.remote() for actor in pool.actors], timeout=300)
    return pool


def pbt_trainable(config: dict[str, Any], dataset: Dataset) -> None:
    """Tune's function trainable: one child, one report of its three objectives."""
    from ray import tune

    genome = get_specialty(SPECIALTY).space.validate(json.loads(config["genes"]))
    report, _ = train_child(
        dataset, genome, seed=int(config["seed"]), agent_id=config["agent_id"], generation=0
    )
    sharpe, neg_drawdown, hit_rate = report.objectives
    tune.report(
        {
            "index": config["index"],
            "sharpe": sharpe,
            "neg_max_drawdown": neg_drawdown,
            "hit_rate": hit_rate,
            "child_seconds": report.train_seconds,
        }
    )


def run_pbt(
    dataset: Dataset, children: Sequence[Child], storage: Path, *, reuse_actors: bool = False
) -> dict[int, tuple[Objectives, float]]:
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.search.basic_variant import BasicVariantGenerator

    points = [
        {
            "index": c.index,
            "genes": json.dumps(c.genome.as_dict()),
            "seed": c.seed,
            "agent_id": c.agent_id,
        }
        for c in children
    ]
    scheduler = PopulationBasedTraining(
        time_attr="training_iteration",
        metric="sharpe",
        mode="max",
        # Each trial reports once (iteration 1): an interval of 2 means one generation, no
        # exploit/explore step, which is what the other two modes run.
        perturbation_interval=2,
        custom_explore_fn=lambda config: config,
    )
    trainable = tune.with_resources(
        tune.with_parameters(pbt_trainable, dataset=dataset), {"cpu": 1}
    )
    tuner = tune.Tuner(
        trainable,
        # The search space is the 8 configs; points_to_evaluate runs each of them once.
        param_space={key: tune.choice([p[key] for p in points]) for key in points[0]},
        tune_config=tune.TuneConfig(
            scheduler=scheduler,
            num_samples=len(children),
            search_alg=BasicVariantGenerator(points_to_evaluate=points),
            reuse_actors=reuse_actors,
        ),
        run_config=tune.RunConfig(storage_path=str(storage), name="pbt", verbose=0),
    )
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # verbose=0 then prints nothing
    grid = tuner.fit()
    out: dict[int, tuple[Objectives, float]] = {}
    for result in (grid[i] for i in range(len(grid))):
        if result.error is not None:
            raise RuntimeError(f"PBT trial failed: {result.error}")
        m = result.metrics or {}
        objectives = (float(m["sharpe"]), float(m["neg_max_drawdown"]), float(m["hit_rate"]))
        out[int(m["index"])] = (objectives, float(m["child_seconds"]))
    if sorted(out) != [c.index for c in children]:
        raise RuntimeError(f"PBT ran children {sorted(out)}; expected {len(children)}")
    return out


def max_difference(a: dict[int, Objectives], b: dict[int, Objectives]) -> float:
    """Largest |a - b| over children and objectives (NaN on both sides counts as equal)."""
    worst = 0.0
    for index in a.keys() | b.keys():
        if index not in a or index not in b:
            return math.inf
        for x, y in zip(a[index], b[index], strict=True):
            if math.isnan(x) and math.isnan(y):
                continue
            worst = max(worst, abs(x - y) if not (math.isnan(x) or math.isnan(y)) else math.inf)
    return worst


def objectives_of(reports: dict[int, ChildReport]) -> dict[int, Objectives]:
    return {i: r.objectives for i, r in reports.items()}


class CpuMeter:
    """CPU seconds of this process tree while it runs, polled every 100 ms per process (first
    and last seen), since processes come and go (Tune starts an actor per trial)."""

    def __init__(self) -> None:
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.stop = threading.Event()
        self.poll(initial=True)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def poll(self, *, initial: bool = False) -> None:
        me = psutil.Process()
        for proc in [me, *me.children(recursive=True)]:
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            self.first.setdefault(proc.pid, t.user + t.system if initial else 0.0)
            self.last[proc.pid] = t.user + t.system

    def run(self) -> None:
        while not self.stop.wait(0.1):
            self.poll()

    def seconds(self) -> float:
        self.stop.set()
        self.thread.join()
        self.poll()
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


def timed(fn: Callable[[], Any]) -> tuple[float, Any, float]:
    """(wall seconds, result, cores kept busy: CPU seconds / wall seconds, at most 2.0 here)."""
    meter, start = CpuMeter(), time.perf_counter()
    out = fn()
    wall = time.perf_counter() - start
    return wall, out, meter.seconds() / wall


# --- memory ------------------------------------------------------------------------------------


@dataclass
class Peak:
    """Peaks over the samples of one run, in bytes (see the module doc for what each counts)."""

    total: float = 0.0  # sum of private anonymous memory + the object store's pages once
    anon: float = 0.0
    shmem: float = 0.0
    rss: float = 0.0  # naive sum of RSS (shared pages once per process), for reference
    processes: int = 0
    samples: int = 0


_STATUS_FIELDS = ("RssAnon", "RssFile", "RssShmem")


def read_status(pid: int) -> dict[str, int]:
    """RssAnon, RssFile and RssShmem of ``pid`` in bytes (``/proc/<pid>/status``: O(1) to read)."""
    out = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            name, _, value = line.partition(":")
            if name in _STATUS_FIELDS:
                out[name] = int(value.split()[0]) * 1024  # kB
    return out


def sample_tree(root: psutil.Process) -> tuple[float, float, float, int]:
    """(sum of RssAnon, max of RssShmem, sum of RSS) over ``root`` and its descendants; count."""
    anon = shmem = rss = 0.0
    count = 0
    try:
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0, 0.0, 0.0, 0
    for proc in tree:
        try:
            status = read_status(proc.pid)
        except (OSError, ValueError):  # exited between the listing and the read
            continue
        anon += status.get("RssAnon", 0)
        shmem = max(shmem, status.get("RssShmem", 0))
        rss += sum(status.values())
        count += 1
    return anon, shmem, rss, count


def watch(pid: int, stop: threading.Event, peak: Peak) -> None:
    root = psutil.Process(pid)
    while not stop.is_set():
        anon, shmem, rss, count = sample_tree(root)
        peak.total = max(peak.total, anon + shmem)
        peak.anon, peak.shmem = max(peak.anon, anon), max(peak.shmem, shmem)
        peak.rss, peak.processes = max(peak.rss, rss), max(peak.processes, count)
        peak.samples += 1
        stop.wait(SAMPLE_EVERY_S)


def measure_memory(n: int, args: argparse.Namespace, store_url: str) -> tuple[Peak, dict[str, Any]]:
    """Peak memory of a fresh process running one generation of ``n`` children on the pool."""
    command = [sys.executable, __file__, "--memory-run", str(n), "--store-url", store_url,
               "--epochs", str(args.epochs)]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO)
    peak, stop = Peak(), threading.Event()
    thread = threading.Thread(target=watch, args=(proc.pid, stop, peak), daemon=True)
    thread.start()
    out, _ = proc.communicate(timeout=1800)
    stop.set()
    thread.join()
    if proc.returncode != 0:
        raise RuntimeError(f"memory run with {n} children exited with {proc.returncode}")
    return peak, json.loads(out.strip().splitlines()[-1])


def memory_run(n: int, store_url: str, epochs: int) -> None:
    """The process ``measure_memory`` watches: prints one JSON line (objectives, seconds)."""
    dataset = load_dataset(store_url)
    children = population(n, epochs)
    start_ray()
    with tempfile.TemporaryDirectory(prefix="redline-bench-mem-") as tmp:
        start = time.perf_counter()
        pool = new_pool(Path(tmp), dataset)
        reports = run_pool(pool, redline_tasks(dataset, children, 0))
        seconds = time.perf_counter() - start
        pool.close()
    ray.shutdown()
    objectives = {i: list(o) for i, o in objectives_of(reports).items()}
    print(json.dumps({"seconds": seconds, "objectives": objectives}))


# --- main --------------------------------------------------------------------------------------


def load_now() -> str:
    """The 1-minute load average: above 2 on 2 cores, something else was running too."""
    return f"load {os.getloadavg()[0]:.1f}"


def mb(value: float) -> float:
    return value / 2**20


def mean_seconds(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def best_of(repeats: int, fn: Callable[[int], Any]) -> tuple[float, Any, float]:
    """``timed`` of ``fn(k)`` for k in range(repeats): the fastest (wall, result, cores)."""
    return min((timed(partial(fn, k)) for k in range(repeats)), key=lambda run: run[0])


def dataset_mb(dataset: Dataset) -> float:
    arrays = [getattr(dataset, f.name) for f in fields(dataset)]
    return mb(sum(a.nbytes for a in arrays if isinstance(a, np.ndarray)))


def mode_line(label: str, wall: float, each: float, cores: float, extra: str = "") -> None:
    print(f"{label:20s} {wall:7.2f}s  ({each:.2f}s per child; {cores:.2f} cores busy; "
          f"{load_now()}{extra})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 epochs per child, one repeat")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of every child (8)")
    parser.add_argument("--repeats", type=int, default=None, help="best of N per mode (3)")
    parser.add_argument("--memory-run", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--store-url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.epochs = args.epochs or (3 if args.quick else 8)
    repeats = args.repeats or (1 if args.quick else 3)
    if args.memory_run:
        memory_run(args.memory_run, args.store_url, args.epochs)
        return

    load = os.getloadavg()[0]
    print(f"machine: {psutil.cpu_count()} CPUs, load average {load:.2f} at start"
          + ("  (busy: other processes share the cores)" if load > 0.5 else ""))  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="redline-bench-pop-") as tmp_dir:
        tmp = Path(tmp_dir)
        store_url = f"sqlite:///{tmp / 'redline.db'}"
        dataset = load_dataset(store_url)
        children = population(max(MEMORY_SIZES), args.epochs)
        print(f"dataset {SPECIALTY}/{dataset.name}: {dataset.n_rows:,} rows x "
              f"{dataset.features.shape[1]} features, {dataset_mb(dataset):.1f} MB of arrays "
              f"(real BTC/USDT 1h of the shipped sample)")  # fmt: skip
        print(f"population: {len(children)} children, genomes from initial_population(seed "
              f"{ROOT_SEED}), cost genes pinned: {COST_GENES | {'epochs': args.epochs}}; "
              f"best of {repeats} per mode")  # fmt: skip

        t_seq, seq, c_seq = best_of(repeats, lambda k: run_sequential(dataset, children))
        mode_line("sequential loop", t_seq, mean_seconds([r.train_seconds for r in seq.values()]),
                  c_seq, f"; {sum(not r.ok for r in seq.values())} failed")  # fmt: skip

        processes = ready_process_pool(dataset)
        t_par, par, c_par = best_of(repeats, lambda k: run_processes(processes, children))
        processes.close()
        processes.join()
        mode_line("2 plain processes", t_par, mean_seconds([sec for _, sec in par.values()]),
                  c_par, "; multiprocessing, no Ray: the ceiling on this machine")  # fmt: skip

        start_ray()
        # The pool is made once per run, before generation 0 (cluster/evolve.py): its start
        # (actor processes, their imports of torch and Redline, ray.put) is timed on its own.
        t_start, pool, _ = timed(lambda: ready_pool(tmp / "home", dataset))
        t_red, red, c_red = best_of(
            repeats, lambda k: run_pool(pool, redline_tasks(dataset, children, k))
        )
        shared = ray.get(next(iter(pool.refs.values())), timeout=60)
        zero_copy = not shared.features.flags.writeable  # a read-only view of the object store
        pool.close()
        print(f"redline pool start   {t_start:7.2f}s  ({pool.size} actors up, dataset put once)")
        mode_line("redline generation", t_red,
                  mean_seconds([r.train_seconds for r in red.values()]), c_red)  # fmt: skip

        t_pbt, pbt, c_pbt = best_of(repeats, lambda k: run_pbt(dataset, children, tmp / f"tune{k}"))
        mode_line("ray tune PBT", t_pbt, mean_seconds([sec for _, sec in pbt.values()]), c_pbt)
        if not args.quick:
            t_reuse, _, c_reuse = timed(
                lambda: run_pbt(dataset, children, tmp / "tune-reuse", reuse_actors=True)
            )
            print(f"ray tune PBT, reuse_actors=True (for reference): {t_reuse:.2f}s "
                  f"({c_reuse:.2f} cores busy)")  # fmt: skip
        ray.shutdown()

        seq_obj = objectives_of(seq)
        diffs = {
            "redline": max_difference(seq_obj, objectives_of(red)),
            "pbt": max_difference(seq_obj, {i: o for i, (o, _) in pbt.items()}),
            "2 processes": max_difference(seq_obj, {i: o for i, (o, _) in par.items()}),
        }
        print("max |objective difference| vs the sequential loop: "
              + ", ".join(f"{k} {v:.3g}" for k, v in diffs.items()))  # fmt: skip
        print(f"dataset read zero-copy from the object store: {zero_copy}")

        peaks: dict[int, Peak] = {}
        for n in MEMORY_SIZES:
            peak, result = measure_memory(n, args, store_url)
            got = {int(i): (o[0], o[1], o[2]) for i, o in result["objectives"].items()}
            diff = max_difference({i: seq_obj[i] for i in got}, got)
            peaks[n] = peak
            print(f"memory {n} children: peak {mb(peak.total):7.1f} MB  (private "
                  f"{mb(peak.anon):.1f} + object store {mb(peak.shmem):.1f}; naive RSS sum "
                  f"{mb(peak.rss):.1f}; "
                  f"{peak.processes} processes, {peak.samples} samples; pool + generation "
                  f"{result['seconds']:.1f}s; objectives differ by {diff:.3g})")  # fmt: skip

    vs_seq, vs_pbt = t_seq / t_red, t_pbt / t_red
    t_cold = t_start + t_red
    growth = mb(peaks[8].total - peaks[2].total)
    if c_red < 0.9 * NUM_CPUS:
        print(f"note: the pool's generation kept only {c_red:.2f} of {NUM_CPUS} cores busy: other "
              "processes were using the machine (Ray workers run at niceness 15), so vs_sequential "
              "understates it; re-run on a quiet machine")  # fmt: skip
    load_1, load_5, _ = os.getloadavg()
    print(f"load average at the end: {load_1:.2f} (1 min), {load_5:.2f} (5 min)")
    print(f"times: sequential {t_seq:.2f}s, redline {t_red:.2f}s (+ pool start {t_start:.2f}s "
          f"= {t_cold:.2f}s), pbt {t_pbt:.2f}s, 2 plain processes {t_par:.2f}s")  # fmt: skip
    print(f"goal vs_sequential >= 1.8: {vs_seq:.2f}x ({'met' if vs_seq >= 1.8 else 'NOT met'}); "
          f"with the pool start {t_seq / t_cold:.2f}x; 2 plain processes {t_seq / t_par:.2f}x "
          f"(redline reaches {t_par / t_red:.0%} of that ceiling)")  # fmt: skip
    print(f"goal redline <= 0.7 x pbt: {t_red / t_pbt:.2f} "
          f"({'met' if t_red / t_pbt <= 0.7 else 'NOT met'}); "
          f"with the pool start {t_cold / t_pbt:.2f}")  # fmt: skip
    print(f"RESULT vs_sequential={vs_seq:.2f} vs_pbt={vs_pbt:.2f} rss_8_minus_2_mb={growth:.1f}")


if __name__ == "__main__":
    main()
