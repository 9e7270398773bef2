"""``redline models list | keep | delete | prune | stats`` and ``redline runs search``.

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
- the ancestors of every evolution model kept (``RunStore.ancestors``): lineage stays replayable;
- models of an evolution run still ``running`` (it may still need them; a run that crashed stays
  ``running`` until resumed).

Deleting a Tune model removes its file and its ``training_runs`` row (its inference backtests go
with it). Deleting an evolution model removes its file and clears the agent row's checkpoint
(``checkpoint_path``, ``checkpoint_sha256``): the row itself is the run's history (lineage, kills,
generations name it) and stays. Prune also reports files under ``checkpoints/`` that no row names
(``--delete-orphans`` removes them) and rows whose file is gone (pruned like the others, unless
kept: those are listed as problems).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Column, Table

from cli.state import CliState, make_console, num, open_store
from store.db import Store
from store.paths import DataRoot
from store.records.champions import RegimeBestRecord, Stage
from store.records.population import AgentRecord, AgentStatus, RunStatus
from store.records.training import TrainingStatus

if TYPE_CHECKING:
    from store.training import TrainingStore

console = make_console()
models_app = typer.Typer(
    help="Trained models and their files: list, keep, delete, prune, stats.", no_args_is_help=True
)

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


def _gene(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _mb(size: float) -> str:
    return f"{size / 2**20:.2f}"


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


# -- commands ---------------------------------------------------------------------------------------


def _model_table(models: Sequence[Model], title: str) -> Table:
    table = Table(
        Column("model", no_wrap=True), "kind", "run", "specialty", "stage",
        Column("sharpe", justify="right"), "champion of", "kept", Column("file MB", justify="right"),
        title=title,
    )  # fmt: skip
    for m in models:
        table.add_row(
            m.model_id,
            m.kind,
            m.run_id,
            m.specialty,
            m.stage,
            num(m.sharpe),
            ", ".join(m.champion_of) or "-",
            "yes" if m.kept else "-",
            _mb(m.size) if m.on_disk else "missing",
        )
    return table


@models_app.command("list")
def list_cmd(
    ctx: typer.Context,
    kind: str | None = typer.Option(None, "--kind", help="tune or evolution."),
    specialty: str | None = typer.Option(None, "--specialty", "-s", help="Only this specialty."),
    stage: str | None = typer.Option(None, "--stage", help="Only this lifecycle stage."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many, best first."),
) -> None:
    """Every model with a file: champions first, then by Sharpe."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"--kind must be one of {', '.join(KINDS)}; got {kind!r}")
    if stage is not None and stage not in tuple(Stage):
        raise ValueError(f"--stage must be one of {', '.join(Stage)}; got {stage!r}")
    state: CliState = ctx.obj
    store = open_store(state)
    models = [
        m
        for m in catalog(store, state.home).models
        if (kind is None or m.kind == kind)
        and (specialty is None or m.specialty == specialty)
        and (stage is None or m.stage == stage)
    ]
    models.sort(key=lambda m: (not m.champion_of, m.sharpe is None, -(m.sharpe or 0.0), m.key))
    shown = models[:limit] if limit else models
    title = f"{len(models)} models in {store.url_for_display}" + (
        f" (best {len(shown)})" if len(shown) < len(models) else ""
    )
    console.print(_model_table(shown, title))


@models_app.command("keep")
def keep_cmd(
    ctx: typer.Context,
    model_id: str = typer.Argument(
        ..., help="A Tune model: tr-<hash> (see `redline models list`)."
    ),
    undo: bool = typer.Option(False, "--undo", help="Stop keeping it (prune may delete it)."),
) -> None:
    """Keep a Tune model: prune never deletes it."""

    state: CliState = ctx.obj
    store = open_store(state)
    model = find_model(catalog(store, state.home).models, model_id)
    if model.kind != "tune":
        raise ValueError(
            f"{model.model_id} is an evolution model: prune keeps a run's elites, its best per "
            "regime and their ancestors already; only Tune models carry a kept flag"
        )
    store.training.set_kept(model.key, not undo)
    console.print(f"{model.model_id} {'no longer kept' if undo else 'kept'}")


