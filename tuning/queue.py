"""The training queue: grids of configs in the ``training_queue`` table, run through Ray Tune.

``add_grid`` puts one row per config of a grid in the queue (the row's key is the config hash, so a
config already queued or already trained is skipped). ``start`` runs the QUEUED rows in the
foreground, one Tune experiment per grid (``tune-<grid_hash[:12]>``, a ``runs`` row), until the
queue is empty or another terminal pauses or cancels it; after every trial the trained model is
considered for champion of each regime (``evolution.crowning.consider_tune_run``, with the grid's
``champions:`` overrides on top of the config's policy), on one thread beside Tune's event loop,
in the order the trials finished.

The queue's state lives in the database, not in Tune: a trial marks its row RUNNING, and writes
its result, its inference backtests and its row DONE (or FAILED) in one transaction
(``TrainingStore.finish_training_run``). So a queue stopped at any point (``pause``, Ctrl-C, a
SIGKILL of the process) holds exactly the configs left to train: ``start`` and ``resume`` set
RUNNING rows back to QUEUED (their trials died with the process that ran them) and train only
those. Tune's own experiment state under ``tune/<experiment>/`` is its log, never what decides
what runs next (Tune's restore has lost searcher state before, ray-project/ray#30861).

Bayesian grids (``search: optuna``) cannot list their configs in advance: Optuna suggests each
one from the results so far. Their queue holds ``num_samples`` *slots*, rows keyed by the hash of
``{"grid_hash": ..., "slot": i}`` whose config is the grid itself (``{"optuna_slot": i, "spec":
<the grid>}``); each finished trial closes the lowest open slot (DONE or FAILED, the reason naming
the config it trained, whose ``training_runs`` row holds the result). Before a run the searcher is
rebuilt from the database (``tuning.runner.optuna_history``: every trained config in the
grid's search space, with its best Sharpe, as evaluated points), and slots are reconciled with the experiment's ``training_runs`` rows, so a kill between
a trial's transaction and its slot's update neither loses nor repeats a trial.

One ``start`` per data root at a time: it holds an ``flock`` on ``tune/queue.lock`` (released by
the kernel even on SIGKILL), which is also what tells ``cancel`` whether a run is live.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from queue import Queue
from typing import TYPE_CHECKING, Any

from market.regimes import RegimeRules
from store.db import Store
from store.records.champions import PromotionDecision
from store.records.population import RunStatus
from store.records.training import QueueItemRecord, QueueStatus, TrainingRunRecord, TrainingStatus
from store.runs import RunStore
from store.training import TrainingStore
from tuning.grids import GridSpec, compute_config_hash, expand, grid_hash

if TYPE_CHECKING:  # the champion rules import scipy: loaded when a model is judged
    from evolution.champions import ChampionPolicy

__all__ = [
    "ACTIVE",
    "QueueBusyError",
    "QueueProgress",
    "QueueRun",
    "add_grid",
    "clean_cancelled",
    "experiment_id",
    "queue_lock",
    "queue_running",
    "start",
    "tune_checkpoint",
]

logger = logging.getLogger(__name__)

#: Queue statuses of rows that still have work to do (PAUSED waits for ``resume``).
ACTIVE = (QueueStatus.QUEUED, QueueStatus.RUNNING, QueueStatus.PAUSED)
#: How often (seconds) a running queue reads the database for a pause or a cancel.
POLL_S = 1.0
OPTUNA_SLOT = "optuna_slot"


class QueueBusyError(ValueError):
    """Another ``redline queue start`` holds this data root's queue; the message names its pid."""


def experiment_id(grid_hash_: str) -> str:
    """The ``runs`` row (and Tune experiment name) of a grid: ``tune-<grid_hash[:12]>``."""
    return f"tune-{grid_hash_[:12]}"


def tune_checkpoint(home: Path, config_hash: str) -> Path:
    """Where a trial saves its model: ``checkpoints/tune/<config_hash>.pt`` (tuning.runner)."""
    return home / "checkpoints" / "tune" / f"{config_hash}.pt"


def is_slot(item: QueueItemRecord) -> bool:
    """An Optuna slot (its config is filled by the searcher), not a config of its own."""
    return OPTUNA_SLOT in item.config


# -- adding a grid -----------------------------------------------------------------------------------


def spec_config(spec: GridSpec) -> dict[str, Any]:
    """The grid as plain JSON values (its file path left out): the experiment's ``runs`` config."""
    return json.loads(json.dumps(spec.canonical()))


