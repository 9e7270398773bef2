"""Benchmark the population: one generation on Redline's actor pool, in a plain loop, and in Ray Tune.

Run from the repo root with the venv's python:  .venv/bin/python benchmarks/population.py [--quick]

The population: 8 technical_analyst children, genomes from ``evolution.seeds.initial_population``
(root seed 7) and seeds from ``child_seed``, on the real BTC/USDT 1h candles of the shipped sample
(``market/sample``, imported into a temporary SQLite store with ``cluster.ingest.ensure_sample``;
the dataset is built once with ``agents.datasets.build_datasets``). The genes that set a child's
cost are pinned to the same values for every child (``COST_GENES``: lookback, feature_set,
hidden, depth, epochs, batch_size), so every child does the same training work; the others (lr,
dropout, weight_decay, horizon, threshold) keep their drawn values and make the children differ.

Modes, each one generation of the same 8 (genome, seed) pairs, timed with a wall clock:
- sequential: ``agents.training.train_child`` for each genome in a for loop in this process, as a
  user would write it without Ray (its defaults: one torch thread).
- redline: ``cluster.pool.RayPool`` on ``ray.init(num_cpus=2)`` (a pool of 2 ``ChildAgent``
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
  configs and never perturbs. Tune's defaults otherwise (``reuse_actors=False``).
The three must give the same objectives for the same genome and seed (training is deterministic
with one torch thread): the maximum absolute difference is printed.

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
that loads the same libraries, on this machine too) are left out; they depend on the number of
processes, not on the children, and the pool has 2 actors whatever the population size. The
naive sum of RSS (shared pages counted once per process) is printed beside it for reference.
PSS (``smaps_rollup``) would split shared pages fairly but costs tens of ms per process to read,
too slow for a 50 ms sampler over a dozen processes, and its share of the libraries moves with
whatever else runs on the machine. ``rss_8_minus_2_mb`` is the peak with 8 children minus the
one with 2: the dataset is in the object store once, so it should be near zero.

The last line is ``RESULT vs_sequential=<t_seq/t_redline> vs_pbt=<t_pbt/t_redline>
rss_8_minus_2_mb=...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402
import ray  # noqa: E402

from agents.child import TrainOutcome, TrainTask  # noqa: E402
from agents.dataset import Dataset  # noqa: E402
from agents.datasets import DataSources, build_datasets  # noqa: E402
from agents.genome import Genome  # noqa: E402
from agents.specialties import get_specialty  # noqa: E402
from agents.training import ChildReport, train_child  # noqa: E402
from cluster.ingest import ensure_sample  # noqa: E402
from cluster.pool import RayPool  # noqa: E402
from evolution.seeds import child_seed, initial_population  # noqa: E402
from store.db import Store  # noqa: E402

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


# --- the three modes ---------------------------------------------------------------------------


def run_sequential(dataset: Dataset, children: Sequence[Child]) -> dict[int, ChildReport]:
    reports = {}
    for child in children:
        report, _ = train_child(
            dataset, child.genome, seed=child.seed, agent_id=child.agent_id, generation=0
        )
        reports[child.index] = report
    return reports


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
    """CPU seconds used by this process and all its descendants while it runs.

    Processes come and go (Tune starts an actor per trial, ``ray.kill`` ends the pool's), so a
    thread polls the tree every 100 ms and keeps, per process, its CPU time when first and last
    seen: a process that exits loses at most its last 100 ms.
    """

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
    """(wall seconds, result, cores the run kept busy on average: CPU seconds / wall seconds).

    On 2 cores the parallel modes can use up to 2.0; less means they waited (or other
    processes on the machine took the cores: Ray starts its workers at niceness 15).
    """
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
    print(json.dumps({"seconds": seconds,
                      "objectives": {i: list(o) for i, o in objectives_of(reports).items()}}))  # fmt: skip


# --- main --------------------------------------------------------------------------------------


def load_now() -> str:
    """The 1-minute load average: above 2 on 2 cores, something else was running too."""
    return f"load {os.getloadavg()[0]:.1f}"


def mb(value: float) -> float:
    return value / 2**20


def mean_seconds(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="lighter children (fewer epochs)")
    parser.add_argument("--children", type=int, default=8, help="population size (default 8)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of every child")
    parser.add_argument("--memory-run", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--store-url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epochs is None:
        args.epochs = 3 if args.quick else 8
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
        children = population(args.children, args.epochs)
        cost = {**COST_GENES, "epochs": args.epochs}
        print(f"dataset {SPECIALTY}/{dataset.name}: {dataset.n_rows:,} rows x "
              f"{dataset.features.shape[1]} features ({dataset.features.nbytes / 2**20:.1f} MB), "
              f"shipped sample")  # fmt: skip
        print(f"population: {len(children)} children, genomes from initial_population(seed "
              f"{ROOT_SEED}), cost genes pinned: {cost}")  # fmt: skip

        t_seq, seq, c_seq = timed(lambda: run_sequential(dataset, children))
        seq_each = mean_seconds([r.train_seconds for r in seq.values()])
        failed = sum(not r.ok for r in seq.values())
        print(f"sequential loop      {t_seq:7.2f}s  ({seq_each:.2f}s per child, {failed} failed; "
              f"{c_seq:.2f} cores busy; {load_now()})")  # fmt: skip

        start_ray()
        # The pool is made once per run, before generation 0 (cluster/evolve.py): its start
        # (actor processes, their imports of torch and Redline, ray.put) is timed on its own.
        t_start, pool, _ = timed(lambda: ready_pool(tmp / "home", dataset))
        t_redline, red, c_red = timed(lambda: run_pool(pool, redline_tasks(dataset, children, 0)))
        shared = ray.get(next(iter(pool.refs.values())), timeout=60)
        zero_copy = not shared.features.flags.writeable  # a read-only view of the object store
        pool.close()
        red_each = mean_seconds([r.train_seconds for r in red.values()])
        print(f"redline pool start   {t_start:7.2f}s  ({pool.size} actors up, dataset put once)")
        print(f"redline generation   {t_redline:7.2f}s  ({red_each:.2f}s per child; {c_red:.2f} "
              f"cores busy; {load_now()})")  # fmt: skip

        t_pbt, pbt, c_pbt = timed(lambda: run_pbt(dataset, children, tmp / "tune"))
        pbt_each = mean_seconds([s for _, s in pbt.values()])
        print(f"ray tune PBT         {t_pbt:7.2f}s  ({pbt_each:.2f}s per child; {c_pbt:.2f} cores "
              f"busy; {load_now()})")  # fmt: skip
        if not args.quick:
            t_reuse, _, _ = timed(
                lambda: run_pbt(dataset, children, tmp / "tune2", reuse_actors=True)
            )
            print(f"ray tune PBT (reuse_actors=True, for reference) {t_reuse:7.2f}s")
        ray.shutdown()

        seq_obj = objectives_of(seq)
        diffs = {
            "redline": max_difference(seq_obj, objectives_of(red)),
            "pbt": max_difference(seq_obj, {i: o for i, (o, _) in pbt.items()}),
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
            print(f"memory {n} children: peak {mb(peak.total):7.1f} MB  (private {mb(peak.anon):.1f}"
                  f" + object store {mb(peak.shmem):.1f}; naive RSS sum {mb(peak.rss):.1f}; "
                  f"{peak.processes} processes, {peak.samples} samples; generation "
                  f"{result['seconds']:.1f}s; objectives differ by {diff:.3g})")  # fmt: skip

    vs_seq, vs_pbt = t_seq / t_redline, t_pbt / t_redline
    t_cold = t_start + t_redline
    growth = mb(peaks[8].total - peaks[2].total)
    if c_red < 0.9 * NUM_CPUS:
        print(f"note: the pool's generation kept only {c_red:.2f} of {NUM_CPUS} cores busy: other "
              "processes were using the machine (Ray workers run at niceness 15), so vs_sequential "
              "understates it; re-run on a quiet machine")  # fmt: skip
    load_1, load_5, _ = os.getloadavg()
    print(f"load average at the end: {load_1:.2f} (1 min), {load_5:.2f} (5 min)")
    print(f"times: sequential {t_seq:.2f}s, redline {t_redline:.2f}s (+ pool start {t_start:.2f}s "
          f"= {t_cold:.2f}s), pbt {t_pbt:.2f}s")  # fmt: skip
    print(f"goal vs_sequential >= 1.8: {vs_seq:.2f}x ({'met' if vs_seq >= 1.8 else 'NOT met'}); "
          f"with the pool start {t_seq / t_cold:.2f}x")  # fmt: skip
    print(f"goal redline <= 0.7 x pbt: {t_redline / t_pbt:.2f} "
          f"({'met' if t_redline / t_pbt <= 0.7 else 'NOT met'}); "
          f"with the pool start {t_cold / t_pbt:.2f}")  # fmt: skip
    print(f"RESULT vs_sequential={vs_seq:.2f} vs_pbt={vs_pbt:.2f} rss_8_minus_2_mb={growth:.1f}")


if __name__ == "__main__":
    main()