@models_app.command("delete")
def delete_cmd(
    ctx: typer.Context,
    model_id: str = typer.Argument(..., help="tr-<hash> or an evolution agent id."),
    force: bool = typer.Option(False, "--force", help="Delete even a kept model."),
) -> None:
    """Delete one model: its file, and its row (Tune) or its checkpoint fields (evolution)."""
    state: CliState = ctx.obj
    store = open_store(state)
    model = find_model(catalog(store, state.home).models, model_id)
    if model.champion_of:
        raise ValueError(
            f"{model.model_id} is the champion of {', '.join(model.champion_of)} "
            f"({model.specialty}): a champion is never deleted"
        )
    if model.kept and not force:
        raise ValueError(
            f"{model.model_id} is kept: `redline models keep {model.model_id} --undo` first, "
            "or --force"
        )
    delete_model(store, state.home, model)
    console.print(f"deleted {model.model_id} ({model.kind}, {model.run_id})")


@models_app.command("prune")
def prune_cmd(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would go; change nothing."),
    delete_orphans: bool = typer.Option(
        False, "--delete-orphans", help="Also delete files under checkpoints/ that no row names."
    ),
) -> None:
    """Delete every model but champions, PAPER/MATURE, kept ones, elites and their ancestors.

    Also reports the files under checkpoints/ that no row names, and the rows whose file is gone.
    """
    from tuning.queue import queue_running

    state: CliState = ctx.obj
    store = open_store(state)
    plan = plan_prune(store, state.home)
    verb = "would delete" if dry_run else "deleted"
    freed = sum(m.size for m in plan.delete)
    table = Table(
        "model", "kind", "run", "stage", "sharpe", "file MB", title=f"{verb}: {len(plan.delete)} models"
    )  # fmt: skip
    for m in plan.delete:
        size = _mb(m.size) if m.on_disk else "missing"
        table.add_row(m.model_id, m.kind, m.run_id, m.stage, num(m.sharpe), size)
    if not dry_run:
        for model in plan.delete:
            delete_model(store, state.home, model)
    console.print(table)
    reasons: dict[str, int] = {}
    for why in plan.keep.values():
        category = why.split(":", 1)[0]
        reasons[category] = reasons.get(category, 0) + 1
    summary = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
    console.print(
        f"kept {len(plan.keep)} models ({summary or 'none'}); {verb} {len(plan.delete)} "
        f"({_mb(freed)} MB)"
    )
    if plan.missing:
        missing_kept = [m.model_id for m in plan.missing if m.key in plan.keep]
        kept_note = (
            f" ({len(missing_kept)} kept: {', '.join(missing_kept)})" if missing_kept else ""
        )
        console.print(f"{len(plan.missing)} rows name a file that is gone{kept_note}")
    if not plan.orphans:
        return
    orphan_bytes = sum(p.stat().st_size for p in plan.orphans if p.exists())
    console.print(
        f"{len(plan.orphans)} files under checkpoints/ that no row names ({_mb(orphan_bytes)} MB):"
    )
    for path in plan.orphans[:20]:
        console.print(f"  {escape(str(path))}")
    if len(plan.orphans) > 20:
        console.print(f"  ... and {len(plan.orphans) - 20} more")
    if not delete_orphans:
        console.print("(`redline models prune --delete-orphans` deletes them)")
        return
    if dry_run:
        return
    pid = queue_running(state.home)
    if pid:
        raise ValueError(
            f"`redline queue start` (pid {pid}) is running: a trial's file exists a moment "
            "before its row; delete orphans when the queue is stopped"
        )
    for path in plan.orphans:
        path.unlink(missing_ok=True)
    console.print(f"deleted {len(plan.orphans)} orphan files")


