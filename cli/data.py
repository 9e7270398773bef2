"""``redline data ...``: import, fetch, list, gaps, export and regimes of candle series."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.state import CliState, make_console, open_store
from market.files import write_parquet
from market.gaps import find_gaps
from market.regimes import REGIMES, classify_regimes, regime_periods, regime_shares
from market.series import SeriesKey
from market.when import fmt_ts, parse_when
from store.db import Store
from store.fetch import FetchSettings, fetch_series
from store.ingest import import_files
from store.paths import DataRoot

data_app = typer.Typer(help="Candle series: import, fetch (database first), gaps, export, regimes.")
console = make_console()


def _selected(
    store: Store, exchange: str | None, symbol: str | None, timeframe: str | None
) -> list:
    infos = store.candles.list_series()
    if symbol:
        wanted = SeriesKey(exchange or "binance", symbol, timeframe or "1h").symbol
        infos = [info for info in infos if info.key.symbol == wanted]
    if exchange:
        infos = [info for info in infos if info.key.exchange == exchange]
    if timeframe:
        infos = [info for info in infos if info.key.timeframe == timeframe]
    return infos


@data_app.command("import")
def import_cmd(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(
        ..., help="CSV(.gz), freqtrade JSON or feather, or Parquet."
    ),
    exchange: str | None = typer.Option(None, help="Exchange id; default: from the file name."),
    symbol: str | None = typer.Option(
        None, help="Symbol like BTC/USDT; default: from the file name."
    ),
    timeframe: str | None = typer.Option(
        None, help="Timeframe like 1h; default: from the file name."
    ),
    skip_invalid: bool = typer.Option(
        False,
        "--skip-invalid",
        help="Store the good rows and write the bad ones to a rejects file.",
    ),
    rejects_dir: Path | None = typer.Option(
        None, help="Where rejects (and --replace's replaced) files go (default: beside each file)."
    ),
    replace: bool = typer.Option(
        False,
        "--replace",
        help="Correct stored candles: the file's candles replace the stored ones in the range "
        "(--from/--to, default the file's own span); the old rows go to "
        "<series>.replaced.<UTC time>.csv. The whole file or nothing.",
    ),
    start: str | None = typer.Option(
        None, "--from", help="With --replace: start of the range (2024-01-01 or ms), inclusive."
    ),
    end: str | None = typer.Option(
        None, "--to", help="With --replace: end of the range (2024-01-02 or ms), exclusive."
    ),
) -> None:
    """Import candle files into the store. Importing the same file twice changes nothing;
    stored candles change only with --replace."""
    state: CliState = ctx.obj
    store = open_store(state)
    results = import_files(
        store,
        paths,
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        skip_invalid=skip_invalid,
        rejects_dir=rejects_dir,
        plausibility=state.config.validation.to_plausibility(),
        replace=replace,
        start_ms=parse_when(start, "--from") if start else None,
        end_ms=parse_when(end, "--to") if end else None,
    )
    columns = ("replaced", "outside the range") if replace else ("rejected",)
    table = Table("file", "series", "read", "inserted", *columns, title="import")
    for result in results:
        cells: tuple[str, ...]
        if replace:
            kept = f" -> {result.replaced_file}" if result.replaced_file else ""
            cells = (f"{result.rows_replaced:,}{kept}", f"{result.rows_outside:,}")
        else:
            kept = f" -> {result.rejects_file}" if result.rejects_file else ""
            cells = (f"{result.rows_rejected:,}{kept}",)
        table.add_row(
            result.path.name,
            str(result.key),
            f"{result.rows_read:,}",
            f"{result.rows_inserted:,}",
            *cells,
        )
    console.print(table)


@data_app.command("fetch")
def fetch_cmd(
    ctx: typer.Context,
    symbol: str = typer.Option(..., help="Symbol like BTC/USDT."),
    timeframe: str = typer.Option("1h", help="Timeframe like 1h."),
    since: str = typer.Option(..., help="Start, e.g. 2024-01-01 (UTC) or ms since the epoch."),
    until: str | None = typer.Option(
        None, help="End (exclusive); default: the last closed candle."
    ),
    exchange: str | None = typer.Option(
        None, help="ccxt exchange id; default: data.default_exchange."
    ),
    refetch_gaps: bool = typer.Option(
        False, "--refetch-gaps", help="Ask the exchange again for gaps it already said it lacks."
    ),
    api_base: str | None = typer.Option(
        None,
        hidden=True,
        envvar="REDLINE_EXCHANGE_API_BASE",
        help="Send REST calls to this base URL.",
    ),
) -> None:
    """Make the store hold a range: database first, the exchange (ccxt) only for what is missing."""
    state: CliState = ctx.obj
    store = open_store(state)
    key = SeriesKey(exchange or state.config.data.default_exchange, symbol, timeframe)
    step = key.timeframe_ms
    now_ms = int(time.time() * 1000)
    last_closed = now_ms - now_ms % step  # the candle still forming is never stored
    until_ms = min(parse_when(until, "--until"), last_closed) if until else last_closed
    since_ms = parse_when(since, "--since")
    cfg = state.config.fetch
    settings = FetchSettings(**cfg.model_dump(), api_base=api_base)
    total = len(range(since_ms - since_ms % step, until_ms, step))
    with Progress(
        TextColumn(f"[bold]{key}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("bars"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("fetch", total=total)
        result = fetch_series(
            store,
            key,
            since_ms,
            until_ms,
            settings,
            refetch_gaps=refetch_gaps,
            progress=lambda bars: progress.advance(task, bars),
            plausibility=state.config.validation.to_plausibility(),
        )
    console.print(
        f"{key}: {result.requested_bars:,} bars requested, {result.already_stored:,} already stored, "
        f"{result.fetched:,} fetched, {result.inserted:,} new; "
        f"{len(result.known_gaps)} gaps the exchange has no candles for"
    )


@data_app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """Every series in the store: rows, range and gaps."""
    store = open_store(ctx.obj)
    table = Table(
        "exchange", "symbol", "timeframe", "rows", "first", "last", "gaps", "missing bars"
    )
    for info in store.candles.list_series():
        gaps = find_gaps(
            store.candles.existing_timestamps(info.key, None, None), info.key.timeframe_ms
        )
        table.add_row(
            info.key.exchange,
            info.key.symbol,
            info.key.timeframe,
            f"{info.rows:,}",
            fmt_ts(info.first_ts),
            fmt_ts(info.last_ts),
            str(len(gaps)),
            str(sum(gap.missing for gap in gaps)),
        )
    console.print(table)


@data_app.command("gaps")
def gaps_cmd(
    ctx: typer.Context,
    exchange: str | None = typer.Option(None),
    symbol: str | None = typer.Option(None),
    timeframe: str | None = typer.Option(None),
) -> None:
    """Holes in every stored series, and whether the exchange confirmed it has no candles there."""
    store = open_store(ctx.obj)
    table = Table("series", "first missing", "last missing", "bars", "exchange has none")
    count = 0
    for info in _selected(store, exchange, symbol, timeframe):
        confirmed = {gap.start_ts for gap in store.candles.gaps(info.key)}
        for gap in find_gaps(
            store.candles.existing_timestamps(info.key, None, None), info.key.timeframe_ms
        ):
            count += 1
            table.add_row(
                str(info.key),
                fmt_ts(gap.start_ts),
                fmt_ts(gap.end_ts),
                str(gap.missing),
                "yes" if gap.start_ts in confirmed else "not asked yet",
            )
    console.print(table)
    console.print(f"{count} gaps")


@data_app.command("export")
def export_cmd(
    ctx: typer.Context,
    exchange: str | None = typer.Option(None),
    symbol: str | None = typer.Option(None),
    timeframe: str | None = typer.Option(None),
) -> None:
    """Write series as Parquet under raw_data/<exchange>/<symbol>/<timeframe>.parquet."""
    state: CliState = ctx.obj
    store = open_store(state)
    root = DataRoot(state.home)
    for info in _selected(store, exchange, symbol, timeframe):
        path = root.raw_data(info.key.exchange, info.key.symbol) / f"{info.key.timeframe}.parquet"
        write_parquet(store.candles.load_candles(info.key), path)
        console.print(f"{info.key}: {info.rows:,} rows -> {path}")


@data_app.command("regimes")
def regimes_cmd(
    ctx: typer.Context,
    symbol: str = typer.Option(..., help="Symbol like BTC/USDT."),
    timeframe: str = typer.Option("1h"),
    exchange: str | None = typer.Option(None),
    periods: int = typer.Option(15, help="How many of the most recent regime periods to list."),
) -> None:
    """Share of time in each regime, and the regime periods, from the config's thresholds."""
    state: CliState = ctx.obj
    store = open_store(state)
    key = SeriesKey(exchange or state.config.data.default_exchange, symbol, timeframe)
    candles = store.candles.load_candles(key)
    if candles.empty:
        raise ValueError(f"no candles stored for {key}: run `redline data import` or `fetch` first")
    rules = state.config.regimes
    store.regimes.sync_regime_definitions(rules)
    labels = classify_regimes(candles, key.timeframe, rules)
    console.print(regime_share_table(key, labels))
    table = Table("regime", "from", "to", "bars", title=f"last {periods} regime periods")
    for period in regime_periods(candles["ts"].to_numpy(), labels)[-periods:]:
        table.add_row(
            period.regime, fmt_ts(period.start_ts), fmt_ts(period.end_ts), str(period.bars)
        )
    console.print(table)


def regime_share_table(key: SeriesKey, labels: np.ndarray) -> Table:
    shares = regime_shares(labels)
    table = Table("regime", "share of time", title=f"{key} regimes")
    for name in REGIMES:
        table.add_row(name, f"{shares.get(name, 0.0):.1%}")
    return table
