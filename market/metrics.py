"""Performance metrics of backtests, vectorized over many configurations, overall and per regime.

Every function here works on 2-D arrays shaped ``(n_configs, n_bars)`` and returns one value per
configuration (a 1-D array), so an inference grid of 500 position series is scored in one call.
A single series is the ``n_configs == 1`` case (``market.backtest`` squeezes it to floats).

Inputs are the arrays ``market.backtest`` produces (see its module docstring for the convention):

- ``returns``: simple return of each bar, ``equity_t / equity_{t-1} - 1``;
- ``held``: the position exposed to that bar's return (``positions_{t-1}`` for bar t);
- ``traded``: ``|positions_t - positions_{t-1}|``, the fraction of equity traded at bar t;
- trades: per trade the configuration it belongs to, its PnL (in equity units) and its return.

Definitions (risk-free rate 0; ``bpy`` = bars per year of the timeframe, from
``market.timeframes.bars_per_year``; ``N`` = number of bars scored):

- ``total_return`` = prod(1 + r) - 1; ``annualized_return`` = (1 + total)^(bpy / N) - 1;
- ``volatility`` = std(r, ddof=1) * sqrt(bpy); ``sharpe`` = mean(r) / std(r, ddof=1) * sqrt(bpy);
- ``sortino`` = mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(bpy);
- ``max_drawdown`` = min_t(V_t / max(1, V_0..V_t) - 1) <= 0 on V = cumprod(1 + r) (the starting
  capital counts as the first peak); ``max_drawdown_bars`` = the longest stretch of bars spent below
  a previous peak; ``calmar`` = annualized_return / -max_drawdown;
- ``hit_rate`` = share of bars in the market (held != 0) whose return is positive;
- ``win_rate`` = share of trades with PnL > 0; ``profit_factor`` = gross profit / gross loss
  (inf without losing trades); ``expectancy`` = mean trade return (PnL / equity at entry);
  ``trade_count``; the trade still open at the last bar counts, marked at the last close;
- ``exposure`` = mean |held| (average gross exposure; equals time in market for 0/1 positions);
  ``time_in_market`` = share of bars with held != 0;
- ``turnover`` = sum(traded) / N * bpy: multiples of equity traded per year.

Metrics that are undefined (no bars, no trades, zero volatility) are NaN.

Per regime (``metrics_by_regime``), each bar is grouped by the regime of the bar at which its
position was *decided*: the decision at bar d (cost of trading to ``positions_d`` at close d, then
holding it to close d + 1) is one "decision return" ``(1 - cost_d) * (1 + p_d * r_{d+1}) - 1``,
attributed to ``regimes[d]``. Decision returns regroup the same factors as the bar returns, so the
per-regime total returns compound to the overall one exactly; trades are grouped by the regime of
their entry bar. A regime's metrics are computed as if its bars were traded back to back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from market.regimes import NO_REGIME, REGIMES

logger = logging.getLogger(__name__)

METRICS: tuple[str, ...] = (
    "bars",
    "total_return",
    "annualized_return",
    "volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "max_drawdown_bars",
    "hit_rate",
    "win_rate",
    "profit_factor",
    "expectancy",
    "trade_count",
    "exposure",
    "time_in_market",
    "turnover",
)
"""The metric names, in report order."""


@dataclass(frozen=True)
class TradeOutcomes:
    """What the trade metrics need: one entry per trade, in any order."""

    config: np.ndarray  # int64, the configuration (row) each trade belongs to
    pnl: np.ndarray  # float64, in equity units (fees included)
    ret: np.ndarray  # float64, PnL / equity at entry
    entry_idx: np.ndarray  # int64, bar at which the trade was opened

    def subset(self, keep: np.ndarray) -> TradeOutcomes:
        return TradeOutcomes(
            self.config[keep], self.pnl[keep], self.ret[keep], self.entry_idx[keep]
        )


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN where den is zero (or both are)."""
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def drawdown_stats(growth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max drawdown (<= 0) and its longest duration in bars, per row of a growth curve.

    ``growth`` is equity divided by the starting capital, shape (n_configs, n_bars); the starting
    capital (1.0) is the first peak, so a loss on the first bar is already a drawdown.
    """
    n_configs, n_bars = growth.shape
    if n_bars == 0:
        return np.zeros(n_configs), np.zeros(n_configs, dtype=np.int64)
    peak = np.maximum.accumulate(np.maximum(growth, 1.0), axis=1)
    max_dd = np.min(growth / peak, axis=1) - 1.0
    # Bars since the last bar at a peak (-1 = the starting capital): the longest is the duration.
    at_peak = growth >= peak
    last_peak = np.where(at_peak, np.arange(n_bars), -1)
    np.maximum.accumulate(last_peak, axis=1, out=last_peak)
    duration = np.max(np.arange(n_bars) - last_peak, axis=1)
    return max_dd, duration.astype(np.int64)


def compute_metrics(
    returns: np.ndarray,
    held: np.ndarray,
    traded: np.ndarray,
    trades: TradeOutcomes,
    *,
    bars_per_year: float,
    growth: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Every metric of ``METRICS`` per row of ``returns`` (shape (n_configs, n_bars)).

    ``growth`` (equity / starting capital) may be passed when already known, to skip recompounding.
    """
    returns = np.atleast_2d(returns)
    n_configs, n_bars = returns.shape
    if held.shape != returns.shape or traded.shape != returns.shape:
        raise ValueError(
            f"held {held.shape} and traded {traded.shape} must have the shape of returns "
            f"{returns.shape}"
        )
    if growth is None:
        growth = np.cumprod(1.0 + returns, axis=1)
    out: dict[str, np.ndarray] = {"bars": np.full(n_configs, n_bars, dtype=np.int64)}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        total = growth[:, -1] - 1.0 if n_bars else np.zeros(n_configs)
        out["total_return"] = total
        years = n_bars / bars_per_year
        out["annualized_return"] = (
            np.where(total > -1.0, np.power(np.maximum(1.0 + total, 0.0), 1.0 / years), 0.0) - 1.0
            if n_bars
            else np.full(n_configs, np.nan)
        )
        mean = returns.mean(axis=1) if n_bars else np.full(n_configs, np.nan)
        std = returns.std(axis=1, ddof=1) if n_bars > 1 else np.full(n_configs, np.nan)
        scale = np.sqrt(bars_per_year)
        out["volatility"] = std * scale
        out["sharpe"] = _ratio(mean, std) * scale
        downside = (
            np.sqrt(np.mean(np.square(np.minimum(returns, 0.0)), axis=1))
            if n_bars
            else np.full(n_configs, np.nan)
        )
        out["sortino"] = np.where(
            downside > 0, _ratio(mean, downside) * scale, np.where(mean > 0, np.inf, np.nan)
        )
        max_dd, dd_bars = drawdown_stats(growth)
        out["max_drawdown"] = max_dd
        out["max_drawdown_bars"] = dd_bars
        out["calmar"] = np.where(
            max_dd < 0,
            _ratio(out["annualized_return"], -max_dd),
            np.where(out["annualized_return"] > 0, np.inf, np.nan),
        )
        in_market = held != 0
        n_in = in_market.sum(axis=1)
        out["hit_rate"] = _ratio((in_market & (returns > 0)).sum(axis=1).astype(float), n_in)
        out["exposure"] = np.abs(held).mean(axis=1) if n_bars else np.full(n_configs, np.nan)
        out["time_in_market"] = n_in / n_bars if n_bars else np.full(n_configs, np.nan)
        out["turnover"] = (
            traded.sum(axis=1) / n_bars * bars_per_year if n_bars else np.full(n_configs, np.nan)
        )
        out.update(_trade_metrics(trades, n_configs))
    return {name: out[name] for name in METRICS}


def _trade_metrics(trades: TradeOutcomes, n_configs: int) -> dict[str, np.ndarray]:
    cfg = trades.config
    count = np.bincount(cfg, minlength=n_configs)

    def total(weights: np.ndarray) -> np.ndarray:
        # float even without trades (an empty bincount is int64)
        return np.bincount(cfg, weights=weights, minlength=n_configs).astype(np.float64)

    wins = total((trades.pnl > 0).astype(np.float64))
    gross_profit = total(np.maximum(trades.pnl, 0.0))
    gross_loss = -total(np.minimum(trades.pnl, 0.0))
    ret_sum = total(trades.ret)
    profit_factor = np.where(
        gross_loss > 0,
        _ratio(gross_profit, gross_loss),
        np.where(gross_profit > 0, np.inf, np.nan),
    )
    return {
        "trade_count": count.astype(np.int64),
        "win_rate": _ratio(wins, count.astype(float)),
        "profit_factor": profit_factor,
        "expectancy": _ratio(ret_sum, count.astype(float)),
    }


def regime_labels(regimes: np.ndarray | Sequence[str], n_bars: int) -> np.ndarray:
    """The regime label array as strings, checked against the number of bars."""
    labels = np.asarray(regimes).astype(str)
    if labels.ndim != 1 or labels.shape[0] != n_bars:
        raise ValueError(
            f"regimes must have one label per bar ({n_bars}); got shape {labels.shape}"
        )
    return labels


def regime_order(labels: np.ndarray) -> list[str]:
    """Every known regime, then NO_REGIME and any other label that occurs, in a stable order."""
    present = set(np.unique(labels).tolist())
    extra = sorted(present - set(REGIMES) - {NO_REGIME})
    return [*REGIMES, *([NO_REGIME] if NO_REGIME in present else []), *extra]


def metrics_by_regime(
    decision_returns: np.ndarray,
    positions: np.ndarray,
    traded: np.ndarray,
    trades: TradeOutcomes,
    regimes: np.ndarray | Sequence[str],
    *,
    bars_per_year: float,
) -> dict[str, dict[str, np.ndarray]]:
    """``compute_metrics`` per regime, bars grouped by the regime at which the position was decided.

    ``decision_returns``, ``positions`` and ``traded`` are aligned on the decision bar d (see the
    module docstring); ``regimes`` has one label per bar (``NO_REGIME`` before its window fills).
    Returns ``{regime: {metric: values per config}}`` for every regime of ``REGIMES`` (zero bars
    and NaN metrics when absent) and for any other label present, such as ``NO_REGIME``.
    """
    decision_returns = np.atleast_2d(decision_returns)
    n_bars = decision_returns.shape[1]
    labels = regime_labels(regimes, n_bars)
    entry_regime = labels[trades.entry_idx] if trades.entry_idx.size else labels[:0]
    out: dict[str, dict[str, np.ndarray]] = {}
    for name in regime_order(labels):
        mask = labels == name
        out[name] = compute_metrics(
            decision_returns[:, mask],
            np.atleast_2d(positions)[:, mask],
            np.atleast_2d(traded)[:, mask],
            trades.subset(entry_regime == name),
            bars_per_year=bars_per_year,
        )
    return out
