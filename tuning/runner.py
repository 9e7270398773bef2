"""Trial configs run through Ray Tune: train, checkpoint, backtest the inference grid, store.

:func:`run_trials` runs fixed configs (a grid or random search expanded by ``tuning.grids``) as
one ``tune.grid_search`` over their config hashes, or a Bayesian search with Tune's
``OptunaSearch`` whose history (``points_to_evaluate`` / ``evaluated_rewards``) is rebuilt from
the database (:func:`optuna_history`), never from Tune's own searcher state (Tune restore has lost
searcher state before, ray-project/ray#30861). The database is the truth: a config whose training
run is DONE is never trained again, so running the same configs twice changes nothing, and a run
killed at any point is resumed by running its configs again.

Each trial, in its Tune worker (one CPU, actors reused between trials):

1. skips a config whose queue row was paused or cancelled meanwhile, else marks it RUNNING;
2. trains and checkpoints with ``agents.child.train_and_checkpoint`` (the step evolution's
   children take), agent id ``tr-<config_hash[:12]>``, one torch thread, the weights-only
   checkpoint at ``<home>/checkpoints/tune/<config_hash>.pt`` (written beside its name and renamed
   into place);
3. backtests the inference grid on the out-of-sample rows (``agents.inference``); a checkpoint
   whose backtest fails is deleted again;
4. writes the training run, its inference backtests and its queue row's status in one transaction
   (``TrainingStore.finish_training_run``), then ``tune.report``\\ s ``sharpe`` (the best inference
   backtest's) and ``objective`` (what the Bayesian search maximizes: that Sharpe, 0.0 when no
   inference config traded).

A failed child is a FAILED row with its reason (and no file); a trial whose worker dies is recorded
FAILED by the driver. Datasets are built once on the driver (from the store, importing the shipped
sample when a series is missing; written under ``training_db/``) and put in the object store once
(``tune.with_parameters``). A :class:`~ray.tune.Stopper` polls ``should_stop`` (at most every
``poll_s`` seconds) and stops the whole experiment when it says so; trials stopped that way write
nothing. Tune's experiment state lives under ``<home>/tune/<experiment>/``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import ray

from agents.child import train_and_checkpoint
from agents.dataset import Dataset
from agents.datasets import prepare_datasets
from agents.inference import evaluate_inference_grid
from agents.sources import DataSources
from agents.spec import TrainSpec
from agents.specialties import get_specialty
from agents.training import ChildReport
from market.regimes import RegimeRules
from store.db import Store
from store.records.training import InferenceBacktestRecord, TrainingRunRecord, TrainingStatus
from store.training import TrainingStore
from tuning.grids import (
    GridSpec,
    compute_config_hash,
    config_from_params,
    optuna_space,
    params_of,
)

logger = logging.getLogger(__name__)

__all__ = [
    "TrialOutcome",
    "checkpoint_relpath",
    "inference_hash",
    "optuna_history",
    "run_trials",
    "trial_score",
]

_OBJECTIVE = "objective"


@dataclass(frozen=True)
class TrialOutcome:
    """What became of one config. ``sharpe`` is its best inference backtest's (None when FAILED or
    no config traded); ``train_seconds`` is ``train_child``'s time, ``wall_seconds`` the trial's
    time from Tune starting it to Tune seeing it complete (0 for SKIPPED).

    ``status``: DONE / FAILED (trained now and stored), SKIPPED (already DONE in the database,
    not trained again) or STOPPED (should_stop, or its queue row paused or cancelled, before it
    stored anything)."""

    config_hash: str
    status: str
    sharpe: float | None
    train_seconds: float
    wall_seconds: float
    reason: str = ""


def checkpoint_relpath(config_hash: str) -> str:
    """Where a trained config's checkpoint lives, relative to the data root."""
    return f"checkpoints/tune/{config_hash}.pt"


def inference_hash(inference: Mapping[str, Any]) -> str:
    """Identity of an inference config: the config hash of its values as floats (as
    ``InferenceBacktestRecord.inference`` stores them, so a stored row hashes to its key)."""
    return compute_config_hash({name: float(value) for name, value in inference.items()})


def trial_score(backtests: Sequence[InferenceBacktestRecord]) -> float | None:
    """The best finite inference Sharpe of a trained config (None when none is finite)."""
    sharpes = [b.sharpe for b in backtests if b.sharpe is not None and math.isfinite(b.sharpe)]
    return max(sharpes) if sharpes else None


# --- one trial (runs in a Tune worker) ---------------------------------------------------------


