"""``make demo``: the shipped real sample, loaded into the embedded store and summarized.

Later issues grow this into a small evolution; for now it shows the data layer end to end.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from cluster.cli_data import fmt_ts
from cluster.cli_state import CliState, open_store
from cluster.ingest import ensure_sample
from market.gaps import find_gaps
from market.regimes import REGIMES, classify_regimes, regime_shares


def run_demo(state: CliState, console: Console) -> None:
    store = open_store(state)
    console.print(
        f"Redline demo: data root [bold]{state.home}[/], database {store.url_for_display}"
    )
    for result in ensure_sample(store):
        console.print(
            f"imported {result.path.name}: {result.rows_inserted:,} new rows of {result.key}"
        )
    rules = state.config.regimes.to_rules()
    store.sync_regime_definitions(rules)
    short = [name.replace("_trending", "").replace("_ranging", "") for name in REGIMES]
    table = Table(
        "series", "rows", "first", "last", "gaps (bars)", *short,
        title=f"the shipped sample: share of time per regime over a {rules.window} window",
    )  # fmt: skip
    for info in store.list_series():
        candles = store.load_candles(info.key)
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
