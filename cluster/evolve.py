"""``redline evolve``: prepare the datasets, start (or resume) a run, watch it to the end.

The driver builds every specialty's datasets once (``training_db/<specialty>/*.parquet``), puts each
in Ray's object store once, and starts the Mother actor (``mother:<run_id>``), which owns the pool of
child actors. The driver only shows progress; killing it loses nothing a resume cannot redo.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from agents.dataset import Dataset
from agents.datasets import prepare_datasets as build_all
from agents.sources import DataSources
from agents.spec import spec_hash
from cluster.config import ConfigError, EvolveConfig, RedlineConfig, load_config
from cluster.session import ensure_ray
from evolution.crowning import consider_evolution_run
from evolution.mother import COORDINATOR, EvolutionSettings, Progress
from evolution.selection import KillRule
from market.regimes import RegimeRules
from store.db import Store
from store.records.champions import PromotionRecord
from store.records.population import RunRecord, RunStatus

logger = logging.getLogger(__name__)


def config_hash(evolve: EvolveConfig, rules: RegimeRules) -> str:
    """A run's identity with its seed: ``agents.spec.spec_hash`` (the one spec hash) of its evolve
    section and the regime rules its bars are labelled with (other rules are another run)."""
    return spec_hash({"evolve": evolve.model_dump(mode="json"), "regime_rules": rules.to_dict()})


def data_sources(evolve: EvolveConfig, store: Store, config: RedlineConfig) -> DataSources:
    """The run's data spec (``evolve.data``, the config's regime rules) on ``store``."""
    return DataSources.from_config(
        store, evolve.data.model_dump(), config.regimes, where="evolve.data"
    )


def prepare_datasets(
    evolve: EvolveConfig, store: Store, config: RedlineConfig, home: Path, *, write: bool = True
) -> dict[str, Dataset]:
    """Every dataset the run's specialties eat, keyed ``"<specialty>/<name>"``
    (``agents.datasets.prepare_datasets``; the coordinator's are stacked later)."""
    return build_all(
        [specialty for specialty in evolve.population if specialty != COORDINATOR],
        data_sources(evolve, store, config),
        home if write else None,
        import_sample=evolve.data.import_sample,
        pooled=evolve.pooled,
    )


def settings_for(
    evolve: EvolveConfig,
    datasets: dict[str, Dataset],
    ancestors: Mapping[str, tuple[tuple[str, str], ...]] | None = None,
) -> EvolutionSettings:
    primary: dict[str, str] = {}
    for key in datasets:  # the first dataset of each specialty is the one its children train on
        specialty, name = key.split("/", 1)
        primary.setdefault(specialty, name)
    if COORDINATOR in evolve.population:
        first = "technical_analyst" if "technical_analyst" in primary else min(primary)
        base = primary[first]
        if datasets[f"{first}/{base}"].pooled:  # stack on the first symbol's rows (its own
            base = [k.split("/", 1)[1] for k in datasets if k.startswith(f"{first}/")][1]
        primary[COORDINATOR] = base
    # Specialties in name order, not the YAML's: a resumed run rebuilds its config from the
    # database's canonical (key-sorted) JSON, and must walk the specialties as the fresh run did.
    return EvolutionSettings(
        root_seed=evolve.seed,
        generations=evolve.generations,
        population=dict(sorted(evolve.population.items())),
        datasets=primary,
        selection=evolve.selection,
        weights=evolve.weights,
        kill=KillRule(
            min_hit_rate=evolve.kill.min_hit_rate,
            bottom_quantile=evolve.kill.bottom_quantile,
            weights=evolve.weights,
            protect_elites=evolve.kill.protect_elites,
        ),
        cx_prob=evolve.crossover.prob,
        cx_eta=evolve.crossover.eta,
        cx_indpb=evolve.crossover.indpb,
        mut_eta=evolve.mutation.eta,
        mut_indpb=evolve.mutation.indpb,
        hall_of_fame=evolve.hall_of_fame,
        coordinator_members=evolve.coordinator_members,
        fee_bps=evolve.training.fee_bps,
        torch_threads=evolve.training.torch_threads,
        plugins=evolve.plugins,
        ancestors=dict(ancestors or {}),
    )


def run_settings(config: RedlineConfig) -> dict[str, Any]:
    """What a run stores beside its evolve section (``RunRecord.settings``): every other section
    of its config, the champion and regime rules among them, as plain JSON values."""
    return config.model_dump(mode="json", exclude={"evolve"})


# Where the data root is (``REDLINE_HOME`` decides it anyway): not part of what a run did.
_LOCATION_KEYS = frozenset({"data.home"})


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out |= _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        out = {}
        for index, item in enumerate(value):
            out |= _flatten(item, f"{prefix}.{index}")
        return out
    return {prefix: value}


def config_changes(stored: Mapping[str, Any], given: Mapping[str, Any]) -> list[str]:
    """``dotted.key: stored -> given`` for every key whose value differs (missing is ``-``)."""
    old, new = _flatten(dict(stored)), _flatten(dict(given))
    missing = object()
    changes = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key, missing), new.get(key, missing)
        if key in _LOCATION_KEYS or before == after:
            continue
        shown = ["-" if v is missing else json.dumps(v) for v in (before, after)]
        changes.append(f"{key}: {shown[0]} -> {shown[1]}")
    return changes