@lru_cache(maxsize=4)
def _training_store(store_url: str, home: str) -> TrainingStore:
    """One store per worker process: reused actors do not reopen (and re-migrate) per trial."""
    return Store.open(store_url, home=Path(home)).training


def _record(spec: TrainSpec, experiment: str, report: ChildReport | None) -> TrainingRunRecord:
    """The FAILED/DONE record skeleton of a config (status FAILED until filled in)."""
    return TrainingRunRecord(
        config_hash=spec.hash,
        experiment=experiment,
        specialty=spec.specialty,
        dataset=spec.dataset,
        config=spec.to_json(),
        seed=spec.seed,
        status=TrainingStatus.FAILED,
        dataset_digest=report.dataset_digest if report else "",
        train_seconds=report.train_seconds if report else None,
    )


def _train_and_store(
    spec: TrainSpec,
    dataset: Dataset,
    tstore: TrainingStore,
    home: Path,
    experiment: str,
) -> tuple[TrainingRunRecord, list[InferenceBacktestRecord]]:
    """Train and checkpoint (``agents.child.train_and_checkpoint``, as evolution's children do),
    backtest and store one config; returns what was stored."""
    config_hash = spec.hash
    target = home / checkpoint_relpath(config_hash)
    meta = {
        "config_hash": config_hash,
        "experiment": experiment,
        "config_json": json.dumps(spec.to_json(), sort_keys=True),
    }
    report, sha = train_and_checkpoint(
        dataset, get_specialty(spec.specialty).space.validate(dict(spec.genome)), target, seed=spec.seed,
        agent_id=f"tr-{config_hash[:12]}", generation=0, fee_bps=spec.fee_bps, torch_threads=1,
        meta=meta,
    )  # fmt: skip
    record = _record(spec, experiment, report)
    backtests: list[InferenceBacktestRecord] = []
    if not sha:
        record = replace(record, reason=report.reason or "training failed")
    else:
        try:
            results = evaluate_inference_grid(
                report, dataset, spec.inference_configs(), fee_bps=spec.fee_bps
            )
            backtests = [
                InferenceBacktestRecord(
                    config_hash=config_hash,
                    inference_hash=inference_hash(inference),
                    inference=dict(inference),
                    metrics=metrics,
                    per_regime=per_regime,
                    sharpe=metrics.get("sharpe"),
                )
                for inference, metrics, per_regime in results
            ]
            metrics = report.metrics
            record = replace(
                record, status=TrainingStatus.DONE, metrics=metrics, per_regime=report.per_regime,
                sharpe=metrics.get("sharpe"), max_drawdown=metrics.get("max_drawdown"),
                hit_rate=metrics.get("direction_hit_rate"), model_path=checkpoint_relpath(config_hash),
                model_sha256=sha,
            )  # fmt: skip
        except Exception as exc:  # a model we cannot backtest is a result, not a crash
            logger.warning("trial %s: %s", config_hash[:12], exc, exc_info=True)
            record = replace(record, reason=f"backtest failed: {type(exc).__name__}: {exc}")
            backtests = []
    try:
        tstore.finish_training_run(record, backtests)
    except BaseException:
        _remove_unrecorded(tstore, config_hash, target)
        raise
    if record.status != "DONE":
        _remove_unrecorded(tstore, config_hash, target)
    return record, backtests


def _remove_unrecorded(tstore: TrainingStore, config_hash: str, target: Path) -> None:
    """Delete a checkpoint no DONE row names (no orphan files)."""
    stored = tstore.training_run(config_hash)
    if stored is None or stored.status != "DONE":
        target.unlink(missing_ok=True)


def _tune_trial(
    params: dict[str, Any],
    *,
    configs: dict[str, TrainSpec] | None,
    spec: GridSpec | None,
    datasets: dict[str, Dataset],
    store_url: str,
    home: str,
    experiment: str,
) -> None:
    """The Tune function trainable (see the module doc)."""
    from ray import tune

    if configs is not None:
        config = configs[params["config_hash"]]
    else:
        assert spec is not None
        config = TrainSpec.from_json(config_from_params(spec, params))
    config_hash = config.hash
    tstore = _training_store(store_url, home)
    stored = tstore.training_run(config_hash)
    if stored is not None and stored.status == "DONE":  # e.g. Optuna proposed a config again
        score = trial_score(tstore.backtests(config_hash))
        tune.report(_metrics(config_hash, "SKIPPED", score, 0.0, "already trained"))
        return
    held = {item.config_hash for item in tstore.queue_items(status=("PAUSED", "CANCELLED"))}
    if config_hash in held:
        tune.report(_metrics(config_hash, "STOPPED", None, 0.0, "queue paused or cancelled"))
        return
    tstore.set_queue_status([config_hash], "RUNNING")
    dataset = datasets[config.key]
    record, backtests = _train_and_store(config, dataset, tstore, Path(home), experiment)
    score = trial_score(backtests)
    tune.report(
        _metrics(config_hash, record.status, score, record.train_seconds or 0.0, record.reason)
    )


