"""``redline backtest``: one strategy over a stored series, beside buy-and-hold and an SMA crossover.

Candles come from the store (the shipped sample is imported when the series is one of its and the
store lacks it). Signals and regimes are computed on every stored candle before ``--until``, so the
history before ``--since`` warms up the moving averages and the regime window without look-ahead;
the backtest and its metrics cover the ``[--since, --until)`` bars only. The numbers are
``market.backtest``'s: this module chooses positions, then writes and prints what it measured.

Writes ``DIR/report.json`` (inputs, metrics overall and per regime, for the strategy and both
baselines; NaN and infinities as null) and ``DIR/equity.png``, and prints two tables.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer
from rich.table import Table

from cli.data import parse_when
from cli.state import CliState, make_console, open_store
from market.backtest import DEFAULT_FEE_BPS, DEFAULT_SLIPPAGE_BPS, BacktestResult, backtest
from market.baselines import BASELINES, buy_and_hold, sma_cross
from market.metrics import METRICS
from market.regimes import NO_REGIME, REGIMES, RegimeRules, classify_regimes
from market.series import SeriesKey
from market.timeframes import TIMEFRAMES, bars_per_year
from store.db import Store
from store.ingest import ensure_sample, sample_files, series_for_file

log = logging.getLogger(__name__)
console = make_console()

STRATEGIES: tuple[str, ...] = ("sma_cross", "buy_and_hold")
#: The SMA crossover baseline is always the textbook 20/50, whatever ``--fast``/``--slow`` say, so a
#: tuned crossover is measured against a fixed reference.
BASELINE_FAST, BASELINE_SLOW = 20, 50
#: Report and table columns: the strategy, then the baselines in ``market.baselines`` order.
COLUMNS: tuple[str, ...] = ("strategy", *BASELINES)
HEADERS = {"strategy": "strategy", "buy_and_hold": "buy & hold", "sma_cross": "sma cross 20/50"}
INIT_CASH = 1.0

CONVENTION = (
    "The position decided at the close of bar t (from closes up to t) is held from that close to "
    "the close of bar t+1. Fee and slippage are both charged on the notional traded, "
    "(fee_bps + slippage_bps) / 10000 * |position_t - position_(t-1)| of the equity at close t. "
    "The backtest starts flat with init_cash at the close of the range's first bar; the last "
    "position is marked at the last close, not closed. Signals (moving averages) and regimes are "
    "computed on every stored candle before --until, so history before --since warms them up "
    "(nothing after a bar is used for it); metrics cover the range's bars only. Risk-free rate 0; "
    "annualized with the timeframe's bars per year (crypto trades around the clock). Per regime, "
    "each bar's return is attributed to the regime of the bar at which its position was decided, "
    "and trades to the regime of their entry bar (market.metrics); 'no_regime' holds the bars "
    "before the regime window first fills. See market/backtest.py and market/metrics.py."
)
NULL_MEANS = "null: undefined (NaN, e.g. no trades) or infinite (e.g. profit_factor without a loss)"


@dataclass(frozen=True)
class Strategy:
    """What ``--strategy``, ``--fast`` and ``--slow`` ask for."""

    name: str
    fast: int | None = None
    slow: int | None = None

    @property
    def label(self) -> str:
        return f"{self.name} {self.fast}/{self.slow}" if self.name == "sma_cross" else self.name

    def positions(self, candles: pd.DataFrame) -> np.ndarray:
        if self.name == "buy_and_hold":
            return buy_and_hold(candles)
        assert self.fast is not None and self.slow is not None  # checked by parse_strategy
        return sma_cross(candles, self.fast, self.slow)


def parse_strategy(name: str, fast: int, slow: int) -> Strategy:
    """The strategy of the flags, or a ValueError naming the flag and the value."""
    if name not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}; got {name!r}")
    if name == "buy_and_hold":
        return Strategy(name)
    for flag, value in (("--fast", fast), ("--slow", slow)):
        if value < 1:
            raise ValueError(f"{flag} must be a number of bars >= 1; got {value}")
    if fast >= slow:
        raise ValueError(f"--fast must be smaller than --slow; got --fast {fast}, --slow {slow}")
    return Strategy(name, fast, slow)


def check_costs(fee_bps: float, slippage_bps: float) -> None:
    for flag, value in (("--fee-bps", fee_bps), ("--slippage-bps", slippage_bps)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{flag} must be a finite number of basis points >= 0; got {value}")


def check_range(since_ms: int | None, until_ms: int | None) -> None:
    if since_ms is not None and until_ms is not None and since_ms >= until_ms:
        raise ValueError(
            f"--since must be before --until; got --since {utc(since_ms)} UTC ({since_ms}), "
            f"--until {utc(until_ms)} UTC ({until_ms})"
        )


def sample_keys() -> set[SeriesKey]:
    """The candle series the shipped sample holds."""
    return {
        series_for_file(path, exchange=None, symbol=None, timeframe=None) for path in sample_files()
    }


def load_history(store: Store, key: SeriesKey, until_ms: int | None) -> tuple[pd.DataFrame, bool]:
    """Every stored candle of ``key`` before ``until_ms``, and whether the sample was imported."""
    imported = False
    info = store.candles.series_info(key)
    if info is None or info.rows == 0:
        if key not in sample_keys():
            raise ValueError(
                f"no candles stored for {key} in {store.url_for_display}: run `redline data "
                f"import FILE` or `redline data fetch --symbol {key.symbol} --timeframe "
                f"{key.timeframe} --since ...` first (see `redline data list`)"
            )
        log.info("%s is not stored: importing the shipped sample", key)
        ensure_sample(store)
        imported = True
    return store.candles.load_candles(key, None, until_ms), imported


def utc(ts_ms: int | None) -> str | None:
    if ts_ms is None:
        return None
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class BacktestRun:
    """A backtest of the range: the candles, their regimes, and one result per column."""

    key: SeriesKey
    strategy: Strategy
    candles: pd.DataFrame  # the range's candles, RangeIndex
    regimes: np.ndarray  # one label per candle of the range
    results: dict[str, BacktestResult]  # keyed by COLUMNS
    since_ms: int | None
    until_ms: int | None
    warmup_bars: int  # stored candles before the range that fed signals and regimes
    fee_bps: float
    slippage_bps: float
    rules: RegimeRules


def run_backtest(
    history: pd.DataFrame,
    key: SeriesKey,
    strategy: Strategy,
    *,
    since_ms: int | None,
    until_ms: int | None,
    fee_bps: float = DEFAULT_FEE_BPS,
    slippage_bps: float = DEFAULT_SLIPPAGE_BPS,
    rules: RegimeRules | None = None,
) -> BacktestRun:
    """Positions and regimes on ``history`` (candles before ``until_ms``), backtested on the range."""
    rules = rules or RegimeRules()
    check_costs(fee_bps, slippage_bps)
    check_range(since_ms, until_ms)
    ts = history["ts"].to_numpy(dtype=np.int64)
    in_range = np.ones(len(ts), dtype=bool) if since_ms is None else ts >= since_ms
    if not in_range.any():
        stored = f"{utc(int(ts[0]))} to {utc(int(ts[-1]))} UTC" if len(ts) else "nothing"
        raise ValueError(
            f"no candles of {key} in the range --since {utc(since_ms) or 'the start'} to --until "
            f"{utc(until_ms) or 'the end'} (UTC); the store holds {stored} before --until"
        )
    positions = {
        "strategy": strategy.positions(history),
        "buy_and_hold": buy_and_hold(history),
        "sma_cross": sma_cross(history, BASELINE_FAST, BASELINE_SLOW),
    }
    labels = classify_regimes(history, key.timeframe, rules)
    candles = history[in_range].reset_index(drop=True)
    results = {
        column: backtest(
            candles,
            p[in_range],
            fee_bps=fee_bps,
            slippage_bps=slippage_bps,
            init_cash=INIT_CASH,
            timeframe=key.timeframe,
        )
        for column, p in positions.items()
    }
    return BacktestRun(
        key=key, strategy=strategy, candles=candles, regimes=labels[in_range], results=results,
        since_ms=since_ms, until_ms=until_ms, warmup_bars=int(np.argmax(in_range)),
        fee_bps=float(fee_bps), slippage_bps=float(slippage_bps), rules=rules,
    )  # fmt: skip


# -- report.json ----------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    """Plain JSON: non-finite floats become null (``NULL_MEANS``), numpy scalars Python ones."""
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def column_report(run: BacktestRun, column: str) -> dict[str, Any]:
    result = run.results[column]
    per = result.metrics_by_regime(run.regimes)
    labels = {
        "strategy": run.strategy.label,
        "buy_and_hold": "buy_and_hold",
        "sma_cross": f"sma_cross {BASELINE_FAST}/{BASELINE_SLOW}",
    }
    return {
        "label": labels[column],
        "metrics": result.metrics(),
        "by_regime": {name: per[name] for name in REGIMES},
        "no_regime": per.get(NO_REGIME),
    }


def report_dict(run: BacktestRun) -> dict[str, Any]:
    """What ``report.json`` holds (before NaN and infinities become null)."""
    ts = run.candles["ts"].to_numpy(dtype=np.int64)
    regime_bars = {name: int(np.sum(run.regimes == name)) for name in REGIMES}
    regime_bars["no_regime"] = int(np.sum(run.regimes == NO_REGIME))
    return {
        "inputs": {
            "series": {
                "exchange": run.key.exchange,
                "symbol": run.key.symbol,
                "timeframe": run.key.timeframe,
            },
            "strategy": asdict(run.strategy) | {"label": run.strategy.label},
            "baselines": {
                "buy_and_hold": {},
                "sma_cross": {"fast": BASELINE_FAST, "slow": BASELINE_SLOW},
            },
            "range": {
                "since": utc(run.since_ms),
                "until": utc(run.until_ms),
                "since_ms": run.since_ms,
                "until_ms": run.until_ms,
                "first_bar": utc(int(ts[0])),
                "last_bar": utc(int(ts[-1])),
                "first_ts": int(ts[0]),
                "last_ts": int(ts[-1]),
                "bars": len(ts),
                "warmup_bars": run.warmup_bars,
                "bars_per_year": bars_per_year(run.key.timeframe),
            },
            "fee_bps": run.fee_bps,
            "slippage_bps": run.slippage_bps,
            "init_cash": INIT_CASH,
            "regime_rules": asdict(run.rules),
            "convention": CONVENTION,
            "nulls": NULL_MEANS,
        },
        "regime_bars": regime_bars,
        "results": {column: column_report(run, column) for column in COLUMNS},
    }


def write_report(run: BacktestRun, path: Path) -> dict[str, Any]:
    """Write ``report.json`` (strict JSON: ``allow_nan=False``); returns what was written."""
    report = _json_value(report_dict(run))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    return report


# -- equity.png -----------------------------------------------------------------------------------

REGIME_COLORS = {
    "bull_trending": "#2ca02c",
    "bear_trending": "#d62728",
    "volatile_ranging": "#ff7f0e",
    "calm_ranging": "#7f7f7f",
}


def plot_equity(run: BacktestRun, path: Path) -> Path:
    """Equity (growth of 1) and drawdown of the strategy and buy-and-hold, regimes shaded."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import PercentFormatter

    figure = Figure(figsize=(11, 6.5), dpi=110)
    FigureCanvasAgg(figure)  # no pyplot: no global state, no display needed
    top, bottom = figure.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.2], "hspace": 0.08}
    )
    when = run.candles["ts"].to_numpy(dtype=np.int64).astype("datetime64[ms]")
    lines = [("strategy", run.strategy.label, "C0", 1.6), ("buy_and_hold", "buy & hold", "C3", 1.1)]
    if not np.array_equal(run.results["strategy"].positions, run.results["sma_cross"].positions):
        lines.append(("sma_cross", HEADERS["sma_cross"], "C2", 0.9))
    for column, label, color, width in lines:
        result = run.results[column]
        total = result.total_return
        top.plot(when, result.equity, color=color, lw=width, label=f"{label} ({total:+.1%})")
        bottom.plot(when, result.drawdown, color=color, lw=width)
    for name, color in REGIME_COLORS.items():
        # A run of bars a..b fills x[a]..x[b]; take in bar b + 1 too, or every change of regime
        # leaves a white sliver one bar wide.
        mask = run.regimes == name
        mask[1:] |= mask[:-1].copy()
        for axes in (top, bottom):
            axes.fill_between(
                when, 0, 1, where=mask, step="post", color=color, alpha=0.13, lw=0,
                transform=axes.get_xaxis_transform(),
            )  # fmt: skip
    top.axhline(INIT_CASH, color="black", lw=0.6, ls=":")
    top.set_ylabel(f"equity (starts at {INIT_CASH:g})")
    first, last = utc(int(run.candles["ts"].iloc[0])), utc(int(run.candles["ts"].iloc[-1]))
    costs = f"fee {run.fee_bps:g} bps, slippage {run.slippage_bps:g} bps"
    top.set_title(
        f"{run.key}: {run.strategy.label} vs buy & hold\n{first} to {last} UTC, {costs}, "
        "shaded by regime"
    )
    handles, _ = top.get_legend_handles_labels()
    handles += [
        Patch(color=c, alpha=0.3, label=n.replace("_", " ")) for n, c in REGIME_COLORS.items()
    ]
    top.legend(handles=handles, loc="upper left", fontsize="small", ncol=2, framealpha=0.9)
    bottom.set_ylabel("drawdown")
    bottom.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    locator = AutoDateLocator(tz=UTC)
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))
    bottom.set_xlabel("date (UTC)")
    bottom.set_xlim(when[0], when[-1])
    for axes in (top, bottom):
        axes.grid(alpha=0.3)
    figure.align_ylabels()
    figure.subplots_adjust(left=0.08, right=0.98, top=0.91, bottom=0.09)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


