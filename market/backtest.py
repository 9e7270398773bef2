"""Backtests of position series over candles: one series with its trades, or a grid in one call.

Convention (kept by every function here, by ``market.metrics`` and by the vectorbt oracle):

- ``positions[t]`` in [-1, 1] is the fraction of equity held long (> 0) or short (< 0), decided
  from data up to the close of bar t and held from that close to the close of bar t + 1. The
  position before the first bar is 0 (flat, all cash).
- Changing the position at bar t costs ``cost_t = k * |positions[t] - positions[t-1]|`` of the
  equity at that close, with ``k = (fee_bps + slippage_bps) / 10_000`` (default 10 bps fee, no
  slippage): fee and slippage are both charged on the notional traded.
- Returns are simple and the equity compounds multiplicatively (``r_t = close_t / close_{t-1} - 1``,
  ``r_0 = 0``)::

      equity_t = equity_{t-1} * (1 + positions[t-1] * r_t) * (1 - cost_t),   equity_{-1} = init_cash

  i.e. the bar's PnL first (the position held since the previous close), then the trade at the
  close: its cost is charged on the equity at that close, and the new position is
  ``positions[t]`` of what remains. The bar return is ``returns_t = equity_t / equity_{t-1} - 1``.
  A fractional position is a constant fraction of equity (rebalanced at no cost while unchanged),
  so only a *change* of the position costs anything. The written-out form ``1 + p * r - cost``
  differs from this by the cross term ``p * r * cost``: that form charges the cost on the previous
  close's equity instead of the notional actually traded, and no order-based simulator (vectorbt
  included) reproduces it.
- The last position is not closed at the end: the final equity is marked at the last close.
- ``drawdown_t = equity_t / max(init_cash, equity_0..equity_t) - 1`` (<= 0).

Trades: a trade is a maximal run of bars with non-zero positions of the same sign. It is entered at
the close of its first bar and exited at the close of the bar where the position returns to zero or
changes sign (a sign flip closes one trade and opens the next at the same close, the cost split in
proportion: ``k * |old|`` closes, ``k * |new|`` opens). Fractional changes inside a run scale the
same trade in or out: their costs and PnL belong to it, and ``size`` reports the largest
``|position|`` of the run. A trade's PnL is the equity it ends with minus the equity it started
with (after the previous trade's closing cost, before its own opening cost), so the PnLs of all
trades add up to ``equity[-1] - init_cash`` exactly. The trade still open at the last bar is marked
there (``is_open``).

vectorbt mapping (the oracle, see ``vectorbt_orders``): ``Portfolio.from_orders`` with
``size_type='targetpercent'`` rebalances to the target every bar and charges fees on the notional of
every order, drifted weights included, and refuses to buy beyond the cash it holds. Its plain use is
therefore exact only without costs. With costs each bar becomes three orders at the same close:
rebalance to ``positions[t-1]`` (fee 0: the drift), trade to ``positions[t]`` (fee ``k``), rebalance
to ``positions[t]`` of the post-fee equity (fee 0); a second column of constant price 1 in the same
cash-sharing group holds a short of -100% of equity, a cash buffer that lets fees be paid at a 100%
long position. vectorbt's own ``slippage`` moves the fill price, and its fee is then charged on the
slipped notional (``s + f * (1 +/- s)``), so fee and slippage are passed together as its fee.
The two agree to ~1e-11 relative on real series (tests/market/test_oracle_vectorbt.py). vectorbt
keeps cash as a running sum, so its own rounding is ~1e-16 of the largest equity it has held: on a
series that loses 1e5-fold from a peak, vectorbt (not this module) drifts past 1e-9.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from market.metrics import (
    METRICS,
    TradeOutcomes,
    compute_metrics,
    metrics_by_regime,
    regime_labels,
)
from market.timeframes import TIMEFRAMES, bars_per_year, timeframe_ms

logger = logging.getLogger(__name__)

DEFAULT_FEE_BPS = 10.0
DEFAULT_SLIPPAGE_BPS = 0.0
TRADE_COLUMNS: tuple[str, ...] = (
    "entry_idx", "exit_idx", "entry_ts", "entry_price", "exit_ts", "exit_price",
    "side", "size", "bars", "pnl", "return", "fees", "is_open",
)  # fmt: skip
"""Columns of ``BacktestResult.trades``; ``side`` is +1 long / -1 short, ``pnl`` and ``fees`` in
equity units, ``return`` = pnl / equity at entry, ``bars`` = bars with the position held."""

# Temporaries are processed in blocks of about 1 MiB so they stay in cache: the grid then streams
# positions in and equity out once, instead of a dozen passes over 150 MB arrays.
_BLOCK_ELEMS = 1 << 17
_METRIC_BLOCK_ELEMS = 1 << 20
_VBT_CASH = 1e9


def cost_rate(fee_bps: float, slippage_bps: float) -> float:
    """The fraction of traded notional charged: ``(fee_bps + slippage_bps) / 10_000``."""
    for name, value in (("fee_bps", fee_bps), ("slippage_bps", slippage_bps)):
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    return (float(fee_bps) + float(slippage_bps)) / 10_000.0


def _check_cash(init_cash: float) -> float:
    if not isinstance(init_cash, int | float) or not math.isfinite(init_cash) or init_cash <= 0:
        raise ValueError(f"init_cash must be a finite number > 0; got {init_cash!r}")
    return float(init_cash)


def infer_timeframe(ts: np.ndarray) -> str:
    """The timeframe whose length is the typical spacing of ``ts`` (ms); gaps do not matter."""
    if ts.size < 2:
        raise ValueError(f"cannot infer the timeframe from {ts.size} bar(s); pass timeframe=")
    step = int(np.median(np.diff(ts)))
    for name in TIMEFRAMES:
        if timeframe_ms(name) == step:
            return name
    raise ValueError(f"candles are {step} ms apart, which is no known timeframe; pass timeframe=")


def candle_arrays(
    candles: pd.DataFrame | np.ndarray, *, need_ts: bool
) -> tuple[np.ndarray | None, np.ndarray]:
    """``(ts or None, close)`` from a candle frame (or a bare close array), checked."""
    ts: np.ndarray | None = None
    if isinstance(candles, pd.DataFrame):
        missing = [c for c in (("ts", "close") if need_ts else ("close",)) if c not in candles]
        if missing:
            raise ValueError(
                f"candles must have columns {missing}; got columns {list(candles.columns)}"
            )
        close = candles["close"].to_numpy(dtype=np.float64)
        if "ts" in candles:
            ts = candles["ts"].to_numpy(dtype=np.int64)
    else:
        if need_ts:
            raise ValueError("candles must be a candle frame with 'ts' and 'close' columns")
        close = np.asarray(candles, dtype=np.float64)
        if close.ndim != 1:
            raise ValueError(f"close must be 1-D; got shape {close.shape}")
    if close.size == 0:
        raise ValueError("candles is empty: a backtest needs at least one bar")
    if ts is not None:
        bad = np.flatnonzero(np.diff(ts) <= 0)
        if bad.size:
            i = int(bad[0]) + 1
            raise ValueError(
                f"candles must be sorted by ts without duplicates: row {i} ts={ts[i]} does not "
                f"come after row {i - 1} ts={ts[i - 1]}"
            )
    bad = np.flatnonzero(~(np.isfinite(close) & (close > 0)))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"candles.close must be finite and > 0: row {i} close={float(close[i])}")
    return ts, close


def _check_positions(p: np.ndarray, where: str) -> None:
    """NaN and out-of-range checks on a (n_configs, n_bars) array, naming the first offender."""
    lo, hi = (float(p.min()), float(p.max())) if p.size else (0.0, 0.0)
    if math.isnan(lo) or math.isnan(hi):
        cfg, bar = np.unravel_index(int(np.argmax(np.isnan(p))), p.shape)
        raise ValueError(f"positions must not be NaN; {where.format(cfg=cfg, bar=bar)} is NaN")
    if lo < -1.0 or hi > 1.0:
        cfg, bar = np.unravel_index(int(np.argmax(np.abs(p) > 1.0)), p.shape)
        raise ValueError(
            f"positions must lie in [-1, 1]; {where.format(cfg=cfg, bar=bar)} is {float(p[cfg, bar])}"
        )


def _grid_positions(positions: Any, n_bars: int, bars_axis: int | None) -> np.ndarray:
    """Positions as a (n_configs, n_bars) float64 array (a transposed view for bars-first input)."""
    p = np.asarray(positions, dtype=np.float64)
    if p.ndim == 1:
        p = p[None, :]
    if p.ndim != 2:
        raise ValueError(f"positions must be 2-D (configs x bars); got shape {p.shape}")
    axes = [ax for ax in (0, 1) if p.shape[ax] == n_bars]
    if bars_axis is None:
        if not axes:
            raise ValueError(
                f"positions has shape {p.shape} but candles has {n_bars} rows: no axis matches"
            )
        if len(axes) == 2:
            raise ValueError(
                f"positions is {p.shape}, both axes match {n_bars} bars; pass bars_axis"
            )
        bars_axis = axes[0]
    elif bars_axis not in (0, 1) or p.shape[bars_axis] != n_bars:
        raise ValueError(
            f"positions axis {bars_axis} must hold the {n_bars} bars; got shape {p.shape}"
        )
    grid = p if bars_axis == 1 else p.T
    _check_positions(grid, "config {cfg}, bar {bar}")
    return grid


def bar_returns(close: np.ndarray) -> np.ndarray:
    """``r_t = close_t / close_{t-1} - 1`` with ``r_0 = 0``."""
    r = np.zeros_like(close)
    np.divide(close[1:], close[:-1], out=r[1:])
    r[1:] -= 1.0
    return r


def _equity_config_rows(p: np.ndarray, r: np.ndarray, k: float, cash: float) -> np.ndarray:
    """Equity for C-contiguous (n_configs, n_bars) positions, a few configs per block."""
    n_configs, n_bars = p.shape
    out = np.empty_like(p)
    step = max(1, _BLOCK_ELEMS // n_bars)
    tmp = np.empty((min(step, n_configs), n_bars))
    for a in range(0, n_configs, step):
        pb, ob, tb = p[a : a + step], out[a : a + step], tmp[: min(step, n_configs - a)]
        np.subtract(pb[:, 1:], pb[:, :-1], out=tb[:, 1:])
        tb[:, 0] = pb[:, 0]
        np.abs(tb, out=tb)
        tb *= -k
        tb += 1.0  # 1 - cost_t
        np.multiply(pb[:, :-1], r[1:], out=ob[:, 1:])
        ob[:, 1:] += 1.0  # 1 + p_{t-1} r_t
        ob[:, 0] = cash  # the first bar has no return yet; start the product at the cash
        ob *= tb
        np.multiply.accumulate(ob, axis=1, out=ob)
    return out


def _equity_bar_rows(pt: np.ndarray, r: np.ndarray, k: float, cash: float) -> np.ndarray:
    """Equity for C-contiguous (n_bars, n_configs) positions, a block of bars at a time."""
    n_bars, n_configs = pt.shape
    out = np.empty_like(pt)
    step = max(1, _BLOCK_ELEMS // n_configs)
    tmp = np.empty((min(step, n_bars), n_configs))
    prev = np.zeros(n_configs)
    carry = np.full(n_configs, cash)
    for a in range(0, n_bars, step):
        pb, ob, tb = pt[a : a + step], out[a : a + step], tmp[: min(step, n_bars - a)]
        np.subtract(pb[1:], pb[:-1], out=tb[1:])
        np.subtract(pb[0], prev, out=tb[0])
        np.abs(tb, out=tb)
        tb *= -k
        tb += 1.0
        np.multiply(pb[:-1], r[a + 1 : a + len(pb), None], out=ob[1:])
        np.multiply(prev, r[a], out=ob[0])
        ob += 1.0
        ob *= tb
        ob[0] *= carry
        np.multiply.accumulate(ob, axis=0, out=ob)
        carry, prev = ob[-1], pb[-1]
    return out


def equity_curves(close: np.ndarray, positions: np.ndarray, k: float, cash: float) -> np.ndarray:
    """Equity (n_configs, n_bars) of checked (n_configs, n_bars) positions: the grid's hot path.

    ``k`` is ``cost_rate(...)``. Either memory layout is used as it is (bars-first input arrives as
    the transposed view of a C array), so no copy of the positions is made.
    """
    r = bar_returns(close)
    if positions.flags.c_contiguous:
        return _equity_config_rows(positions, r, k, cash)
    if positions.T.flags.c_contiguous:
        return _equity_bar_rows(positions.T, r, k, cash).T
    return _equity_config_rows(np.ascontiguousarray(positions), r, k, cash)


def _factors(
    p: np.ndarray, r: np.ndarray, k: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per bar: position held into the close, ``1 + p_{t-1} r_t``, ``1 - cost_t``, ``|dp_t|``."""
    held = np.zeros_like(p)
    held[:, 1:] = p[:, :-1]
    traded = np.abs(p - held)
    return held, 1.0 + held * r, 1.0 - k * traded, traded