def add_grid(tstore: TrainingStore, spec: GridSpec, rules: RegimeRules) -> tuple[int, int]:
    """Queue every config of ``spec``; returns (added, skipped: already queued or trained).

    Also creates the grid's experiment row (``runs``: ``tune-<grid_hash[:12]>``, its config the
    grid, so the grid's champion overrides are found again by ``start``, its settings the regime
    ``rules`` its trials are labelled and judged under). A config listed twice by the grid is
    queued once (the second counts as skipped). Raises ValueError when the experiment exists
    under other rules: its models were judged under those.
    """
    digest = grid_hash(spec)
    grid = spec_config(spec)
    experiment = experiment_id(digest)
    tstore.ensure_experiment(experiment, grid, spec.seed, settings={"regimes": rules.to_dict()})
    stored = tstore.runs.require_run(experiment).regime_rules
    if stored is not None and stored != rules:
        raise ValueError(
            f"regimes: experiment {experiment} was added under regime rules {stored.digest()}; "
            f"this config's are {rules.digest()}. Its models were judged under the first: rename "
            "the grid (its `name:`) to run it under the new rules"
        )
    items: dict[str, QueueItemRecord] = {}
    repeated = 0
    if spec.search == "optuna":
        configs = [{OPTUNA_SLOT: slot, "spec": grid} for slot in range(spec.num_samples)]
        keys = [compute_config_hash({"grid_hash": digest, "slot": s}) for s in range(len(configs))]
    else:
        configs = expand(spec)
        keys = [compute_config_hash(config) for config in configs]
    for key, config in zip(keys, configs, strict=True):
        if key in items:
            repeated += 1
            continue
        items[key] = QueueItemRecord(
            config_hash=key,
            grid=spec.name,
            grid_hash=digest,
            specialty=spec.specialty,
            config=config,
        )
    added, skipped = tstore.enqueue(list(items.values()))
    return added, skipped + repeated


# -- one runner per data root --------------------------------------------------------------------


def _lock_path(home: Path) -> Path:
    return home / "tune" / "queue.lock"