def run_config(
    run: RunRecord, given: RedlineConfig | None = None, *, override: bool = False
) -> RedlineConfig:
    """The config a stored run resumes with: its own (evolve section and settings, as stored when
    it began), whatever the defaults say today.

    ``given`` (a ``--config`` beside ``--resume``) must be the same config, or the resume is
    refused naming every key that differs; with ``override`` it is used instead, with a warning
    naming what changed (for this invocation: the run keeps its stored config). A run stored
    before its settings were (``settings == {}``) takes them from ``given`` or the defaults.
    """
    # A run stored before ``evolve.pooled`` existed trained every specialty on its first
    # symbol's dataset: it resumes so.
    own = {"pooled": False, **run.config}
    if run.settings:
        stored = RedlineConfig.model_validate({**run.settings, "evolve": own})
    else:
        base = given or load_config()
        logger.warning(
            "run %s was stored without its champion and regime rules (before migration 0007): "
            "using those of %s",
            run.run_id,
            "the given config" if given else "configs/defaults.yaml",
        )
        stored = base.model_copy(update={"evolve": EvolveConfig.model_validate(own)})
    if given is None:
        return stored
    if given.evolve is None:  # a config without an evolve section: only the other sections count
        given = given.model_copy(update={"evolve": stored.evolve})
    changes = config_changes(stored.model_dump(mode="json"), given.model_dump(mode="json"))
    if not changes:
        return stored
    if not override:
        raise ConfigError(
            f"run {run.run_id} resumes with the config stored with it; the given config differs "
            f"in {len(changes)} key(s): {'; '.join(changes)}. Resume without --config to use "
            "the run's own, or add --override-config to use the given one"
        )
    logger.warning(
        "run %s: --override-config: resuming with the given config instead of the stored one, "
        "for this invocation (the run keeps its stored config): %s",
        run.run_id,
        "; ".join(changes),
    )
    return given


def _warn_changed_datasets(run: RunRecord, datasets: Mapping[str, Dataset]) -> None:
    """A resume rebuilds the datasets from the store: new candles (a config without ``end``) or
    other regime rules (``--override-config``) give other data than the run began with."""
    changed = [
        f"{key} ({stored[:12]} -> {datasets[key].digest()[:12]})"
        for key, stored in sorted(run.dataset_digests.items())
        if key in datasets and datasets[key].digest() != stored
    ]
    if changed:
        logger.warning(
            "run %s: %d dataset(s) differ from the ones the run began with: %s; the children "
            "still to train use the new data, so the run will not equal an uninterrupted one",
            run.run_id,
            len(changed),
            ", ".join(changed),
        )


@dataclass(frozen=True)
class EvolveResult:
    run_id: str
    generations_done: int
    seconds: float