@dataclass(frozen=True)
class _Spans:
    """Trades of a (n_configs, n_bars) grid: starts and ends of same-sign non-zero runs."""

    config: np.ndarray
    entry_idx: np.ndarray
    exit_idx: np.ndarray  # bar whose close exits; the last bar for open trades
    side: np.ndarray
    is_open: np.ndarray


def _trade_spans(p: np.ndarray) -> _Spans:
    n_bars = p.shape[1]
    sign = np.sign(p).astype(np.int8)
    prev = np.zeros_like(sign)
    prev[:, 1:] = sign[:, :-1]
    change = sign != prev
    config, entry = np.nonzero(change & (sign != 0))
    # An extra column past the data ends the runs still open, so both nonzero() calls list the
    # trades of each config in time order and the k-th start pairs with the k-th end.
    ends = np.zeros((p.shape[0], n_bars + 1), dtype=bool)
    ends[:, :n_bars] = change & (prev != 0)
    ends[:, n_bars] = sign[:, -1] != 0
    _, exit_ = np.nonzero(ends)
    return _Spans(
        config=config.astype(np.int64),
        entry_idx=entry.astype(np.int64),
        exit_idx=np.minimum(exit_, n_bars - 1).astype(np.int64),
        side=sign[config, entry],
        is_open=exit_ == n_bars,
    )


