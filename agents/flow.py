"""Public trades turned into candles and per-bar whale-flow features, causally.

A trades file (``timestamp,price,amount,side``, one row per print; ``side`` is the taker's side,
so ``buy`` means a buyer lifted the offer) is bucketed into bars of a short timeframe (5m by
default). For each bar:

- a print is a *whale* print when its size is strictly above the ``quantile`` (0.95) of the sizes
  of the last ``window`` (1000) prints *before the bar opens*: the threshold never uses the bar's
  own prints or anything later. Until ``window`` prints have been seen the threshold, and every
  feature that needs it, is NaN (the warm-up the dataset builder drops);
- ``whale_share``: whale volume / bar volume; ``whale_count``: number of whale prints;
  ``whale_imbalance``: (whale buy volume - whale sell volume) / whale volume;
  ``imbalance``: (buy volume - sell volume) / bar volume, over every print. A bar without prints
  (or without whale prints, for ``whale_imbalance``) reads 0.

Everything at bar ``t`` is known at its close: computing on the trades before any bar boundary
gives exactly the first rows computed on all trades.

The trade files are short (days): the Kraken BTC/USDT file holds 5.4 days, 26,921 prints, which
give 1,545 5m bars (the first 43 before 1000 prints are behind them), the Binance XRP/ETH file
2.5 days, 712 bars. Enough to test whale detection and to train small whale-watcher models on,
not enough to judge them per market regime (the 7-day regime window is longer than the files, so
their bars carry no regime).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from market import features as ft
from market import kernels
from market.series import CANDLE_COLUMNS
from market.timeframes import timeframe_ms
from market.validation import validate_candles

logger = logging.getLogger(__name__)

__all__ = [
    "TRADE_COLUMNS",
    "FlowSpec",
    "read_trades",
    "trades_to_candles",
    "whale_features",
    "whale_flow",
    "whale_thresholds",
]

#: A trades frame: ts int64 ms, price and amount float64, side "buy" | "sell", in time order.
TRADE_COLUMNS: tuple[str, ...] = ("ts", "price", "amount", "side")
SIDES: tuple[str, ...] = ("buy", "sell")


def read_trades(path: str | Path) -> pd.DataFrame:
    """A trades file (gzip CSV ``timestamp,price,amount,side``) as a trades frame.

    Rows are sorted by time (stable: prints sharing a millisecond keep the file's order). A bad
    row raises ValueError naming the file, the row (0-based, as in the file), the field and value.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trades file not found: {path}")
    raw = pd.read_csv(path, low_memory=False)
    raw = raw.rename(columns={"timestamp": "ts"})
    missing = [name for name in TRADE_COLUMNS if name not in raw.columns]
    if missing:
        raise ValueError(
            f"{path}: trades files need columns timestamp, price, amount, side; "
            f"missing {', '.join(missing)}; the file's columns: {', '.join(map(str, raw.columns))}"
        )
    out = pd.DataFrame(
        {
            "ts": pd.to_numeric(raw["ts"], errors="coerce"),
            "price": pd.to_numeric(raw["price"], errors="coerce"),
            "amount": pd.to_numeric(raw["amount"], errors="coerce"),
            "side": raw["side"].astype(str).str.strip().str.lower(),
        }
    )
    checks = (
        ("timestamp", "integer ms", raw["ts"], out["ts"].notna() & (out["ts"] % 1 == 0)),
        ("price", "a positive number", raw["price"], out["price"].gt(0) & np.isfinite(out["price"])),
        ("amount", "a positive number", raw["amount"],
         out["amount"].gt(0) & np.isfinite(out["amount"])),
        ("side", "'buy' or 'sell'", raw["side"], out["side"].isin(SIDES)),
    )  # fmt: skip
    for field, rule, values, ok in checks:
        bad = np.flatnonzero(~ok.to_numpy(dtype=bool))
        if len(bad):
            row = int(bad[0])
            raise ValueError(
                f"{path}: row {row}: {field} must be {rule}; got {values.iloc[row]!r}"
                + (f" ({len(bad)} bad rows in all)" if len(bad) > 1 else "")
            )
    out["ts"] = out["ts"].astype(np.int64)
    out = out.sort_values("ts", kind="stable").reset_index(drop=True)
    logger.debug("read %d trades from %s", len(out), path)
    return out


def _bars(trades: pd.DataFrame, timeframe: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(grid of bar open times, bar index of every trade, timeframe ms)."""
    if trades.empty:
        raise ValueError("trades must hold at least one trade; got an empty frame")
    tf = timeframe_ms(timeframe)
    ts = trades["ts"].to_numpy(dtype=np.int64)
    if np.any(np.diff(ts) < 0):
        raise ValueError("trades must be sorted by ts (read them with read_trades)")
    opens = ts - ts % tf
    grid = np.arange(opens[0], opens[-1] + tf, tf, dtype=np.int64)
    return grid, (opens - grid[0]) // tf, tf


def trades_to_candles(trades: pd.DataFrame, timeframe: str = "5m") -> pd.DataFrame:
    """Candles built from the prints: open/high/low/close of their prices, volume their amounts.

    The grid runs from the first print's bar to the last print's bar. A bar without prints is a
    flat candle at the previous close with zero volume (as exchanges report a quiet interval), so
    rows are evenly spaced in time and a lookback or horizon in bars is a duration.
    """
    grid, bar, _ = _bars(trades, timeframe)
    n = len(grid)
    price = trades["price"].to_numpy(dtype=np.float64)
    amount = trades["amount"].to_numpy(dtype=np.float64)
    # Trades are in time order, so each bar's prints are one contiguous run of rows.
    first = np.searchsorted(bar, np.arange(n), side="left")
    last = np.searchsorted(bar, np.arange(n), side="right") - 1
    has = last >= first
    high = np.full(n, -np.inf)
    low = np.full(n, np.inf)
    np.maximum.at(high, bar, price)
    np.minimum.at(low, bar, price)
    volume = np.bincount(bar, weights=amount, minlength=n)
    close = pd.Series(np.where(has, price[np.clip(last, 0, None)], np.nan)).ffill().to_numpy()
    frame = pd.DataFrame(
        {
            "ts": grid,
            "open": np.where(has, price[np.clip(first, 0, len(price) - 1)], close),
            "high": np.where(has, high, close),
            "low": np.where(has, low, close),
            "close": close,
            "volume": volume,
        }
    )
    return validate_candles(frame[list(CANDLE_COLUMNS)], timeframe)


@dataclass(frozen=True)
class FlowSpec:
    """How whale prints are told apart: above the ``quantile`` of the last ``window`` sizes."""

    quantile: float = 0.95
    window: int = 1000

    def __post_init__(self) -> None:
        if not (isinstance(self.quantile, int | float) and 0.0 < self.quantile < 1.0):
            raise ValueError(f"flow.quantile must be in (0, 1); got {self.quantile!r}")
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 10:
            raise ValueError(f"flow.window must be an integer >= 10 (trades); got {self.window!r}")


def whale_thresholds(trades: pd.DataFrame, bar_open: np.ndarray, spec: FlowSpec) -> np.ndarray:
    """Per bar, the size quantile of the ``spec.window`` prints strictly before the bar opens."""
    ts = trades["ts"].to_numpy(dtype=np.int64)
    amount = trades["amount"].to_numpy(dtype=np.float64)
    before = np.searchsorted(ts, bar_open, side="left")  # prints with ts < bar open
    out = np.full(len(bar_open), np.nan)
    for i, j in enumerate(before):
        if j >= spec.window:
            out[i] = np.quantile(amount[j - spec.window : j], spec.quantile)
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (an empty bar has no imbalance), NaN kept from num."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(np.isnan(num), num, 0))


def whale_flow(
    trades: pd.DataFrame, timeframe: str = "5m", spec: FlowSpec | None = None
) -> pd.DataFrame:
    """Per bar of :func:`trades_to_candles`' grid: the flow of all prints and of whale prints.

    Columns: ``ts, n_trades, volume, buy_volume, sell_volume, imbalance, whale_threshold,
    whale_count, whale_volume, whale_buy_volume, whale_sell_volume, whale_share,
    whale_imbalance`` (see the module doc). Whale columns are NaN while the threshold is.
    """
    spec = spec or FlowSpec()
    grid, bar, _ = _bars(trades, timeframe)
    n = len(grid)
    amount = trades["amount"].to_numpy(dtype=np.float64)
    buy = trades["side"].to_numpy() == "buy"
    threshold = whale_thresholds(trades, grid, spec)
    trade_threshold = threshold[bar]
    whale = amount > trade_threshold  # False where the threshold is NaN

    def per_bar(weights: np.ndarray) -> np.ndarray:
        return np.bincount(bar, weights=weights, minlength=n).astype(np.float64)

    volume = per_bar(amount)
    buy_volume = per_bar(np.where(buy, amount, 0.0))
    sell_volume = volume - buy_volume
    warm = np.isnan(threshold)
    whale_volume = np.where(warm, np.nan, per_bar(np.where(whale, amount, 0.0)))
    whale_buy = np.where(warm, np.nan, per_bar(np.where(whale & buy, amount, 0.0)))
    whale_sell = whale_volume - whale_buy
    return pd.DataFrame(
        {
            "ts": grid,
            "n_trades": per_bar(np.ones(len(bar))),
            "volume": volume,
            "buy_volume": buy_volume,
            "sell_volume": sell_volume,
            "imbalance": _ratio(buy_volume - sell_volume, volume),
            "whale_threshold": threshold,
            "whale_count": np.where(warm, np.nan, per_bar(whale.astype(np.float64))),
            "whale_volume": whale_volume,
            "whale_buy_volume": whale_buy,
            "whale_sell_volume": whale_sell,
            "whale_share": _ratio(whale_volume, volume),
            "whale_imbalance": _ratio(whale_buy - whale_sell, whale_volume),
        }
    )


#: Bars over which the net flows of whale_features are summed.
FLOW_BARS: tuple[int, ...] = (6, 12)


def whale_features(
    trades: pd.DataFrame, timeframe: str = "5m", spec: FlowSpec | None = None
) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(candles, flow features, price features) per bar, the whale watcher's inputs.

    Flow: ``whale_share``, ``whale_count_log1p``, ``whale_imbalance``, ``imbalance``,
    ``n_trades_log1p``, and over k in FLOW_BARS ``net_flow_<k>`` ((buy - sell) / volume of the
    last k bars) and ``whale_net_flow_<k>`` (the same for whale prints, over all volume). Price:
    ``logret_1``, ``logret_<k>``, ``rv_12`` (realized volatility), ``relvol_12`` (log1p of volume
    over its 12-bar mean). NaN during the warm-up.
    """
    candles = trades_to_candles(trades, timeframe)
    flow = whale_flow(trades, timeframe, spec)
    close, volume = candles["close"], candles["volume"]
    v = volume.to_numpy(dtype=np.float64)
    out: dict[str, np.ndarray] = {
        "whale_share": flow["whale_share"].to_numpy(),
        "whale_count_log1p": np.log1p(flow["whale_count"].to_numpy()),
        "whale_imbalance": flow["whale_imbalance"].to_numpy(),
        "imbalance": flow["imbalance"].to_numpy(),
        "n_trades_log1p": np.log1p(flow["n_trades"].to_numpy()),
    }
    net = (flow["buy_volume"] - flow["sell_volume"]).to_numpy()
    whale_net = (flow["whale_buy_volume"] - flow["whale_sell_volume"]).to_numpy()
    for k in FLOW_BARS:
        volume_sum = kernels.rolling_sum(v, k)
        out[f"net_flow_{k}"] = _ratio(kernels.rolling_sum(net, k), volume_sum)
        out[f"whale_net_flow_{k}"] = _ratio(kernels.rolling_sum(whale_net, k), volume_sum)
    price = {f"logret_{k}": ft.log_returns(close, k).to_numpy() for k in (1, *FLOW_BARS)}
    price["rv_12"] = ft.realized_volatility(close, 12).to_numpy()
    price["relvol_12"] = np.log1p(_ratio(v, ft.sma(volume, 12).to_numpy()))
    return candles, out, price