# -- the tables -----------------------------------------------------------------------------------


def _pct(value: float) -> str:
    return f"{value:+.2%}"


def _plain_pct(value: float) -> str:
    return f"{value:.1%}"


def _ratio(value: float) -> str:
    return f"{value:.2f}"


def _count(value: float) -> str:
    return f"{int(value):,}"


#: How each metric is labelled and printed, in ``METRICS`` order.
METRIC_ROWS: dict[str, tuple[str, Callable[[float], str]]] = {
    "bars": ("bars", _count),
    "total_return": ("total return", _pct),
    "annualized_return": ("annualized return", _pct),
    "volatility": ("volatility (annualized)", _plain_pct),
    "sharpe": ("Sharpe", _ratio),
    "sortino": ("Sortino", _ratio),
    "calmar": ("Calmar", _ratio),
    "max_drawdown": ("max drawdown", _pct),
    "max_drawdown_bars": ("longest drawdown (bars)", _count),
    "hit_rate": ("hit rate (bars in market)", _plain_pct),
    "win_rate": ("win rate (trades)", _plain_pct),
    "profit_factor": ("profit factor", _ratio),
    "expectancy": ("expectancy (per trade)", _pct),
    "trade_count": ("trades", _count),
    "exposure": ("exposure", _plain_pct),
    "time_in_market": ("time in market", _plain_pct),
    "turnover": ("turnover (equity per year)", lambda v: f"{v:.1f}x"),
}
assert tuple(METRIC_ROWS) == METRICS, "METRIC_ROWS must follow market.metrics.METRICS"


