"""The models of a data root and the prune rules: what ``redline models`` lists, keeps and deletes,
and what the living loop's retention job prunes (``prune_models``).

A *model* is a trained network with a file under ``checkpoints/``:

- a Tune model: a DONE ``training_runs`` row, id ``tr-<config_hash[:12]>`` (its experiment is the
  run), file ``checkpoints/tune/<config_hash>.pt``;
- an evolution model: an OK ``agents`` row that names a checkpoint, id the agent id
  (``<run_id>.ta-g001-002``), file ``checkpoints/<agent_id>_gen<N>.pt``.

**Prune** keeps, and deletes everything else:

- champions (``regime_best_models.is_champion``) and every model a ``regime_best_models`` row
  names (a run's best per regime: the evolution elites the mother brain is built from, and each
  Tune experiment's best candidate per regime);
- models in stage PAPER or MATURE (trading on paper or live);
- models an operator kept (``redline models keep ID``: Tune models);
- evolution elites: the hall of fame of each run's last generation per specialty;
- the ancestors of every evolution model kept (``RunStore.ancestors``, across runs: a generation 0
  the living loop carried over from an earlier run names its ancestor there): lineage stays
  replayable;
- models of an evolution run still ``running`` (it may still need them; a run that crashed stays
  ``running`` until resumed).

Deleting a Tune model removes its file and its ``training_runs`` row (its inference backtests go
with it). Deleting an evolution model removes its file and clears the agent row's checkpoint
(``checkpoint_path``, ``checkpoint_sha256``): the row itself is the run's history (lineage, kills,
generations name it) and stays. Prune also reports files under ``checkpoints/`` that no row names
(``delete_orphans`` removes them, unless a ``redline queue start`` is running: a trial's file exists
a moment before its row) and rows whose file is gone (pruned like the others, unless kept: those
are listed as problems).

``plan_prune`` says what would go; ``prune_models`` applies it. ``redline models prune`` and the
living loop's retention job both call ``prune_models``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from store.db import Store
from store.paths import DataRoot
from store.records.champions import RegimeBestRecord, Stage
from store.records.population import AgentRecord, AgentStatus, RunStatus
from store.records.training import TrainingStatus

if TYPE_CHECKING:
    from store.training import TrainingStore

__all__ = [
    "KINDS",
    "LIVE_STAGES",
    "Catalog",
    "Model",
    "PrunePlan",
    "PruneResult",
    "Pruned",
    "best_inference_sharpes",
    "catalog",
    "delete_model",
    "find_model",
    "on_disk",
    "plan_prune",
    "prune_models",
]

KINDS = ("tune", "evolution")
#: Stages that trade (paper or live): never pruned.
LIVE_STAGES = (Stage.PAPER, Stage.MATURE)
_STAGE_ORDER: dict[str, int] = {stage: index for index, stage in enumerate(Stage)}


@dataclass(frozen=True)
class Model:
    """One model as these commands see it (see the module doc)."""

    kind: str
    model_id: str  # tr-<hash12> or the agent id
    key: str  # the config hash (tune) or the agent id (evolution)
    run_id: str
    specialty: str
    stage: str
    sharpe: (
        float | None
    )  # out of sample: the best inference config's (tune), the child's (evolution)
    path: Path | None  # the file the row names (absolute), None when it names none
    kept: bool = False
    champion_of: tuple[str, ...] = ()  # regimes it is the champion of
    created_at: datetime | None = None

    @property
    def on_disk(self) -> bool:
        return self.path is not None and self.path.is_file()

    @property
    def size(self) -> int:
        return self.path.stat().st_size if self.path is not None and self.path.is_file() else 0


def _resolve(home: Path, name: str | None) -> Path | None:
    """A row's file as a path (``DataRoot.stored_file``), or None when the row names none."""
    return DataRoot(home).stored_file(name) if name else None


# -- collecting ------------------------------------------------------------------------------------


