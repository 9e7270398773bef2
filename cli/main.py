"""The ``redline`` command: Typer app wiring. Each command group lives in its own module."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from cli.backtest import backtest_cmd
from cli.data import data_app
from cli.evolve import evolve_cmd, mother_train_cmd, prepare_cmd
from cli.live import live_cmd, status_cmd
from cli.models import models_app, search_cmd
from cli.queue import queue_app
from cli.runs import (
    children_cmd,
    generations_cmd,
    kills_cmd,
    lineage_cmd,
    restore_cmd,
    runs_app,
)
from cli.serve import serve_cmd
from cli.state import CliState, make_console, open_store

app = typer.Typer(
    name="redline",
    help="Breed, evaluate and serve populations of trading models on a Ray cluster.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="The database: SQLite under REDLINE_HOME, or REDLINE_DATABASE_URL.")
app.add_typer(data_app, name="data")
app.add_typer(db_app, name="db")
app.command("evolve")(evolve_cmd)
mother_app = typer.Typer(help="The mother brain: per-regime champion coordinators.")
mother_app.command("train")(mother_train_cmd)
app.add_typer(mother_app, name="mother")
data_app.command("prepare")(prepare_cmd)
# Reading what runs left behind (cli/runs.py).
app.add_typer(runs_app, name="runs")
runs_app.command("search")(search_cmd)
app.command("children")(children_cmd)
app.command("generations")(generations_cmd)
app.command("lineage")(lineage_cmd)
app.command("kills")(kills_cmd)
app.command("restore")(restore_cmd)
# Tune grids through the training queue, and the models they leave (cli/queue.py,
# cli/models.py).
app.add_typer(queue_app, name="queue")
app.add_typer(models_app, name="models")
# Backtests of a strategy beside the baselines (cli/backtest.py).
app.command("backtest")(backtest_cmd)
app.command("serve")(serve_cmd)  # cli/serve.py
# The living loop and where it stands (cli/live.py).
app.command("live")(live_cmd)
app.command("status")(status_cmd)

console = make_console()


@app.callback()
def root(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", "-c", help="A YAML file read on top of configs/defaults.yaml."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level."),
) -> None:
    """Redline's root options; set REDLINE_HOME for the data root (default ./redline_data)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else os.environ.get("REDLINE_LOG_LEVEL", "WARNING"),
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )
    ctx.obj = CliState(config_path=config)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply the database migrations (also done automatically on first use)."""
    state: CliState = ctx.obj
    store = open_store(state)  # opening applies any pending migration
    revision = store.database.upgrade()
    console.print(f"database at {store.url_for_display} is at revision {revision}")


@app.command("demo")
def demo(
    ctx: typer.Context,
    evolve: bool = typer.Option(
        True, help="Also run the small evolution (2 to 3 minutes on 2 cores)."
    ),
) -> None:
    """The shipped real sample: load and summarize it, evolve the seven specialties on it, and
    serve one prediction from the champions."""
    from cli.demo import run_demo

    run_demo(ctx.obj, console, evolve=evolve)


def main() -> None:
    try:
        app()
    except (ValueError, OSError) as exc:  # bad input, unreadable files: say what, no traceback
        # soft_wrap: the message stays one line however narrow the terminal, so it can be grepped.
        # escape: a message may quote brackets ("[ms, open, ...] rows") that are not markup.
        message = f"[bold red]error:[/] {escape(str(exc))}"
        Console(stderr=True).print(message, highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