def _trade_values(
    spans: _Spans, equity: np.ndarray, p: np.ndarray, r: np.ndarray, k: float, cash: float
) -> tuple[np.ndarray, np.ndarray]:
    """Equity each trade starts and ends with (see the module docstring), gathered at its ends."""

    def before_trade(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Equity at close t before its trade, and the position held into that close.
        cfg, t_1 = spans.config, np.maximum(t - 1, 0)
        held = np.where(t > 0, p[cfg, t_1], 0.0)
        return np.where(t > 0, equity[cfg, t_1], cash) * (1.0 + held * r[t]), held

    pre_entry, held_entry = before_trade(spans.entry_idx)
    pre_exit, held_exit = before_trade(spans.exit_idx)
    end = np.where(
        spans.is_open, equity[spans.config, spans.exit_idx], pre_exit * (1 - k * np.abs(held_exit))
    )
    return pre_entry * (1.0 - k * np.abs(held_entry)), end


def _squeeze(values: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: v[0].item() for name, v in values.items()}


@dataclass(frozen=True)
class BacktestResult:
    """One position series backtested: per-bar arrays (length n_bars) and the trades."""

    ts: np.ndarray
    close: np.ndarray
    positions: np.ndarray
    returns: np.ndarray
    equity: np.ndarray
    drawdown: np.ndarray
    costs: np.ndarray  # cost paid at each bar, in equity units
    trades: pd.DataFrame  # TRADE_COLUMNS
    init_cash: float
    fee_bps: float
    slippage_bps: float
    timeframe: str | None

    @property
    def total_return(self) -> float:
        return float(self.equity[-1] / self.init_cash - 1.0)

    def _grid(self) -> BacktestGrid:
        return BacktestGrid(
            ts=self.ts, close=self.close, positions=self.positions[None, :],
            equity=self.equity[None, :], init_cash=self.init_cash, fee_bps=self.fee_bps,
            slippage_bps=self.slippage_bps, timeframe=self.timeframe,
        )  # fmt: skip

    def metrics(self) -> dict[str, float]:
        """Every ``market.metrics.METRICS`` value of this backtest."""
        return _squeeze(self._grid().metrics)

    def metrics_by_regime(self, regimes: np.ndarray) -> dict[str, dict[str, float]]:
        """Metrics per regime (bars grouped by the regime where the position was decided)."""
        per = self._grid().metrics_by_regime(regimes)
        return {name: _squeeze(values) for name, values in per.items()}


@dataclass(frozen=True)
class BacktestGrid:
    """Many position series over the same candles: equity (n_configs, n_bars) and metrics."""

    ts: np.ndarray | None
    close: np.ndarray
    positions: np.ndarray  # (n_configs, n_bars), possibly a transposed view of the input
    equity: np.ndarray  # (n_configs, n_bars), same memory layout as positions
    init_cash: float
    fee_bps: float
    slippage_bps: float
    timeframe: str | None

    @property
    def total_return(self) -> np.ndarray:
        return self.equity[:, -1] / self.init_cash - 1.0

    @property
    def _k(self) -> float:
        return cost_rate(self.fee_bps, self.slippage_bps)

    def _bars_per_year(self) -> float:
        if self.timeframe is None:
            raise ValueError("metrics need the timeframe: pass timeframe= or candles with ts")
        return bars_per_year(self.timeframe)

    def _blocks(self) -> list[slice]:
        # Metrics need a dozen temporaries per bar; a block of configs keeps them small instead of
        # allocating (and page-faulting) full-grid arrays for each.
        n_configs, n_bars = self.positions.shape
        step = max(1, _METRIC_BLOCK_ELEMS // max(n_bars, 1))
        return [slice(a, min(a + step, n_configs)) for a in range(0, n_configs, step)]

    def _block(self, rows: slice) -> tuple[np.ndarray, ...]:
        """(positions, held, hold factor, cost factor, traded) of a block of configs."""
        p = np.ascontiguousarray(self.positions[rows])
        held, hold, keep, traded = _factors(p, bar_returns(self.close), self._k)
        return p, held, hold, keep, traded

    @cached_property
    def trade_outcomes(self) -> TradeOutcomes:
        """Config, PnL, return and entry bar of every trade of every config, sorted by config."""
        r, parts = bar_returns(self.close), []
        for rows in self._blocks():
            p = np.ascontiguousarray(self.positions[rows])
            spans = _trade_spans(p)
            start, end = _trade_values(spans, self.equity[rows], p, r, self._k, self.init_cash)
            parts.append(
                (spans.config + rows.start, end - start, (end - start) / start, spans.entry_idx)
            )
        return TradeOutcomes(*(np.concatenate(arrays) for arrays in zip(*parts, strict=True)))

    def _trades_of(self, rows: slice) -> TradeOutcomes:
        trades = self.trade_outcomes
        lo, hi = np.searchsorted(trades.config, [rows.start, rows.stop])
        return TradeOutcomes(
            trades.config[lo:hi] - rows.start,
            trades.pnl[lo:hi],
            trades.ret[lo:hi],
            trades.entry_idx[lo:hi],
        )

    @cached_property
    def metrics(self) -> dict[str, np.ndarray]:
        """Every ``market.metrics.METRICS`` value per config (arrays of length n_configs)."""
        bpy = self._bars_per_year()
        parts = []
        for rows in self._blocks():
            _, held, hold, keep, traded = self._block(rows)
            parts.append(
                compute_metrics(
                    hold * keep - 1.0,
                    held,
                    traded,
                    self._trades_of(rows),
                    bars_per_year=bpy,
                    growth=self.equity[rows] / self.init_cash,
                )
            )
        return {name: np.concatenate([part[name] for part in parts]) for name in METRICS}

    def metrics_by_regime(self, regimes: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        """``{regime: {metric: per-config values}}``; see ``market.metrics.metrics_by_regime``."""
        bpy = self._bars_per_year()
        labels = regime_labels(regimes, self.positions.shape[1])
        parts = []
        for rows in self._blocks():
            p, _, hold, keep, traded = self._block(rows)
            # The decision at bar d: pay its cost at close d, then hold it over bar d + 1.
            keep[:, :-1] *= hold[:, 1:]
            keep -= 1.0
            parts.append(
                metrics_by_regime(keep, p, traded, self._trades_of(rows), labels, bars_per_year=bpy)
            )
        return {
            regime: {
                name: np.concatenate([part[regime][name] for part in parts]) for name in METRICS
            }
            for regime in parts[0]
        }


def backtest(
    candles: pd.DataFrame,
    positions: Any,
    *,
    fee_bps: float = DEFAULT_FEE_BPS,
    slippage_bps: float = DEFAULT_SLIPPAGE_BPS,
    init_cash: float = 1.0,
    timeframe: str | None = None,
) -> BacktestResult:
    """Backtest one position series (one value per candle) under the module's convention."""
    k = cost_rate(fee_bps, slippage_bps)
    cash = _check_cash(init_cash)
    ts, close = candle_arrays(candles, need_ts=True)
    assert ts is not None
    p = np.asarray(positions, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"positions must be 1-D (one per candle); got shape {p.shape}")
    if p.shape[0] != close.shape[0]:
        raise ValueError(f"positions has {p.shape[0]} values but candles has {close.shape[0]} rows")
    _check_positions(p[None, :], "position {bar}")
    if timeframe is not None:
        timeframe_ms(timeframe)  # raises naming the valid timeframes
    elif ts.size > 1:
        timeframe = infer_timeframe(ts)
    r = bar_returns(close)
    _, hold, keep, _ = _factors(p[None, :], r, k)
    factors = (hold * keep)[0]
    equity = equity_curves(close, p[None, :], k, cash)[0]  # the grid's arithmetic, bit for bit
    pre_trade = np.concatenate(([cash], equity[:-1])) * hold[0]
    costs = pre_trade * (1.0 - keep[0])
    peak = np.maximum.accumulate(np.maximum(equity, cash))
    trades = _trades_frame(ts, close, p, equity, pre_trade, costs, r, k, cash)
    return BacktestResult(
        ts=ts, close=close, positions=p, returns=factors - 1.0, equity=equity,
        drawdown=equity / peak - 1.0, costs=costs, trades=trades, init_cash=cash,
        fee_bps=float(fee_bps), slippage_bps=float(slippage_bps), timeframe=timeframe,
    )  # fmt: skip


def _trades_frame(
    ts: np.ndarray,
    close: np.ndarray,
    p: np.ndarray,
    equity: np.ndarray,
    pre_trade: np.ndarray,
    costs: np.ndarray,
    r: np.ndarray,
    k: float,
    cash: float,
) -> pd.DataFrame:
    spans = _trade_spans(p[None, :])
    start, end = _trade_values(spans, equity[None, :], p[None, :], r, k, cash)
    n_trades = spans.entry_idx.size
    # Costs per trade: at a sign flip the closing part k|old| goes to the old trade.
    trade_id = np.cumsum(np.isin(np.arange(p.size), spans.entry_idx)) - 1
    trade_id = np.where(p != 0, trade_id, -1)
    prev_id = np.concatenate(([-1], trade_id[:-1]))
    prev_p = np.concatenate(([0.0], p[:-1]))
    flip = trade_id != prev_id
    closing = np.where(flip & (prev_id >= 0), pre_trade * k * np.abs(prev_p), 0.0)
    opening = costs - closing
    fees = np.bincount(prev_id[prev_id >= 0], closing[prev_id >= 0], minlength=n_trades)
    fees = fees.astype(np.float64)  # an empty bincount is int64
    fees += np.bincount(trade_id[trade_id >= 0], opening[trade_id >= 0], minlength=n_trades)
    size = np.maximum.reduceat(np.abs(p), spans.entry_idx) if n_trades else np.zeros(0)
    bars = np.where(spans.is_open, p.size, spans.exit_idx) - spans.entry_idx
    return pd.DataFrame(
        {
            "entry_idx": spans.entry_idx, "exit_idx": spans.exit_idx,
            "entry_ts": ts[spans.entry_idx], "entry_price": close[spans.entry_idx],
            "exit_ts": ts[spans.exit_idx], "exit_price": close[spans.exit_idx],
            "side": spans.side.astype(np.int64), "size": size, "bars": bars,
            "pnl": end - start, "return": (end - start) / start, "fees": fees,
            "is_open": spans.is_open,
        },
        columns=list(TRADE_COLUMNS),
    )  # fmt: skip


def backtest_many(
    candles: pd.DataFrame | np.ndarray,
    positions: np.ndarray,
    *,
    fee_bps: float = DEFAULT_FEE_BPS,
    slippage_bps: float = DEFAULT_SLIPPAGE_BPS,
    init_cash: float = 1.0,
    timeframe: str | None = None,
    bars_axis: int | None = None,
) -> BacktestGrid:
    """Backtest many position series over the same candles in one vectorized call.

    ``positions`` is (n_configs, n_bars) or (n_bars, n_configs); the bars axis is found from the
    number of candles (``bars_axis`` settles a square array). ``candles`` is a candle frame or a
    bare close array (then metrics need ``timeframe``). Equity is computed on the spot; metrics,
    trades and per-regime metrics are computed when first asked for (``grid.metrics``).
    """
    k = cost_rate(fee_bps, slippage_bps)
    cash = _check_cash(init_cash)
    ts, close = candle_arrays(candles, need_ts=False)
    grid = _grid_positions(positions, close.shape[0], bars_axis)
    if timeframe is not None:
        timeframe_ms(timeframe)
    elif ts is not None and ts.size > 1:
        timeframe = infer_timeframe(ts)
    return BacktestGrid(
        ts=ts, close=close, positions=grid, equity=equity_curves(close, grid, k, cash),
        init_cash=cash, fee_bps=float(fee_bps), slippage_bps=float(slippage_bps),
        timeframe=timeframe,
    )  # fmt: skip


@dataclass(frozen=True)
class VectorbtOrders:
    """Arguments of ``vectorbt.Portfolio.from_orders`` reproducing this module's convention."""

    kwargs: dict[str, Any]
    rows_per_bar: int
    cash_scale: float  # vectorbt's cash / ours

    def equity(self, portfolio: Any) -> np.ndarray:
        """Our (n_configs, n_bars) equity read from the portfolio built with ``kwargs``."""
        value = np.asarray(portfolio.value(), dtype=np.float64)
        value = value.reshape(value.shape[0], -1)  # one config comes back as a Series
        return value[self.rows_per_bar - 1 :: self.rows_per_bar].T / self.cash_scale


def vectorbt_orders(
    close: np.ndarray,
    positions: np.ndarray,
    *,
    fee_bps: float = DEFAULT_FEE_BPS,
    slippage_bps: float = DEFAULT_SLIPPAGE_BPS,
    init_cash: float = 1.0,
) -> VectorbtOrders:
    """The vectorbt mapping of the module docstring for (n_configs, n_bars) positions.

    Without costs: one order per bar and column, ``size_type='targetpercent'``. With costs: three
    orders per bar (rows repeat the close) and a cash-buffer column per config, cash shared per
    pair. Pure numpy: vectorbt is only needed to run the result (it is a dev dependency).

    vectorbt ignores orders smaller than 1e-12 units (its ``abs_tol``): with 1.0 of cash and a
    70,000 USD asset that drops real rebalancing trades, so vectorbt runs with ``_VBT_CASH`` of
    cash and ``VectorbtOrders.equity`` scales back (the convention is scale-free).
    """
    k = cost_rate(fee_bps, slippage_bps)
    scale = _VBT_CASH / _check_cash(init_cash)
    p = np.atleast_2d(np.asarray(positions, dtype=np.float64))
    n_configs, n_bars = p.shape
    common: dict[str, Any] = {
        "size_type": "targetpercent", "direction": "both",
        "init_cash": _VBT_CASH, "call_seq": "default",
    }  # fmt: skip
    if k == 0.0:
        kwargs = {"close": np.repeat(close[:, None], n_configs, axis=1), "size": p.T, "fees": 0.0}
        return VectorbtOrders(kwargs | common, rows_per_bar=1, cash_scale=scale)
    prev = np.zeros_like(p)
    prev[:, 1:] = p[:, :-1]
    rows = 3 * n_bars
    size = np.full((rows, 2 * n_configs), -1.0)  # even columns: the cash buffer, -100% of equity
    size[0::3, 1::2] = prev.T  # restore the held fraction after the bar's drift, free
    size[1::3, 1::2] = p.T  # the trade, charged k on its notional
    size[2::3, 1::2] = p.T  # resize to the fraction of the post-fee equity, free
    fees = np.zeros((rows, 2 * n_configs))
    fees[1::3, 1::2] = k
    prices = np.ones((rows, 2 * n_configs))
    prices[:, 1::2] = np.repeat(close, 3)[:, None]
    kwargs = {
        "close": prices, "size": size, "fees": fees, "cash_sharing": True,
        "group_by": np.repeat(np.arange(n_configs), 2),
    }  # fmt: skip
    return VectorbtOrders(kwargs | common, rows_per_bar=3, cash_scale=scale)