@dataclass
class Catalog:
    """Every model of a data root, with what prune needs to know about them."""

    models: list[Model]
    regime_rows: list[RegimeBestRecord]
    named: set[Path]  # every file some row names
    running_runs: set[str]


def _best_stage(stages: Sequence[str]) -> str:
    """The furthest stage a model reached among its regime rows (RETIRED only if nothing else)."""
    live = [s for s in stages if s != Stage.RETIRED]
    if live:
        return max(live, key=_STAGE_ORDER.__getitem__)
    return Stage.RETIRED if stages else Stage.DISCOVERY


def best_inference_sharpes(tstore: TrainingStore) -> dict[str, float | None]:
    """Each trained config's best inference backtest Sharpe: what the model trades with, out of
    sample (its training report's own Sharpe uses the genome's threshold, not an inference one)."""
    return {
        run.config_hash: None if backtest is None else backtest.sharpe
        for run, backtest in tstore.search(limit=2**31)
    }


def catalog(store: Store, home: Path) -> Catalog:
    """Every model of the data root (Tune and evolution), and the files the rows name."""

    tstore = store.training
    runs = store.runs
    traded = best_inference_sharpes(tstore)
    regime_rows = store.champions.regime_best()
    champion_of: dict[tuple[str, str], list[str]] = {}
    stages: dict[tuple[str, str], list[str]] = {}
    named: set[Path] = set()
    for row in regime_rows:
        key = (row.run_id, row.agent_id)
        stages.setdefault(key, []).append(row.stage)
        if row.is_champion:
            champion_of.setdefault(key, []).append(row.regime)
        path = _resolve(home, row.checkpoint_path)
        if path is not None:
            named.add(path)
    models: list[Model] = []
    for run in tstore.training_runs():
        path = _resolve(home, run.model_path)
        if path is not None:
            named.add(path)
        if run.status != TrainingStatus.DONE:
            continue
        models.append(
            Model(
                kind="tune",
                model_id=run.agent_id,
                key=run.config_hash,
                run_id=run.experiment,
                specialty=run.specialty,
                stage=run.stage,
                sharpe=traded.get(run.config_hash),
                path=path,
                kept=run.kept,
                champion_of=tuple(champion_of.get((run.experiment, run.agent_id), ())),
                created_at=run.created_at,
            )
        )
    running: set[str] = set()
    for record in runs.list_runs():
        if record.status == RunStatus.RUNNING and record.generations_planned > 0:
            running.add(record.run_id)
        for agent in runs.agents(record.run_id):
            path = _resolve(home, agent.checkpoint_path)
            if path is not None:
                named.add(path)
            if agent.status != AgentStatus.OK or path is None:
                continue
            key = (agent.run_id, agent.agent_id)
            models.append(
                Model(
                    kind="evolution",
                    model_id=agent.agent_id,
                    key=agent.agent_id,
                    run_id=agent.run_id,
                    specialty=agent.specialty,
                    stage=_best_stage(stages.get(key, [])),
                    sharpe=agent.sharpe,
                    path=path,
                    champion_of=tuple(champion_of.get(key, ())),
                    created_at=agent.created_at,
                )
            )
    return Catalog(models, regime_rows, named, running)


def on_disk(home: Path) -> list[Path]:
    """Every file under ``checkpoints/``."""
    folder = home / "checkpoints"
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def find_model(models: Sequence[Model], model_id: str) -> Model:
    """The model named ``model_id``: ``tr-<hash prefix>``, a config hash prefix (8+ hex digits)
    or an agent id. ValueError naming the id when none or several match."""
    exact = [m for m in models if model_id in (m.model_id, m.key)]
    if not exact:
        prefix = model_id.removeprefix("tr-")
        if len(prefix) >= 8:
            exact = [m for m in models if m.kind == "tune" and m.key.startswith(prefix)]
    if not exact:
        raise ValueError(
            f"no model {model_id!r}: give a Tune model's id (tr-<hash>, see `redline models "
            "list`) or an evolution agent's full id (<run_id>.ta-g001-002)"
        )
    if len(exact) > 1:
        names = ", ".join(m.model_id for m in exact[:5])
        raise ValueError(f"model id {model_id!r} is ambiguous ({names}); give more of it")
    return exact[0]