@models_app.command("stats")
def stats_cmd(ctx: typer.Context) -> None:
    """Models per kind and stage, files and their size, champions, kept; orphans and missing."""
    state: CliState = ctx.obj
    store = open_store(state)
    cat = catalog(store, state.home)
    table = Table("kind", "models", "on disk", "MB", "champions", "kept",
                  *(s.lower() for s in Stage), title=f"models in {store.url_for_display}")  # fmt: skip
    for kind in KINDS:
        models = [m for m in cat.models if m.kind == kind]
        table.add_row(
            kind,
            str(len(models)),
            str(sum(m.on_disk for m in models)),
            _mb(sum(m.size for m in models)),
            str(sum(bool(m.champion_of) for m in models)),
            str(sum(m.kept for m in models)),
            *(str(sum(m.stage == s for m in models)) for s in Stage),
        )
    console.print(table)
    files = on_disk(state.home)
    orphans = [p for p in files if p not in cat.named]
    missing = [m for m in cat.models if not m.on_disk]
    console.print(
        f"{len(files)} files under {state.home / 'checkpoints'} ({_mb(sum(p.stat().st_size for p in files))} MB); "
        f"{len(orphans)} that no row names ({_mb(sum(p.stat().st_size for p in orphans))} MB); "
        f"{len(missing)} rows whose file is gone"
    )


# -- redline runs search -------------------------------------------------------------------------------


def search_cmd(
    ctx: typer.Context,
    specialty: str | None = typer.Option(None, "--specialty", "-s", help="Only this specialty."),
    regime: str | None = typer.Option(
        None, "--regime", "-r", help="Rank by this regime's out-of-sample metric."
    ),
    sort: str = typer.Option("sharpe", "--sort", help="The metric to rank by, best first."),
    limit: int = typer.Option(20, "--limit", min=1, help="At most this many."),
) -> None:
    """Trained Tune configs, best first: each with its best inference config (out of sample)."""
    from market.regimes import REGIMES

    if regime is not None and regime not in REGIMES:
        raise ValueError(f"--regime must be one of {', '.join(REGIMES)}; got {regime!r}")
    state: CliState = ctx.obj
    store = open_store(state)
    rows = store.training.search(specialty=specialty, regime=regime, sort=sort, limit=limit)
    where = f" in {regime}" if regime else ""
    genomes = [run.config.get("genome", {}) for run, _ in rows]
    # The genes that differ among the rows shown: what the search varied.
    varied = [
        name for name in (genomes[0] if genomes else {})
        if len({repr(genome.get(name)) for genome in genomes}) > 1
    ]  # fmt: skip
    table = Table(
        Column("model", no_wrap=True), "experiment", "stage", Column(f"{sort}{where}", justify="right"),
        Column("bars" if regime else "trades", justify="right"), "threshold", "horizon", "size",
        "genome (genes that differ)",
        title=f"best {len(rows)} trained configs by {sort}{where}, each with its best inference "
        "config (out of sample)",
    )  # fmt: skip
    for (run, backtest), genome in zip(rows, genomes, strict=True):
        if backtest is None:
            value, count, inference = None, None, {}
        else:
            metrics = backtest.per_regime.get(regime, {}) if regime else backtest.metrics
            value = metrics.get(sort)
            count = metrics.get("bars" if regime else "trade_count")
            inference = backtest.inference
        table.add_row(
            run.agent_id,
            run.experiment,
            run.stage,
            num(value),
            "-" if count is None or not math.isfinite(count) else f"{count:.0f}",
            num(inference.get("threshold"), ".2f"),
            num(inference.get("horizon"), ".0f"),
            num(inference.get("size"), ".2f"),
            escape(" ".join(f"{name}={_gene(genome.get(name))}" for name in varied)),
        )
    console.print(table)
