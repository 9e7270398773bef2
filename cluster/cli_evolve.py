"""``redline evolve``, ``redline data prepare`` and ``redline mother train``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cluster.cli_state import CliState, make_console, open_store
from cluster.config import load_config
from evolution.mother import Progress as MotherProgress

console = make_console()


def evolve_cmd(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", "-c", help="An evolve config, e.g. configs/evolve-smoke.yaml."
    ),
    resume: str | None = typer.Option(None, "--resume", help="Finish the run RUN_ID."),
) -> None:
    """Evolve a population of children on Ray; Ctrl-C or a crash loses nothing `--resume` cannot redo."""
    from cluster.evolve import start_or_resume

    state: CliState = ctx.obj
    cfg = load_config(config) if config else state.config
    if not resume and cfg.evolve is None:
        raise ValueError(
            "redline evolve needs --config FILE with an 'evolve' section, or --resume RUN_ID"
        )
    store = open_store(state)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bars:
        task = bars.add_task("preparing datasets", total=None, status="")

        def show(progress: MotherProgress) -> None:
            best = ", ".join(f"{k} {v:+.2f}" for k, v in sorted(progress.best.items()))
            bars.update(
                task,
                description=f"generation {progress.generation}",
                total=progress.planned or None,
                completed=progress.trained,
                status=f"failed {progress.failed}, killed {progress.killed}; best Sharpe: {best}",
            )

        result = start_or_resume(
            cfg,
            cfg.evolve,
            store,
            state.home,
            resume=resume,
            on_progress=show,
        )
    console.print(
        f"run [bold]{result.run_id}[/]: {result.generations_done} generations in {result.seconds:.0f}s. "
        f"See `redline children {result.run_id}`, `redline generations {result.run_id}`, "
        f"`redline kills {result.run_id}`."
    )


def prepare_cmd(
    ctx: typer.Context,
    config: Path = typer.Option(..., "--config", "-c", help="An evolve config."),
) -> None:
    """Build every specialty's datasets under training_db/ (the shared 'dining hall')."""
    from agents.datasets import dataset_path
    from cluster.evolve import prepare_datasets

    state: CliState = ctx.obj
    cfg = load_config(config)
    evolve = cfg.require_evolve(str(config))
    datasets = prepare_datasets(evolve, open_store(state), cfg, state.home)
    for key, dataset in datasets.items():
        specialty, name = key.split("/", 1)
        console.print(
            f"{specialty:18s} {name:32s} {dataset.n_rows:>7,} rows x {len(dataset.feature_names):>2} "
            f"features -> {dataset_path(state.home, specialty, name)}"
        )
