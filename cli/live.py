"""``redline live`` (the living loop, or its replay) and ``redline status``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.state import CliState, make_console, open_store
from cluster.config import data_home, load_config
from live.service import LiveService, Tick
from live.status import status
from market.when import fmt_ts, parse_when

console = make_console()


LOUD = frozenset({"retrain", "evolve"})


def _printer(
    progress: Progress | None = None, start_ms: int = 0, until_ms: int = 0
) -> Callable[[Tick], None]:
    """What the terminal shows: every retrain and failure as a line; in a replay, a progress bar
    on the simulated clock with the job running and its last outcome."""
    out = progress.console if progress is not None else console
    task = None if progress is None else progress.add_task("replay", total=until_ms - start_ms)

    def on_tick(tick: Tick) -> None:
        if progress is not None and task is not None:
            progress.update(
                task, completed=tick.now_ms - start_ms,
                description=f"{fmt_ts(tick.now_ms)} {tick.job}: {tick.outcome[:48]}",
            )  # fmt: skip
        if tick.ok and tick.job not in LOUD:
            return
        colour = "green" if tick.ok else "red"
        out.print(
            f"[dim]{fmt_ts(tick.now_ms)}[/] [{colour}]{tick.job}[/] {escape(tick.outcome)} "
            f"[dim]({tick.seconds:.1f} s)[/]", highlight=False, soft_wrap=True,
        )  # fmt: skip

    return on_tick


def live_cmd(
    ctx: typer.Context,
    replay_data: Path | None = typer.Option(
        None, "--replay-data", help="Replay: a folder of candle files like ../shared/data."
    ),
    replay_from: str | None = typer.Option(None, "--replay-from", help="Replay start (UTC date)."),
    replay_until: str | None = typer.Option(None, "--replay-until", help="Replay end (UTC date)."),
) -> None:
    """The living loop: collect, label, retrain, judge and hot-swap on the config's schedules
    (`live:`); Ctrl-C stops it. With --replay-*: the same loop over past data, then its report."""
    state: CliState = ctx.obj
    config = load_config(state.config_path)
    config.require_live(str(state.config_path or "configs/defaults.yaml"))
    store = open_store(state)
    home = data_home(config)
    on_tick = _printer()
    if replay_data is not None or replay_from or replay_until:
        if not (replay_data and replay_from and replay_until):
            raise ValueError("a replay needs --replay-data, --replay-from and --replay-until")
        from live.replay import replay

        start = parse_when(replay_from, "--replay-from")
        until = parse_when(replay_until, "--replay-until")
        console.print(f"replaying {replay_from} .. {replay_until} from {replay_data}")
        columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            on_tick = _printer(progress, start, until)
            report = replay(config, store, home, replay_data, start, until, on_tick=on_tick)
        report.render(console)
        console.print(f"report written to {home / 'replay_report.json'}")
        return
    from live.clock import WallClock

    service = LiveService(config, store, home, WallClock(), on_tick=on_tick)
    service.install_signal_handlers()
    console.print(f"redline live on {home}: Ctrl-C stops it")
    service.run()
    console.print("stopped")


def status_cmd(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="The status as JSON (keys: README)."),
) -> None:
    """Where the living loop stands: series, schedules, champions, swaps, refusals, errors."""
    state: CliState = ctx.obj
    config = load_config(state.config_path)
    store = open_store(state)
    found = status(store, config.live, int(time.time() * 1000))
    if as_json:
        print(json.dumps(found, indent=2, sort_keys=True, default=str))
        return
    table = Table(title=f"series (clock {found['clock']})")
    for column in ("series", "first", "last", "rows", "holes", "lag", "labelled", "training"):
        table.add_column(column)
    for s in found["series"]:
        table.add_row(s["series"], str(s["first"]), str(s["last"]), f"{s['rows']:,}",
                      str(s["holes"]), str(s["lag_bars"]), f"{s['labelled']:,}",
                      "yes" if s["training"] else "no")  # fmt: skip
    console.print(table)
    jobs = Table(title="schedules")
    for column in ("job", "last run", "outcome", "next", "detail"):
        jobs.add_column(column)
    for name, j in found["schedules"].items():
        jobs.add_row(name, str(j["finished"] or j["started"]), j["outcome"], str(j["next"]),
                     j["detail"][:80])  # fmt: skip
    console.print(jobs)
    champs = Table(title="champions")
    for column in ("specialty", "regime", "stage", "sharpe", "age h", "validated", "model"):
        champs.add_column(column)
    for c in found["champions"]:
        sharpe = "-" if c["sharpe"] is None else f"{c['sharpe']:+.2f}"
        champs.add_row(c["specialty"], c["regime"], c["stage"], sharpe, str(c["age_hours"]),
                       str(c["validated_at"]), c["model"])  # fmt: skip
    console.print(champs)
    for title in ("swaps", "refusals", "errors"):
        for e in found[title]:
            console.print(
                f"{title[:-1]} {e['at']} {e['subject']}: {e.get('reason') or e.get('error')}"
            )