def _metrics(
    config_hash: str, status: str, sharpe: float | None, train_seconds: float, reason: str
) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "config_hash": config_hash,
        "status": status,
        "sharpe": math.nan if sharpe is None else sharpe,
        "train_seconds": train_seconds,
        "reason": reason,
    }
    if status in ("DONE", "SKIPPED"):  # a failed trial gives the searcher no value (pruned)
        metrics[_OBJECTIVE] = 0.0 if sharpe is None else sharpe
    return metrics


# --- the driver --------------------------------------------------------------------------------


def _rules(config: TrainSpec, fallback: RegimeRules) -> RegimeRules:
    """The regime rules a trial's bars are labelled with: its config's (``data.regime_rules``,
    part of its hash), else, for a config queued without them, ``fallback`` (its experiment's
    stored rules, else the store's definitions)."""
    raw = config.data.get("regime_rules")
    return fallback if raw is None else RegimeRules.from_dict(raw, where="data.regime_rules")


def _datasets(
    store: Store, home: Path, configs: Sequence[TrainSpec], fallback: RegimeRules
) -> dict[str, Dataset]:
    """Every dataset the configs name, built once per (specialty, data) by
    ``agents.datasets.prepare_datasets`` (as evolution builds its own), keyed
    ``"<specialty>/<dataset>"``; the shipped sample is imported for a missing series. Bars are
    labelled with the config's regime rules (:func:`_rules`)."""
    out: dict[str, Dataset] = {}
    done: set[str] = set()
    for config in configs:
        group = json.dumps([config.specialty, config.data], sort_keys=True)
        if config.key not in out and group not in done:
            done.add(group)
            sources = DataSources.from_config(store, config.data, _rules(config, fallback))
            out |= prepare_datasets([config.specialty], sources, home)
        if config.key not in out:
            raise ValueError(f"{config.key}: no such dataset is built from {dict(config.data)}")
    return out


def optuna_history(tstore: TrainingStore, spec: GridSpec) -> list[tuple[dict[str, Any], float]]:
    """Finished trials of an Optuna grid, rebuilt from the database as ``(config, reward)``:
    every DONE training run of the grid's specialty and dataset whose fixed genes, seed,
    inference grid and fees are the grid's (so it lies in the search space), rewarded with its
    best inference Sharpe (0.0 when none traded), in the order they were trained."""
    space = optuna_space(spec)
    probe = config_from_params(spec, {})
    fixed = {name: value for name, value in probe["genome"].items() if name not in space}
    same = ("specialty", "dataset", "data", "seed", "inference", "fee_bps")
    out: list[tuple[dict[str, Any], float]] = []
    for run in tstore.training_runs(specialty=spec.specialty, status="DONE"):
        config = run.config
        if any(config.get(k) != probe[k] for k in same):
            continue
        if any(config["genome"].get(name) != value for name, value in fixed.items()):
            continue
        if not _in_space(spec, {name: config["genome"][name] for name in space}):
            continue
        score = trial_score(tstore.backtests(run.config_hash))
        out.append((config, 0.0 if score is None else score))
    return out


def _in_space(spec: GridSpec, params: Mapping[str, Any]) -> bool:
    """Whether searcher params lie in the grid's searched lists and ranges (Optuna refuses a
    warm-start point outside its distributions)."""
    for name, value in params.items():
        entry = spec.genome[name]
        if isinstance(entry, list) and value not in entry:
            return False
        if isinstance(entry, Mapping) and not entry["low"] <= value <= entry["high"]:
            return False
    return True