def fmt_metric(name: str, value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return METRIC_ROWS[name][1](value)


def metrics_table(run: BacktestRun) -> Table:
    first, last = utc(int(run.candles["ts"].iloc[0])), utc(int(run.candles["ts"].iloc[-1]))
    table = Table(
        "metric",
        *(HEADERS[c] + (f"\n{run.strategy.label}" if c == "strategy" else "") for c in COLUMNS),
        title=f"{run.key}, {first} to {last} UTC",
        caption=f"costs: fee {run.fee_bps:g} bps + slippage {run.slippage_bps:g} bps of the "
        "notional traded",
    )
    for column in table.columns[1:]:
        column.justify = "right"
    values = {column: run.results[column].metrics() for column in COLUMNS}
    for name, (label, _) in METRIC_ROWS.items():
        table.add_row(label, *(fmt_metric(name, values[column][name]) for column in COLUMNS))
    return table


def regime_table(run: BacktestRun) -> Table:
    per = {column: run.results[column].metrics_by_regime(run.regimes) for column in COLUMNS}
    headers = [f"{HEADERS[c]}\n{what}" for c in COLUMNS for what in ("Sharpe", "return")]
    table = Table(
        "regime", "bars", *headers, title="per regime (by the bar a position was decided)"
    )
    for column in table.columns[1:]:
        column.justify = "right"
    names = [*REGIMES, *([NO_REGIME] if NO_REGIME in per["strategy"] else [])]
    for name in names:
        cells = [
            fmt_metric(metric, per[column][name][metric])
            for column in COLUMNS
            for metric in ("sharpe", "total_return")
        ]
        bars = int(per["strategy"][name]["bars"])
        table.add_row(name or "no regime (warm-up)", f"{bars:,}", *cells)
    return table


# -- the command ----------------------------------------------------------------------------------


def backtest_cmd(
    ctx: typer.Context,
    symbol: str = typer.Option(..., help="Symbol like BTC/USDT."),
    timeframe: str = typer.Option("1h", help=f"One of {', '.join(TIMEFRAMES)}."),
    strategy: str = typer.Option(
        "sma_cross", help="sma_cross (long while SMA(fast) > SMA(slow), else flat) or buy_and_hold."
    ),
    fast: int = typer.Option(20, help="sma_cross: the fast moving average, in bars."),
    slow: int = typer.Option(50, help="sma_cross: the slow moving average, in bars."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for report.json and equity.png."),
    exchange: str | None = typer.Option(
        None, help="ccxt exchange id; default: data.default_exchange."
    ),
    since: str | None = typer.Option(
        None, help="First bar, e.g. 2023-01-01 (UTC) or ms; default: the first stored."
    ),
    until: str | None = typer.Option(
        None, help="End (exclusive), e.g. 2024-01-01; default: after the last stored."
    ),
    fee_bps: float = typer.Option(DEFAULT_FEE_BPS, help="Fee on the notional traded, in bps."),
    slippage_bps: float = typer.Option(DEFAULT_SLIPPAGE_BPS, help="Slippage, in bps, as a fee."),
) -> None:
    """Backtest a strategy on a stored series beside buy-and-hold and an SMA(20/50) crossover."""
    spec = parse_strategy(strategy, fast, slow)
    check_costs(fee_bps, slippage_bps)
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"--timeframe must be one of {', '.join(TIMEFRAMES)}; got {timeframe!r}")
    since_ms = parse_when(since, "--since") if since else None
    until_ms = parse_when(until, "--until") if until else None
    check_range(since_ms, until_ms)  # before the store: a bad range imports nothing
    state: CliState = ctx.obj
    key = SeriesKey(exchange or state.config.data.default_exchange, symbol, timeframe)
    store = open_store(state)
    history, imported = load_history(store, key, until_ms)
    if imported:
        console.print(
            f"{key} was not stored: imported the shipped sample into {store.url_for_display}"
        )
    run = run_backtest(
        history, key, spec, since_ms=since_ms, until_ms=until_ms, fee_bps=fee_bps,
        slippage_bps=slippage_bps, rules=state.config.regimes,
    )  # fmt: skip
    console.print(metrics_table(run))
    console.print(regime_table(run))
    report = write_report(run, out / "report.json")
    plot = plot_equity(run, out / "equity.png")
    bars = report["inputs"]["range"]["bars"]
    console.print(f"report: {out / 'report.json'} ({bars:,} bars)\nplot: {plot}")
