"""``make demo``: the shipped real sample into the embedded store, then a small real evolution.

It prints a summary of every series (rows, range, gaps, share of time per regime), evolves all
seven specialties for a few generations on Ray (``configs/evolve-demo.yaml``), prints the mother
brain's champions per regime beside the best single child and buy-and-hold, out of sample, and ends
with one prediction of the freshly evolved ensemble: the Serve application (``serving.app``) started
on a free loopback port, one ``RedlineClient.predict``, then Serve shut down.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from cli.data import fmt_ts
from cli.state import CliState, open_store
from market.gaps import find_gaps
from market.regimes import REGIMES, classify_regimes, regime_shares
from store.ingest import ensure_sample


def run_demo(state: CliState, console: Console, *, evolve: bool = True) -> None:
    store = open_store(state)
    console.print(
        f"Redline demo: data root [bold]{state.home}[/], database {store.url_for_display}"
    )
    for result in ensure_sample(store):
        console.print(
            f"imported {result.path.name}: {result.rows_inserted:,} new rows of {result.key}"
        )
    rules = state.config.regimes
    store.regimes.sync_regime_definitions(rules)
    short = [name.replace("_trending", "").replace("_ranging", "") for name in REGIMES]
    table = Table(
        "series", "rows", "first", "last", "gaps (bars)", *short,
        title=f"the shipped sample: share of time per regime over a {rules.window} window",
    )  # fmt: skip
    for info in store.candles.list_series():
        candles = store.candles.load_candles(info.key)
        gaps = find_gaps(candles["ts"].to_numpy(), info.key.timeframe_ms)
        shares = regime_shares(classify_regimes(candles, info.key.timeframe, rules))
        table.add_row(
            f"{info.key.exchange} {info.key.symbol} {info.key.timeframe}",
            f"{info.rows:,}",
            fmt_ts(info.first_ts)[:10],
            fmt_ts(info.last_ts)[:10],
            f"{len(gaps)} ({sum(gap.missing for gap in gaps)})",
            *(f"{shares.get(name, 0.0):.1%}" for name in REGIMES),
        )
    console.print(table)
    if not evolve:
        return
    from cli.evolve import brain_table
    from cluster.config import CONFIG_DIR, load_config
    from cluster.evolve import start_or_resume
    from evolution.brain import latest_brain

    demo = load_config(CONFIG_DIR / "evolve-demo.yaml")
    console.print("evolving the seven specialties (configs/evolve-demo.yaml) ...")
    lowered = demo.champions.changed_from_defaults()
    if lowered:
        console.print(
            f"[yellow]the demo lowers the champion bar for speed: {'; '.join(lowered)}[/]; "
            "its few short generations could not pass the default rules, and nothing it crowns "
            "should serve a real bot (benchmarks/edge.py judges by the defaults)"
        )
    last = [-1]

    def show(progress: Any) -> None:
        if progress.generation != last[0] and progress.planned:
            last[0] = progress.generation
            console.print(
                f"  generation {progress.generation}: training {progress.planned} children"
            )

    run = start_or_resume(demo, demo.evolve, store, state.home, on_progress=show)
    stats = latest_brain(state.home, run.run_id)
    if stats:
        console.print(brain_table(stats))
    console.print(
        f"run {run.run_id}: {run.generations_done} generations in {run.seconds:.0f}s; "
        f"try `redline children {run.run_id}` or `redline generations {run.run_id}`"
    )
    assert demo.evolve is not None  # evolve-demo.yaml has its evolve section
    data = demo.evolve.data
    show_prediction(console, store.url, state.home, data.symbols[0], data.timeframe)


def show_prediction(
    console: Console, store_url: str, home: Any, symbol: str, timeframe: str
) -> None:
    """Serve the live ensemble on a free loopback port, ask it once, print the answer, stop it."""
    import socket

    from ray import serve

    from serving.app import build_app
    from serving.client import RedlineClient

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    quiet = {"log_level": "WARNING", "enable_access_log": False}  # the table below says it all
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=quiet)
    try:
        # No CPU reserved: on a 2-core laptop the evolution's pool may still hold the cores.
        app = build_app(store_url, home, deployment={"ray_actor_options": {"num_cpus": 0}})
        serve.run(app, name="redline", route_prefix="/", logging_config=quiet)
        with RedlineClient(f"http://127.0.0.1:{port}", timeout=60) as client:
            answer = client.predict(symbol, timeframe=timeframe)
    finally:
        serve.shutdown()
    regime = answer.regime
    confidence = "n/a" if regime.confidence is None else f"{regime.confidence:.2f}"
    table = Table(
        "specialty", "agent", "generation", "vote", "score", "weight",
        title=f"Serve's prediction for {answer.symbol} {answer.timeframe} at "
        f"{fmt_ts(answer.as_of)} (ensemble {answer.model_version})",
    )  # fmt: skip
    for member in answer.members:
        table.add_row(member.specialty, member.agent_id, str(member.generation),
                      f"{member.vote:+d}", f"{member.score:+.3f}", f"{member.weight:.2f}")  # fmt: skip
    console.print(table)
    signal = answer.signal
    console.print(
        f"regime {regime.name or 'none'} (confidence {confidence}); signal direction "
        f"{signal.direction:+d}, score {signal.score:+.3f}, confidence {signal.confidence:.2f}, "
        f"position size {answer.position_size:.2f} by {answer.combiner}"
        + (f"; {signal.reason}" if signal.reason else "")
    )