# -- pruning ----------------------------------------------------------------------------------------


@dataclass
class PrunePlan:
    keep: dict[str, str] = field(default_factory=dict)  # model key -> "<category>: <detail>"
    delete: list[Model] = field(default_factory=list)
    orphans: list[Path] = field(default_factory=list)  # files no row names
    missing: list[Model] = field(default_factory=list)  # rows whose file is gone


def plan_prune(store: Store, home: Path) -> PrunePlan:
    """What ``redline models prune`` keeps and deletes (see the module doc); changes nothing."""
    cat = catalog(store, home)
    runs = store.runs
    plan = PrunePlan()
    keep = plan.keep

    def mark(key: str, why: str) -> None:
        keep.setdefault(key, why)

    by_model = {(m.run_id, m.model_id): m for m in cat.models}
    for row in cat.regime_rows:
        model = by_model.get((row.run_id, row.agent_id))
        if model is None:
            continue
        if row.is_champion:
            mark(model.key, f"champion: {row.specialty}/{row.regime}")
    for model in cat.models:
        if model.stage in LIVE_STAGES:
            mark(model.key, f"{model.stage}: stage")
        if model.kept:
            mark(model.key, "kept: by an operator")
    for row in cat.regime_rows:
        model = by_model.get((row.run_id, row.agent_id))
        if model is not None:
            mark(model.key, f"best per regime: {row.run_id} {row.specialty}/{row.regime}")
    evolution_ids = {m.key for m in cat.models if m.kind == "evolution"}
    for run_id in sorted({m.run_id for m in cat.models if m.kind == "evolution"}):
        last: dict[str, tuple[str, ...]] = {}
        for generation in runs.generations(run_id):  # by generation: the last one wins
            last[generation.specialty] = generation.hall_of_fame
        for specialty, hall in last.items():
            for agent_id in hall:
                if agent_id in evolution_ids:
                    mark(agent_id, f"hall of fame: {run_id} {specialty}")
        if run_id in cat.running_runs:
            for model in cat.models:
                if model.run_id == run_id:
                    mark(model.key, f"run still running: {run_id}")
    for model in [m for m in cat.models if m.kind == "evolution" and m.key in keep]:
        for ancestor in runs.ancestors(model.key, run_id=model.run_id):
            if ancestor.agent_id in evolution_ids:
                mark(ancestor.agent_id, f"ancestor: of {model.model_id}")
    plan.delete = [m for m in cat.models if m.key not in keep]
    plan.missing = [m for m in cat.models if not m.on_disk]
    plan.orphans = [p for p in on_disk(home) if p not in cat.named]
    return plan


def delete_model(store: Store, home: Path, model: Model) -> None:
    """Delete a model's file, then its row (Tune) or the agent row's checkpoint (evolution)."""
    if model.path is not None:
        model.path.unlink(missing_ok=True)
    if model.kind == "tune":
        store.training.delete_training_run(model.key)
        return
    runs = store.runs
    agent: AgentRecord = runs.require_agent(model.key, run_id=model.run_id)
    runs.upsert_agent(replace(agent, checkpoint_path=None, checkpoint_sha256=None))


@dataclass(frozen=True)
class Pruned:
    """A model prune deleted (or would delete), with its file's size before it went."""

    model: Model
    size: int | None  # bytes; None when its file was already gone