class _Outcomes:
    """Driver-side Tune callback state: a TrialOutcome per trial as it completes (with its wall
    time from start to completion), and every trial Tune started or saw fail."""

    def __init__(self, on_trial: Callable[[TrialOutcome], None] | None) -> None:
        self.on_trial = on_trial
        self.started: dict[str, float] = {}
        self.trials: dict[str, Any] = {}  # trial id -> Tune Trial, in start order
        self.errored: set[str] = set()
        self.outcomes: dict[str, TrialOutcome] = {}

    def start(self, trial: Any) -> None:
        self.started.setdefault(trial.trial_id, time.perf_counter())
        self.trials.setdefault(trial.trial_id, trial)

    def error(self, trial: Any) -> None:
        self.trials.setdefault(trial.trial_id, trial)
        self.errored.add(trial.trial_id)

    def complete(self, trial: Any) -> None:
        self.trials.setdefault(trial.trial_id, trial)
        result = trial.last_result or {}
        wall = time.perf_counter() - self.started.get(trial.trial_id, time.perf_counter())
        if "status" not in result or "config_hash" not in result:
            return  # stopped before it reported: the driver lists it as STOPPED
        sharpe = result.get("sharpe")
        outcome = TrialOutcome(
            config_hash=str(result["config_hash"]),
            status=str(result["status"]),
            sharpe=float(sharpe) if sharpe is not None and math.isfinite(sharpe) else None,
            train_seconds=float(result.get("train_seconds") or 0.0),
            wall_seconds=0.0 if result["status"] == "SKIPPED" else wall,
            reason=str(result.get("reason") or ""),
        )
        self.emit(trial.trial_id, outcome)

    def emit(self, trial_id: str, outcome: TrialOutcome) -> None:
        self.outcomes[trial_id] = outcome
        if self.on_trial is not None:
            self.on_trial(outcome)