@contextmanager
def queue_lock(home: Path) -> Iterator[None]:
    """Hold the data root's queue for this process; QueueBusyError when another holds it."""
    path = _lock_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise QueueBusyError(
                f"the training queue of {home} is already running (`redline queue start`, pid "
                f"{holder}); watch it with `redline queue status`, stop it with `redline queue "
                "pause` or `redline queue cancel`"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def queue_running(home: Path) -> int | None:
    """The pid of the ``queue start`` running on ``home``, or None when none is."""
    path = _lock_path(home)
    if not path.exists():
        return None
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            text = handle.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


# -- cancelling ----------------------------------------------------------------------------------


def _checkpoint_files(home: Path) -> dict[str, list[Path]]:
    """Files under ``checkpoints/tune/`` by config hash: ``<hash>.pt`` and the temporary
    ``.<hash>.pt.tmp`` a trial killed mid-write leaves."""
    folder = tune_checkpoint(home, "x").parent
    found: dict[str, list[Path]] = {}
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_file():
                found.setdefault(path.name.lstrip(".").split(".", 1)[0], []).append(path)
    return found


def clean_cancelled(tstore: TrainingStore, home: Path, *, tune_state: bool = False) -> list[Path]:
    """Remove what cancelled configs left: files and rows of configs that never finished.

    For every CANCELLED queue row without a DONE ``training_runs`` row: its model file (and any
    temporary) and its unfinished ``training_runs`` row. For a cancelled Optuna slot, the same for
    its experiment's unfinished rows once no slot of the grid is active. With ``tune_state`` (only
    when no ``queue start`` is running: Tune may still be writing there), also the Tune folder
    ``tune/<experiment>/`` of a grid that has nothing left: no active row and no trained config.
    Idempotent; returns the files and folders removed.
    """
    items = tstore.queue_items()
    active = {item.config_hash for item in items if item.status in ACTIVE}
    active_grids = {item.grid_hash for item in items if item.status in ACTIVE}
    cancelled = [item for item in items if item.status == QueueStatus.CANCELLED]
    if not cancelled:
        return []
    runs = {run.config_hash: run for run in tstore.training_runs()}
    files = _checkpoint_files(home)
    removed: list[Path] = []

    def drop(config_hash: str) -> None:
        if config_hash in runs:
            tstore.delete_training_run(config_hash)
        for path in files.pop(config_hash, []):
            path.unlink(missing_ok=True)
            removed.append(path)

    for item in cancelled:
        run = runs.get(item.config_hash)
        if not is_slot(item) and (run is None or run.status != TrainingStatus.DONE):
            drop(item.config_hash)
    for digest in sorted({item.grid_hash for item in cancelled} - active_grids):
        experiment = experiment_id(digest)
        mine = [run for run in runs.values() if run.experiment == experiment]
        for run in mine:  # an Optuna trial's row is keyed by its config, not by its slot
            if (
                run.status in (TrainingStatus.PENDING, TrainingStatus.RUNNING)
                and run.config_hash not in active
            ):
                drop(run.config_hash)
        folder = home / "tune" / experiment
        trained = any(run.status in (TrainingStatus.DONE, TrainingStatus.FAILED) for run in mine)
        if tune_state and not trained and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


# -- running -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueProgress:
    """What ``start`` reports after every trial and poll (rendered by ``redline queue start``)."""

    grid: str
    experiment: str
    total: int  # the grid's configs (or Optuna slots) this start trains
    done: int
    failed: int
    running: int  # queue rows RUNNING (read from the database)
    best_sharpe: float | None
    best_config: str | None


@dataclass
class QueueRun:
    """How a ``start`` ended; ``stopped`` is "" (queue empty), "paused", "cancelled" or
    "interrupted" (Ctrl-C)."""

    done: int = 0
    failed: int = 0
    skipped: int = 0  # already trained (by another grid, or proposed again by Optuna)
    reset: int = 0  # RUNNING rows of a dead process set back to QUEUED at the start
    stopped: str = ""
    seconds: float = 0.0
    best_sharpe: float | None = None
    best_config: str | None = None
    experiments: list[str] = field(default_factory=list)
    promotions: list[str] = field(default_factory=list)  # "<specialty>/<regime>" per promotion
    champion_seconds: float = 0.0  # spent judging models for champion (off Tune's event loop)
    left: dict[str, int] = field(default_factory=dict)  # queue counts at the end


ProgressFn = Callable[[QueueProgress], None]


def start(
    store: Store,
    home: Path,
    *,
    policy: ChampionPolicy,
    max_concurrent: int | None = None,
    resume: bool = False,
    on_progress: ProgressFn | None = None,
    on_trial: Callable[[Any], None] | None = None,
    poll_s: float = POLL_S,
) -> QueueRun:
    """Train the QUEUED configs (``resume``: first PAUSED and RUNNING back to QUEUED) until the
    queue is empty or is paused or cancelled from elsewhere. Ray must be up
    (``cluster.session.ensure_ray``). Raises QueueBusyError when another start holds the queue.
    ``on_trial`` sees every ``tuning.runner.TrialOutcome`` (after the queue handled it).
    """
    tstore = store.training
    runs = store.runs
    began = time.monotonic()
    result = QueueRun()
    with queue_lock(home):
        if resume:
            result.reset = tstore.resume_queue()
        else:  # RUNNING rows were left by a process that died: nobody else holds the lock
            running = [item.config_hash for item in tstore.queue_items(status=QueueStatus.RUNNING)]
            result.reset = tstore.set_queue_status(running, QueueStatus.QUEUED) if running else 0
        clean_cancelled(tstore, home, tune_state=True)
        _reconcile_slots(tstore)
        _consider_unconsidered(store, policy, result)
        attempted: set[str] = set()
        while not result.stopped:
            queued = [
                i
                for i in tstore.queue_items(status=QueueStatus.QUEUED)
                if i.grid_hash not in attempted
            ]
            if not queued:
                break
            digest = queued[0].grid_hash
            attempted.add(digest)  # a grid runs once per start: no loop on a stuck row
            batch = [item for item in queued if item.grid_hash == digest]
            _run_grid(store, tstore, runs, home, batch, policy, max_concurrent, on_progress,
                      on_trial, poll_s, result)  # fmt: skip
        _finish_experiments(tstore, runs, result)
        clean_cancelled(tstore, home, tune_state=True)
    result.seconds = time.monotonic() - began
    result.left = tstore.queue_counts()
    return result


def _policy_for(runs: RunStore, experiment: str, base: ChampionPolicy) -> ChampionPolicy:
    """The config's champion policy with the grid's ``champions:`` overrides on top."""
    run = runs.get_run(experiment)
    overrides = dict(run.config.get("champions") or {}) if run is not None else {}
    return replace(base, **overrides) if overrides else base


def _timeframe(config: Mapping[str, Any]) -> str:
    data = config.get("data") or {}
    return str(data.get("timeframe", "1h"))


def _consider(store: Store, config_hash: str, policy: ChampionPolicy, out: QueueRun) -> None:
    """Consider one trained model for champion in every regime it was scored in."""
    from evolution.crowning import consider_tune_run

    record = store.training.training_run(config_hash)
    if record is None or record.status != TrainingStatus.DONE:
        return
    backtests = store.training.backtests(config_hash)
    decided = consider_tune_run(
        store, record, backtests, _policy_for(store.runs, record.experiment, policy),
        _timeframe(record.config),
    )  # fmt: skip
    promoted = [p for p in decided if p.decision == PromotionDecision.PROMOTED]
    out.promotions += [f"{p.specialty}/{p.regime}" for p in promoted]


class _Judge:
    """Champion decisions off Tune's event loop: one thread judges finished models in the order
    they finished (promotions depend on the order), so the driver goes back to scheduling trials
    at once. ``close`` waits for the last decision. An error is logged and the model is judged
    again by the next ``start`` (it is not judged yet)."""

    def __init__(self, store: Store, policy: ChampionPolicy, out: QueueRun) -> None:
        self.store = store
        self.policy = policy
        self.out = out
        self.todo: Queue[str | None] = Queue()
        self.thread = threading.Thread(target=self._run, name="queue-champions", daemon=True)
        self.thread.start()

    def submit(self, config_hash: str) -> None:
        self.todo.put(config_hash)

    def _run(self) -> None:
        while (config_hash := self.todo.get()) is not None:
            began = time.perf_counter()
            try:
                _consider(self.store, config_hash, self.policy, self.out)
            except Exception:
                logger.exception("considering %s for champion failed", config_hash[:12])
            self.out.champion_seconds += time.perf_counter() - began

    def close(self) -> None:
        self.todo.put(None)
        self.thread.join()


def _consider_unconsidered(store: Store, policy: ChampionPolicy, out: QueueRun) -> None:
    """Models trained before a kill landed between their transaction and their consideration:
    DONE runs no promotion names as challenger (``consider_tune_run`` is idempotent, so a model
    with no regime to be judged in, considered again, changes nothing)."""
    judged = {promotion.challenger for promotion in store.champions.promotions()}
    champions = {row.model for row in store.champions.champions()}
    for run in store.training.training_runs(status=TrainingStatus.DONE):
        model = f"{run.experiment}/{run.agent_id}"
        if model not in judged and model not in champions:
            _consider(store, run.config_hash, policy, out)


def _reconcile_slots(tstore: TrainingStore) -> None:
    """Close as many Optuna slots of each grid as its experiment has trained configs (a kill can
    land between a trial's transaction and the update of its slot)."""
    slots: dict[str, list[QueueItemRecord]] = {}
    for item in tstore.queue_items():
        if is_slot(item):
            slots.setdefault(item.grid_hash, []).append(item)
    for digest, items in slots.items():
        trained = [
            run
            for run in tstore.training_runs(experiment=experiment_id(digest))
            if run.status in (TrainingStatus.DONE, TrainingStatus.FAILED)
        ]
        closed = sum(item.status in (QueueStatus.DONE, QueueStatus.FAILED) for item in items)
        open_ = [item for item in items if item.status in ACTIVE]
        for item, run in zip(open_, trained[closed:], strict=False):
            tstore.set_queue_status(
                [item.config_hash], run.status, reason=f"trained {run.agent_id}"
            )


class _Inert:
    """What a pickled :class:`_Local` becomes: a callable returning ``value``."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self, *args: Any) -> Any:
        return self.value


class _Local:
    """A callable bound to this process (database handles, the progress bar). Tune pickles its
    run config (stopper, callbacks) into the experiment's state for ``Tuner.restore``; the queue
    never restores from it, so the pickled copy is inert instead of failing to pickle."""

    def __init__(self, fn: Callable[..., Any], inert: Any) -> None:
        self.fn = fn
        self.inert = inert

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)

    def __reduce__(self) -> tuple[type[_Inert], tuple[Any]]:
        return _Inert, (self.inert,)


class _Watch:
    """``should_stop`` for Tune: reads the batch's rows at most every ``poll_s`` seconds."""

    def __init__(self, tstore: TrainingStore, hashes: set[str], poll_s: float) -> None:
        self.tstore = tstore
        self.hashes = hashes
        self.poll_s = poll_s
        self.stopped = ""
        self.running = 0
        self.polled = -math.inf
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if now - self.polled >= self.poll_s and not self.stopped:
                self.polled = now
                statuses = {
                    item.config_hash: item.status
                    for item in self.tstore.queue_items(
                        status=(QueueStatus.RUNNING, QueueStatus.PAUSED, QueueStatus.CANCELLED)
                    )
                    if item.config_hash in self.hashes
                }
                self.running = sum(s == QueueStatus.RUNNING for s in statuses.values())
                if QueueStatus.CANCELLED in statuses.values():
                    self.stopped = "cancelled"
                elif QueueStatus.PAUSED in statuses.values():
                    self.stopped = "paused"
            return bool(self.stopped)


def _run_grid(
    store: Store,
    tstore: TrainingStore,
    runs: RunStore,
    home: Path,
    batch: Sequence[QueueItemRecord],
    policy: ChampionPolicy,
    max_concurrent: int | None,
    on_progress: ProgressFn | None,
    on_outcome: Callable[[Any], None] | None,
    poll_s: float,
    result: QueueRun,
) -> None:
    """One grid's QUEUED rows through ``run_trials`` (one Tune experiment)."""
    from tuning.runner import TrialOutcome

    first = batch[0]
    experiment = experiment_id(first.grid_hash)
    result.experiments.append(experiment)
    run = runs.get_run(experiment)
    if run is not None and run.status != RunStatus.RUNNING:  # finished, more configs added since
        runs.update_run(experiment, status=RunStatus.RUNNING)
    hashes = {item.config_hash for item in batch}
    watch = _Watch(tstore, hashes, poll_s)
    slots = [item for item in batch if is_slot(item)]
    configs = [item.config for item in batch if not is_slot(item)]
    counted = {"DONE": 0, "FAILED": 0, "SKIPPED": 0}

    def report() -> None:
        if on_progress is not None:
            on_progress(
                QueueProgress(
                    grid=first.grid,
                    experiment=experiment,
                    total=len(batch),
                    done=counted["DONE"] + counted["SKIPPED"],
                    failed=counted["FAILED"],
                    running=watch.running,
                    best_sharpe=result.best_sharpe,
                    best_config=result.best_config,
                )
            )

    def should_stop() -> bool:
        polled = watch.polled
        stop = watch()
        if watch.polled != polled:
            report()
        return stop

    def on_trial(outcome: TrialOutcome) -> None:
        if outcome.status not in counted:  # STOPPED: its row stays for a resume
            return
        counted[outcome.status] += 1
        if outcome.status == "SKIPPED":  # trained before (by another grid, or proposed again)
            result.skipped += 1
        elif outcome.status == "DONE":
            result.done += 1
            sharpe = outcome.sharpe
            better = result.best_sharpe is None or (sharpe or -math.inf) > result.best_sharpe
            if sharpe is not None and math.isfinite(sharpe) and better:
                result.best_sharpe, result.best_config = sharpe, outcome.config_hash
        else:
            result.failed += 1
        if slots:
            _close_slot(tstore, hashes, outcome)
        if outcome.status == "DONE":
            judge.submit(outcome.config_hash)
        report()
        if on_outcome is not None:
            on_outcome(outcome)

    report()
    judge = _Judge(store, policy, result)
    try:
        outcomes = _trials(
            store, home, experiment, slots, configs, tstore, max_concurrent,
            _Local(should_stop, False), _Local(on_trial, None), poll_s,
        )  # fmt: skip
    finally:
        judge.close()
    watch.poll_s = 0.0
    watch()  # one last look: a pause or cancel that landed after the last poll
    stopped = watch.stopped
    if not stopped and any(outcome.status == "STOPPED" for outcome in outcomes):
        stopped = "interrupted"  # Ctrl-C: Tune stopped its trials; their rows wait for a start
    _settle(tstore, batch, outcomes, stopped)
    result.stopped = stopped
    report()


def _trials(
    store: Store,
    home: Path,
    experiment: str,
    slots: Sequence[QueueItemRecord],
    configs: list[dict[str, Any]],
    tstore: TrainingStore,
    max_concurrent: int | None,
    should_stop: Callable[[], bool],
    on_trial: Callable[[Any], None],
    poll_s: float,
) -> list[Any]:
    """``run_trials`` of a grid's configs, or of an Optuna grid's open slots."""
    from tuning.runner import optuna_history, run_trials

    if slots:
        spec = _spec_from(slots[0].config["spec"])
        return run_trials(
            [], store_url=store.url, home=home, experiment=experiment,
            max_concurrent=max_concurrent, should_stop=should_stop, on_trial=on_trial,
            search="optuna", optuna=(spec, len(slots), optuna_history(tstore, spec)),
            poll_s=poll_s,
        )  # fmt: skip
    return run_trials(
        configs, store_url=store.url, home=home, experiment=experiment,
        max_concurrent=max_concurrent, should_stop=should_stop, on_trial=on_trial,
        search="grid", poll_s=poll_s,  # random grids are drawn by expand(): a fixed list too
    )  # fmt: skip


def _close_slot(tstore: TrainingStore, hashes: set[str], outcome: Any) -> None:
    """Close the lowest open slot of the batch with the outcome of the trial that used it."""
    open_ = [
        i
        for i in tstore.queue_items(status=(QueueStatus.QUEUED, QueueStatus.RUNNING))
        if i.config_hash in hashes
    ]
    if open_:
        status = QueueStatus.FAILED if outcome.status == "FAILED" else QueueStatus.DONE
        verb = "proposed again" if outcome.status == "SKIPPED" else "trained"
        reason = f"{verb} tr-{outcome.config_hash[:12]}"
        if status == QueueStatus.FAILED and outcome.reason:
            reason += f": {outcome.reason}"
        tstore.set_queue_status([open_[0].config_hash], status, reason=reason)


def _settle(
    tstore: TrainingStore, batch: Sequence[QueueItemRecord], outcomes: Sequence[Any], stopped: str
) -> None:
    """After the experiment: rows of trials that were stopped, and rows no trial finished.

    Stopped by a pause: RUNNING rows (trials interrupted) become PAUSED, to train again on
    ``resume``; by a cancel: CANCELLED; by Ctrl-C: QUEUED. Not stopped: a row still QUEUED or
    RUNNING had a trial that ended without a result; it is recorded FAILED with the reason, a
    ``training_runs`` row included (one transaction), so one row per config holds what happened.
    """
    current = {
        item.config_hash: item
        for item in tstore.queue_items(status=(QueueStatus.QUEUED, QueueStatus.RUNNING))
    }
    left = [item for item in batch if item.config_hash in current]
    if not left:
        return
    if stopped:
        target = {"paused": QueueStatus.PAUSED, "cancelled": QueueStatus.CANCELLED}.get(
            stopped, QueueStatus.QUEUED
        )
        moved = [
            item.config_hash
            for item in left
            if stopped == "cancelled" or current[item.config_hash].status == QueueStatus.RUNNING
        ]
        if moved:
            reason = "" if target == QueueStatus.QUEUED else f"{stopped} while training"
            tstore.set_queue_status(moved, target, reason=reason)
        return
    reasons = {getattr(o, "config_hash", ""): getattr(o, "reason", "") for o in outcomes}
    for item in left:
        if is_slot(item):
            tstore.set_queue_status(
                [item.config_hash],
                QueueStatus.FAILED,
                reason="the searcher ended before this slot ran",
            )
            continue
        config = item.config
        record = TrainingRunRecord(
            config_hash=item.config_hash,
            experiment=experiment_id(item.grid_hash),
            specialty=item.specialty,
            dataset=str(config.get("dataset") or "unknown"),
            config=dict(config),
            seed=int(config.get("seed", 0)),
            status=TrainingStatus.FAILED,
            reason=reasons.get(item.config_hash) or "the trial ended without a result",
        )
        tstore.finish_training_run(record, [])


def _spec_from(raw: Mapping[str, Any]) -> GridSpec:
    """The grid back from its canonical dict (as ``spec_config`` stored it in an Optuna slot)."""
    return GridSpec(**raw)


def _finish_experiments(tstore: TrainingStore, runs: RunStore, result: QueueRun) -> None:
    """An experiment whose grid has no active row left is ``finished`` in ``runs``."""
    active = {item.grid_hash for item in tstore.queue_items(status=ACTIVE)}
    for experiment in result.experiments:
        run = runs.get_run(experiment)
        if run is None:
            continue
        still = any(experiment_id(digest) == experiment for digest in active)
        wanted = RunStatus.RUNNING if still else RunStatus.FINISHED
        if run.status != wanted:
            runs.update_run(experiment, status=wanted)