@dataclass(frozen=True)
class PruneResult:
    """What ``prune_models`` kept and deleted (or, on a dry run, would delete).

    ``kept``: model key -> ``"<category>: <detail>"``. ``missing``: rows whose file is gone (also
    in ``deleted`` unless kept). ``orphans``: files under ``checkpoints/`` that no row names,
    ``orphan_bytes`` their size; deleted only when ``orphans_deleted``. ``problems``: what an
    operator should look at, one sentence each (kept models whose file is gone, orphans left
    because the queue is running); ``orphans_refused`` is the latter's sentence, or None.
    """

    dry_run: bool
    kept: dict[str, str]
    deleted: tuple[Pruned, ...]
    missing: tuple[Model, ...]
    orphans: tuple[Path, ...]
    orphan_bytes: int
    orphans_deleted: bool = False
    orphans_refused: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def model_bytes(self) -> int:
        """Bytes of the deleted models' files."""
        return sum(p.size or 0 for p in self.deleted)

    @property
    def files_deleted(self) -> int:
        """Files removed (or that would be): the models' files on disk, and orphans if deleted."""
        models = sum(p.size is not None for p in self.deleted)
        return models + (len(self.orphans) if self.orphans_deleted else 0)

    @property
    def bytes_freed(self) -> int:
        """Bytes freed (or that would be): the models' files, and the orphans' if deleted."""
        return self.model_bytes + (self.orphan_bytes if self.orphans_deleted else 0)

    def kept_by_category(self) -> dict[str, int]:
        """How many models each rule kept (``champion``, ``hall of fame``, ``ancestor``, ...)."""
        counts: dict[str, int] = {}
        for why in self.kept.values():
            category = why.split(":", 1)[0]
            counts[category] = counts.get(category, 0) + 1
        return dict(sorted(counts.items()))

    def summary(self) -> str:
        """One line: ``kept 6 models (4 ancestor, 2 hall of fame); deleted 2 (0.01 MB)``."""
        verb = "would delete" if self.dry_run else "deleted"
        kept = ", ".join(f"{n} {why}" for why, n in self.kept_by_category().items())
        return (
            f"kept {len(self.kept)} models ({kept or 'none'}); {verb} {len(self.deleted)} "
            f"({self.model_bytes / 2**20:.2f} MB)"
        )


def prune_models(
    store: Store, home: Path, *, delete_orphans: bool = False, dry_run: bool = False
) -> PruneResult:
    """Delete every model the prune rules do not keep (see the module doc); with
    ``delete_orphans``, also the files under ``checkpoints/`` that no row names, unless a ``queue
    start`` is running on ``home`` (then they stay, and ``orphans_refused`` says why). ``dry_run``
    changes nothing and reports what would go."""
    from tuning.queue import queue_running  # the queue's module is only needed here

    plan = plan_prune(store, home)
    deleted = tuple(Pruned(m, m.size if m.on_disk else None) for m in plan.delete)
    if not dry_run:
        for model in plan.delete:
            delete_model(store, home, model)
    problems = [
        f"kept model {m.model_id} names a file that is gone: {m.path}"
        for m in plan.missing
        if m.key in plan.keep
    ]
    orphan_bytes = sum(p.stat().st_size for p in plan.orphans if p.exists())
    orphans_deleted, refused = False, None
    if delete_orphans and plan.orphans and not dry_run:
        pid = queue_running(home)
        if pid:
            refused = (
                f"`redline queue start` (pid {pid}) is running: a trial's file exists a moment "
                "before its row; delete orphans when the queue is stopped"
            )
            problems.append(refused)
        else:
            for path in plan.orphans:
                path.unlink(missing_ok=True)
            orphans_deleted = True
    return PruneResult(
        dry_run=dry_run,
        kept=dict(plan.keep),
        deleted=deleted,
        missing=tuple(plan.missing),
        orphans=tuple(plan.orphans),
        orphan_bytes=orphan_bytes,
        orphans_deleted=orphans_deleted,
        orphans_refused=refused,
        problems=tuple(problems),
    )
