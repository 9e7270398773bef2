"""``redline queue add | start | pause | resume | cancel | status``: the training queue.

``start`` (and ``resume``) run in the foreground until the queue is empty; ``pause`` and ``cancel``
are meant for another terminal: the running ``start`` reads the database every second, stops its
Tune trials and exits. See ``tuning/queue.py`` for what survives a kill.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import (
    TaskID,
)
from rich.table import Column, Table

from cli.state import CliState, make_console, num, open_store, status_progress
from store.records.training import QueueStatus, TrainingStatus

if TYPE_CHECKING:
    from evolution.champions import ChampionPolicy
    from store.db import Store

console = make_console()
queue_app = typer.Typer(
    help="The training queue: Tune grids trained one config at a time, resumable at any point.",
    no_args_is_help=True,
)


@queue_app.command("add")
def add_cmd(
    ctx: typer.Context,
    grids: list[Path] = typer.Argument(..., help="Grid files, e.g. configs/grids/smoke.yaml."),
) -> None:
    """Queue every config of each grid (a config already queued or trained is skipped)."""
    from tuning.grids import grid_hash, load_grid, with_regime_rules
    from tuning.queue import add_grid, experiment_id

    rules = ctx.obj.config.regimes  # a trial's identity includes its regime rules
    # Every file validated before any is queued.
    specs = [with_regime_rules(load_grid(path), rules) for path in grids]
    tstore = open_store(ctx.obj).training
    for spec in specs:
        added, skipped = add_grid(tstore, spec, ctx.obj.config.regimes)
        what = "Optuna slots" if spec.search == "optuna" else "configs"
        console.print(
            f"grid [bold]{spec.name}[/] ({spec.search}, {spec.specialty}): {added} {what} added, "
            f"{skipped} already queued or trained; experiment {experiment_id(grid_hash(spec))}"
        )
    console.print("train them with `redline queue start`")


def _run(ctx: typer.Context, *, resume: bool, max_concurrent: int | None) -> None:
    from cluster.session import ensure_ray
    from tuning.queue import QueueProgress, queue_lock, start

    state: CliState = ctx.obj
    store = open_store(state)
    with queue_lock(state.home):  # another start running: say so before starting Ray
        pass
    counts = store.training.queue_counts()
    queued, paused_n = (
        counts[QueueStatus.QUEUED] + counts[QueueStatus.RUNNING],
        counts[QueueStatus.PAUSED],
    )
    if not queued + (paused_n if resume else 0):
        paused = f"; {paused_n} paused: `redline queue resume`" if paused_n else ""
        console.print(f"nothing queued: `redline queue add GRID.yaml`{paused}")
        return
    # Trials label regimes with the store's definitions: make them this invocation's config's.
    store.regimes.sync_regime_definitions(state.config.regimes)
    ensure_ray()
    # Tune's newer console output prints its own tables even at verbose=0; the bars below say it.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    with status_progress(console) as bars:
        tasks: dict[str, TaskID] = {}

        def show(progress: QueueProgress) -> None:
            if progress.experiment not in tasks:
                tasks[progress.experiment] = bars.add_task(
                    f"{progress.grid} ({progress.experiment})", total=progress.total, status=""
                )
            best = num(progress.best_sharpe, "+.2f")
            bars.update(
                tasks[progress.experiment],
                total=progress.total,
                completed=progress.done + progress.failed,
                status=f"running {progress.running}, failed {progress.failed}, best Sharpe {best}",
            )

        result = start(
            store,
            state.home,
            policy=champion_policy(state),
            max_concurrent=max_concurrent,
            resume=resume,
            on_progress=show,
        )
    if result.reset:
        console.print(f"{result.reset} configs left RUNNING or PAUSED were queued again")
    if result.promotions:
        console.print(champions_table(store, len(result.promotions)))
    best = (
        f"; best Sharpe {result.best_sharpe:+.2f} (tr-{result.best_config[:12]})"
        if result.best_sharpe is not None and result.best_config
        else ""
    )
    skipped = f", {result.skipped} trained before" if result.skipped else ""
    console.print(
        f"{result.done} trained, {result.failed} failed{skipped} in {result.seconds:.0f}s{best}. "
        "See `redline queue status`, `redline runs search`, `redline models list`."
    )
    left = result.left
    if result.stopped == "paused" or left.get(QueueStatus.PAUSED):
        console.print(f"paused: {left.get('PAUSED', 0)} configs wait for `redline queue resume`")
    elif result.stopped == "cancelled":
        console.print("cancelled: the configs not trained were removed from the queue")
    elif result.stopped == "interrupted":
        console.print(
            f"interrupted: {left.get('QUEUED', 0)} configs wait for `redline queue start`"
        )


def champions_table(store: Store, promotions: int) -> Table:
    """The champion of every (specialty, regime), after ``promotions`` promotions in this run."""

    table = Table(
        "specialty", "regime", "champion", "run", "Sharpe", "bars", "DSR", "trials", "stage",
        title=f"champions per regime ({promotions} promotions in this run; rules: margin, DSR "
        "threshold and bars of the config and the grid)",
    )  # fmt: skip
    for row in store.champions.champions():
        table.add_row(
            row.specialty, row.regime, row.agent_id, row.run_id, num(row.sharpe, "+.2f"),
            num(row.metrics.get("bars"), ".0f"), num(row.dsr, ".2f"), str(row.n_trials or "-"),
            row.stage,
        )  # fmt: skip
    return table


def champion_policy(state: CliState) -> ChampionPolicy:
    """The config's champion policy (``champions:`` of configs/defaults.yaml and --config); each
    grid's own ``champions:`` overrides go on top of it (tuning.queue)."""
    return state.config.champions.to_policy()