def start_or_resume(
    config: RedlineConfig | None,
    evolve: EvolveConfig | None,
    store: Store,
    home: Path,
    *,
    resume: str | None = None,
    override_config: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    now: Callable[[], float] = time.time,
    ancestors: Mapping[str, tuple[tuple[str, str], ...]] | None = None,
) -> EvolveResult:
    """Start a run of ``config`` (its ``evolve`` section, or ``evolve``), or finish ``resume``.

    A resumed run uses the config stored with it (``run_config``): ``config``, when given, must
    equal it unless ``override_config``; ``evolve`` is then ignored. ``ancestors``: genomes of
    earlier runs that generation 0 starts from (``EvolutionSettings.ancestors``); a resume must
    pass the same ones (the living loop derives them from the run before).
    """
    started = time.perf_counter()
    runs = store.runs
    if resume:
        run = runs.get_run(resume)
        if run is None:
            raise ValueError(f"no run {resume!r} in {store.url_for_display}; see `redline runs`")
        config = run_config(run, config, override=override_config)
        evolve = config.require_evolve(f"run {resume}")
        digest = run.config_hash
    elif config is None or evolve is None:
        raise ValueError("a new run needs an evolve config (see configs/evolve-smoke.yaml)")
    else:
        digest = config_hash(evolve, config.regimes)
    # The table follows the rules this run is judged under (Tune and `data regimes` read it).
    store.regimes.sync_regime_definitions(config.regimes)
    datasets = prepare_datasets(evolve, store, config, home)
    settings = settings_for(evolve, datasets, ancestors)
    if resume:
        run_id = resume
        _warn_changed_datasets(runs.require_run(run_id), datasets)
        runs.update_run(run_id, status=RunStatus.RUNNING)
    else:
        run_id = f"r{int(now())}-{digest[:6]}"
        runs.create_run(
            RunRecord(
                run_id=run_id,
                status=RunStatus.RUNNING,
                config=evolve.model_dump(mode="json"),
                config_hash=digest,
                root_seed=evolve.seed,
                generations_planned=evolve.generations,
                generations_done=0,
                dataset_digests={key: ds.digest() for key, ds in datasets.items()},
                settings=run_settings(config),
            )
        )
    ensure_ray(evolve.cluster.address, evolve.cluster.num_cpus)
    refs = {key: ray.put(ds) for key, ds in datasets.items()}  # once per run
    from cluster.metrics import EvolutionMetrics
    from evolution.mother_actor import MotherActor

    pool_options: dict[str, Any] = {
        "size": evolve.cluster.num_actors,
        "timeout_s": evolve.training.child_timeout_s,
        "retries": evolve.training.retries,
    }
    mother = MotherActor.options(name=f"mother:{run_id}").remote(  # type: ignore[attr-defined]
        run_id, store.url, str(home), settings, refs, pool_options, digest, EvolutionMetrics
    )
    try:
        done_ref = mother.run.remote()
        while True:
            ready, _ = ray.wait([done_ref], timeout=0.5)
            if on_progress:
                on_progress(ray.get(mother.progress.remote(), timeout=30))
            if ready:
                generations = ray.get(done_ref)
                break
        if on_progress:
            on_progress(ray.get(mother.progress.remote(), timeout=30))
    except BaseException:
        runs.update_run(run_id, status=RunStatus.FAILED)
        raise
    finally:
        try:
            ray.get(mother.close.remote(), timeout=60)
        except Exception:  # the actor may already be gone
            logger.debug("mother actor of %s already gone", run_id)
        ray.kill(mother)
    judge_champions(config, evolve, store, run_id)
    return EvolveResult(run_id, generations, time.perf_counter() - started)


def judge_champions(
    config: RedlineConfig, evolve: EvolveConfig, store: Store, run_id: str
) -> list[PromotionRecord]:
    """A finished run's best child per (specialty, regime) against the champions, under the
    config's ``champions`` policy (``evolution.crowning``). Outside the run's own try block: the run
    is finished whatever the judging does, and judging it again (a resume) logs nothing twice."""
    if store.runs.require_run(run_id).status != RunStatus.FINISHED:
        return []
    return consider_evolution_run(
        store, run_id, config.champions.to_policy(), evolve.data.timeframe
    )
