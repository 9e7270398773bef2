"""``redline models list | keep | delete | prune | stats`` and ``redline runs search``.

Each command parses, calls ``tuning.models`` (the catalog of a data root's models and the prune
rules, which the living loop's retention job uses too) and renders with rich. A *model* is a trained
network with a file under ``checkpoints/``: a Tune model (``tr-<config_hash[:12]>``) or an evolution
model (its agent id); what prune keeps is written once, in ``tuning.models``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import typer
from rich.markup import escape
from rich.table import Column, Table

from cli.state import CliState, make_console, num, open_store
from store.records.champions import Stage
from tuning.models import KINDS, Model, catalog, delete_model, find_model, on_disk, prune_models

console = make_console()
models_app = typer.Typer(
    help="Trained models and their files: list, keep, delete, prune, stats.", no_args_is_help=True
)


def _gene(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _mb(size: float) -> str:
    return f"{size / 2**20:.2f}"


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
    state: CliState = ctx.obj
    store = open_store(state)
    result = prune_models(store, state.home, delete_orphans=delete_orphans, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    table = Table(
        "model", "kind", "run", "stage", "sharpe", "file MB", title=f"{verb}: {len(result.deleted)} models"
    )  # fmt: skip
    for pruned in result.deleted:
        m = pruned.model
        size = _mb(pruned.size) if pruned.size is not None else "missing"
        table.add_row(m.model_id, m.kind, m.run_id, m.stage, num(m.sharpe), size)
    console.print(table)
    console.print(result.summary())
    if result.missing:
        missing_kept = [m.model_id for m in result.missing if m.key in result.kept]
        kept_note = (
            f" ({len(missing_kept)} kept: {', '.join(missing_kept)})" if missing_kept else ""
        )
        console.print(f"{len(result.missing)} rows name a file that is gone{kept_note}")
    if not result.orphans:
        return
    console.print(
        f"{len(result.orphans)} files under checkpoints/ that no row names "
        f"({_mb(result.orphan_bytes)} MB):"
    )
    for path in result.orphans[:20]:
        console.print(f"  {escape(str(path))}")
    if len(result.orphans) > 20:
        console.print(f"  ... and {len(result.orphans) - 20} more")
    if not delete_orphans:
        console.print("(`redline models prune --delete-orphans` deletes them)")
        return
    if result.orphans_refused is not None:
        raise ValueError(result.orphans_refused)
    if result.orphans_deleted:
        console.print(f"deleted {len(result.orphans)} orphan files")


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