@queue_app.command("start")
def start_cmd(
    ctx: typer.Context,
    max_concurrent: int | None = typer.Option(
        None, "--max-concurrent", min=1, help="Trials at once (default: one per CPU)."
    ),
) -> None:
    """Train the queued configs in the foreground until the queue is empty.

    Ctrl-C, or `queue pause` / `queue cancel` from another terminal, stop it; a killed start
    loses only the trials it was running (`queue start` or `queue resume` trains them again).
    """
    _run(ctx, resume=False, max_concurrent=max_concurrent)


@queue_app.command("resume")
def resume_cmd(
    ctx: typer.Context,
    max_concurrent: int | None = typer.Option(
        None, "--max-concurrent", min=1, help="Trials at once (default: one per CPU)."
    ),
) -> None:
    """Queue the PAUSED (and left RUNNING) configs again, then train like `queue start`."""
    _run(ctx, resume=True, max_concurrent=max_concurrent)


@queue_app.command("pause")
def pause_cmd(ctx: typer.Context) -> None:
    """Pause the queue: a running `queue start` stops its trials and exits; nothing is lost."""
    from tuning.queue import queue_running

    state: CliState = ctx.obj
    paused = open_store(state).training.pause_queue()
    pid = queue_running(state.home)
    running = f"; `queue start` (pid {pid}) stops within seconds" if pid else ""
    console.print(f"{paused} queued configs paused{running}; `redline queue resume` continues")


@queue_app.command("cancel")
def cancel_cmd(ctx: typer.Context) -> None:
    """Cancel every config not trained yet: rows CANCELLED, their unfinished files and rows gone."""
    from tuning.queue import clean_cancelled, queue_running

    state: CliState = ctx.obj
    tstore = open_store(state).training
    cancelled = tstore.cancel_queue()
    pid = queue_running(state.home)
    removed = clean_cancelled(tstore, state.home, tune_state=pid is None)
    running = f"; `queue start` (pid {pid}) stops within seconds and cleans up" if pid else ""
    console.print(f"{len(cancelled)} configs cancelled, {len(removed)} files removed{running}")


@queue_app.command("status")
def status_cmd(ctx: typer.Context) -> None:
    """The queue per grid: configs per status, and the best out-of-sample Sharpe so far.

    The Sharpe is a trained model's best inference config's; the models: `redline runs search`.
    """
    from tuning.models import best_inference_sharpes
    from tuning.queue import experiment_id, queue_running

    state: CliState = ctx.obj
    store = open_store(state)
    tstore = store.training
    items = tstore.queue_items()
    traded = best_inference_sharpes(tstore)
    grids: dict[str, dict[str, object]] = {}
    for item in items:
        row = grids.setdefault(item.grid_hash, {"grid": item.grid, "specialty": item.specialty})
        row[item.status] = int(row.get(item.status, 0)) + 1  # type: ignore[call-overload]
    table = Table(
        Column("grid", no_wrap=True), Column("experiment", no_wrap=True),
        *(Column(s.lower(), justify="right") for s in QueueStatus),
        Column("best Sharpe", justify="right"),
        title=f"training queue: {len(items)} configs in {store.url_for_display}",
    )  # fmt: skip
    totals = dict.fromkeys(QueueStatus, 0)
    for digest, row in grids.items():
        experiment = experiment_id(digest)
        trained = tstore.training_runs(experiment=experiment, status=TrainingStatus.DONE)
        best = max(
            (s for r in trained if (s := traded.get(r.config_hash)) is not None), default=None
        )
        counts = [int(row.get(status, 0)) for status in QueueStatus]  # type: ignore[call-overload]
        for status, count in zip(QueueStatus, counts, strict=True):
            totals[status] += count
        table.add_row(
            str(row["grid"]),
            experiment,
            *(str(c) for c in counts),
            num(best, "+.2f"),
        )
    if len(grids) > 1:
        table.add_row("[bold]all", "", *(str(totals[s]) for s in QueueStatus), "")
    console.print(table)
    pid = queue_running(state.home)
    console.print(f"`queue start` running (pid {pid})" if pid else "no `queue start` is running")