def _callback(outcomes: _Outcomes) -> Any:
    from ray import tune

    class OutcomeCallback(tune.Callback):
        def on_trial_start(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            outcomes.start(trial)

        def on_trial_complete(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            outcomes.complete(trial)

        def on_trial_error(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            outcomes.error(trial)

    return OutcomeCallback()


def _stopper(should_stop: Callable[[], bool], poll_s: float) -> Any:
    from ray import tune

    class ShouldStop(tune.Stopper):
        """Stops the whole experiment once ``should_stop()`` says so (polled every ``poll_s``)."""

        def __init__(self) -> None:
            self.stopped = False
            self.polled = -math.inf

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return False  # a trial reports once, at its end

        def stop_all(self) -> bool:
            now = time.monotonic()
            if not self.stopped and now - self.polled >= poll_s:
                self.polled = now
                self.stopped = bool(should_stop())
                if self.stopped:
                    logger.info("should_stop: stopping the Tune experiment")
            return self.stopped

    return ShouldStop()


def run_trials(
    configs: Sequence[Mapping[str, Any] | TrainSpec],
    *,
    store_url: str,
    home: Path,
    experiment: str,
    max_concurrent: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_trial: Callable[[TrialOutcome], None] | None = None,
    search: str = "grid",
    optuna: tuple[GridSpec, int, list[tuple[dict[str, Any], float]]] | None = None,
    poll_s: float = 1.0,
) -> list[TrialOutcome]:
    """Run trial configs on Ray Tune (see the module doc); one outcome per config (per Optuna
    trial), SKIPPED first for configs already DONE, then the others as Tune finished them and
    STOPPED for those it did not.

    ``search``: ``"grid"`` (also for expanded random searches: ``configs`` are run as given) or
    ``"optuna"``, with ``optuna=(spec, n_trials, history)`` (``history``: finished ``(config,
    reward)`` pairs, e.g. :func:`optuna_history`; ``configs`` is then ignored). The experiment's
    ``runs`` row is created when missing. Ray must already be up (``cluster.session.ensure_ray``).
    """
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    if not ray.is_initialized():
        raise RuntimeError("run_trials needs Ray up first (cluster.session.ensure_ray)")
    if search not in ("grid", "optuna"):
        raise ValueError(f"search must be 'grid' or 'optuna'; got {search!r}")
    home = Path(home).resolve()
    store = Store.open(store_url, home=home)
    try:
        tstore = store.training
        if tstore.runs.get_run(experiment) is None:
            tstore.ensure_experiment(
                experiment,
                {"tune_experiment": experiment},
                0,
                settings={"regimes": store.regimes.regime_rules().to_dict()},
            )
        outcomes = _Outcomes(on_trial)
        skipped: list[TrialOutcome] = []
        pending: dict[str, TrainSpec] = {}
        spec: GridSpec | None = None
        if search == "optuna":
            if optuna is None:
                raise ValueError("search 'optuna' needs optuna=(spec, n_trials, history)")
            spec, n_trials, history = optuna
            if n_trials < 1:
                return []
            wanted = [TrainSpec.from_json(config_from_params(spec, {}))]
        else:
            for config in map(TrainSpec.from_json, configs):  # typed from here on
                config_hash = config.hash
                if config_hash in pending:
                    continue
                stored = tstore.training_run(config_hash)
                if stored is not None and stored.status == "DONE":
                    score = trial_score(tstore.backtests(config_hash))
                    outcome = TrialOutcome(
                        config_hash, "SKIPPED", score, 0.0, 0.0, "already trained"
                    )
                    skipped.append(outcome)
                    if on_trial is not None:
                        on_trial(outcome)
                else:
                    pending[config_hash] = config
            if not pending:
                return skipped
            wanted = list(pending.values())
        # Trials are labelled with the rules their experiment was added under (`queue add`
        # stores them); an experiment from before that: the table's, as it always was.
        rules = store.runs.require_run(experiment).regime_rules or store.regimes.regime_rules()
        datasets = _datasets(store, home, wanted, rules)
        trainable = tune.with_resources(
            tune.with_parameters(
                _tune_trial, configs=pending or None, spec=spec, datasets=datasets,
                store_url=store.url, home=str(home), experiment=experiment,
            ),
            {"cpu": 1},
        )  # fmt: skip
        if search == "optuna":
            assert spec is not None
            points = [params_of(spec, config) for config, _ in history]
            searcher = OptunaSearch(
                metric=_OBJECTIVE, mode="max", seed=spec.seed + len(points),
                points_to_evaluate=points or None,
                evaluated_rewards=[float(reward) for _, reward in history] or None,
            )  # fmt: skip
            param_space: dict[str, Any] = optuna_space(spec)
            tune_config = tune.TuneConfig(
                search_alg=searcher, num_samples=n_trials, max_concurrent_trials=max_concurrent,
                reuse_actors=True, trial_dirname_creator=_dirname,
            )  # fmt: skip
        else:
            param_space = {"config_hash": tune.grid_search(list(pending))}
            tune_config = tune.TuneConfig(
                num_samples=1, max_concurrent_trials=max_concurrent, reuse_actors=True,
                trial_dirname_creator=_dirname,
            )  # fmt: skip
        run_config = tune.RunConfig(
            name=experiment, storage_path=str(home / "tune"), verbose=0,
            stop=_stopper(should_stop, poll_s), callbacks=[_callback(outcomes)],
            failure_config=tune.FailureConfig(max_failures=0),
        )  # fmt: skip
        tuner = tune.Tuner(
            trainable, param_space=param_space, tune_config=tune_config, run_config=run_config
        )
        tuner.fit()  # results come from the callback and the database, not the ResultGrid
        return skipped + _finish(outcomes, tstore, pending, spec, experiment, home)
    finally:
        store.close()


def _dirname(trial: Any) -> str:
    return str(trial.trial_id)


def _finish(
    outcomes: _Outcomes,
    tstore: TrainingStore,
    pending: Mapping[str, TrainSpec],
    spec: GridSpec | None,
    experiment: str,
    home: Path,
) -> list[TrialOutcome]:
    """Outcomes in Tune's completion order, then: errored trials recorded FAILED (their worker
    died or raised before storing a result), trials stopped while running, trials never started."""
    done = list(outcomes.outcomes.values())
    seen = {outcome.config_hash for outcome in done}
    for trial_id, trial in outcomes.trials.items():
        if trial_id in outcomes.outcomes:
            continue
        params = dict(trial.config or {})
        if params.get("config_hash") in pending:
            config = pending[params["config_hash"]]
        elif spec is not None:
            config = TrainSpec.from_json(config_from_params(spec, params))
        else:
            continue
        config_hash = config.hash
        if config_hash in seen:
            continue
        seen.add(config_hash)
        if trial_id not in outcomes.errored:
            done.append(TrialOutcome(config_hash, "STOPPED", None, 0.0, 0.0, "stopped running"))
            continue
        error = trial.get_error()
        reason = f"trial raised: {_first_line(error) if error else 'unknown error'}"
        stored = tstore.training_run(config_hash)
        if stored is None or stored.status != "DONE":
            failed = replace(_record(config, experiment, None), reason=reason)
            tstore.finish_training_run(failed, [])
            (home / checkpoint_relpath(config_hash)).unlink(missing_ok=True)
        outcome = TrialOutcome(config_hash, "FAILED", None, 0.0, 0.0, reason)
        outcomes.emit(trial_id, outcome)
        done.append(outcome)
    for config_hash in pending:
        if config_hash not in seen:  # never started (the experiment was stopped first)
            done.append(TrialOutcome(config_hash, "STOPPED", None, 0.0, 0.0, "not started"))
    return done


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
