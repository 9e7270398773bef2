"""The equity of served answers beside buy-and-hold and a chosen SMA crossover, over the same bars.

What a walk-forward report prints per series (the replay's ``replay_report.json``,
``benchmarks/edge.py``'s final test): each position series is backtested by ``market.backtest``
under its convention, restated here because every number below depends on it:

- ``positions[i]`` is decided at the close of bar i (from data up to that close) and held to the
  close of bar i + 1; before the first bar the position is 0 (flat);
- a change of position costs ``fee_bps / 10_000 * |positions[i] - positions[i-1]|`` of the equity
  at that close, the first entry included; the last position is marked at the last close, not
  closed;
- a served answer is the position ``direction * size`` (direction in {-1, 0, 1}, size in [0, 1]);
  a bar without an answer is flat.

``equity_stats`` returns (risk-free rate 0, annualized with the timeframe's bars per year):

- ``sharpe``: ``market.metrics``' Sharpe of the bar returns; 0.0, not NaN, when the returns do not
  vary (a series that is never in the market);
- ``total_return``, ``max_drawdown`` (<= 0, the starting capital counts as the first peak): as
  ``market.metrics``;
- ``exposure``: the share of bars whose position is not 0 (time in market, whatever the size);
  ``mean_abs_position``: the mean of ``|position|`` (gross exposure; equals ``exposure`` for 0/1
  positions). Note that ``market.metrics`` names the latter "exposure" and measures both on the
  position *held into* each bar; here both are over the positions decided at the window's bars;
- ``traded``: units of position traded, the first entry included (``sum |dp|``); ``fees``: what
  they cost, as a fraction of the starting capital;
- ``bars``: the number of bars scored.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from market.backtest import DEFAULT_FEE_BPS, backtest, candle_arrays, infer_timeframe
from market.baselines import buy_and_hold, sma_cross
from market.when import fmt_ts

SMA_GRID: tuple[tuple[int, int], ...] = tuple(
    (fast, slow) for fast in (5, 10, 20, 50) for slow in (20, 50, 100, 200) if fast < slow
)
"""The (fast, slow) pairs ``choose_sma`` tries, fast then slow ascending; ties go to the earlier."""

STATS: tuple[str, ...] = (
    "bars", "sharpe", "total_return", "max_drawdown", "exposure", "mean_abs_position", "traded",
    "fees",
)  # fmt: skip
"""The keys of ``equity_stats``."""

ANSWER_COLUMNS: tuple[str, ...] = ("ts", "direction", "size")


def equity_stats(
    candles: pd.DataFrame,
    positions: np.ndarray,
    *,
    fee_bps: float = DEFAULT_FEE_BPS,
    timeframe: str | None = None,
) -> dict[str, float]:
    """The ``STATS`` of one position series (one value per candle) under the module's convention.

    ``timeframe`` sets the bars per year of the Sharpe; by default it is inferred from ``ts``.
    """
    p = np.asarray(positions, dtype=np.float64)
    result = backtest(candles, p, fee_bps=fee_bps, slippage_bps=0.0, timeframe=timeframe)
    metrics = result.metrics()
    sharpe = float(metrics["sharpe"])
    return {
        "bars": int(p.shape[0]),
        "sharpe": sharpe if math.isfinite(sharpe) else 0.0,  # never in the market: flat, 0
        "total_return": float(metrics["total_return"]),
        "max_drawdown": float(metrics["max_drawdown"]),
        "exposure": float(np.mean(p != 0.0)),
        "mean_abs_position": float(np.mean(np.abs(p))),
        "traded": float(np.sum(np.abs(np.diff(p, prepend=0.0)))),
        "fees": float(np.sum(result.costs) / result.init_cash),
    }


def choose_sma(
    candles_before: pd.DataFrame,
    grid: tuple[tuple[int, int], ...] | list[tuple[int, int]] = SMA_GRID,
    *,
    fee_bps: float = DEFAULT_FEE_BPS,
    timeframe: str | None = None,
) -> tuple[int, int]:
    """The (fast, slow) pair of ``grid`` whose long-only crossover had the best Sharpe, net of fees.

    Only ``candles_before`` is read: pass the candles strictly before the period the pair will be
    judged on. Ties (equal Sharpe) go to the pair that comes first in ``grid``; a pair never in the
    market scores 0 (``equity_stats``). Needs more candles than the grid's longest slow window, so
    every pair had a chance to trade.
    """
    if not grid:
        raise ValueError("grid must hold at least one (fast, slow) pair; got none")
    longest = max(slow for _, slow in grid)
    if len(candles_before) <= longest:
        raise ValueError(
            f"choose_sma needs more candles before the start than the grid's longest slow window "
            f"({longest}); got {len(candles_before)}"
        )
    train = candles_before.reset_index(drop=True)
    best, pair = -math.inf, grid[0]
    for fast, slow in grid:
        stats = equity_stats(
            train, sma_cross(train, fast, slow), fee_bps=fee_bps, timeframe=timeframe
        )
        if stats["sharpe"] > best:
            best, pair = stats["sharpe"], (fast, slow)
    return pair


def answer_positions(bars_ts: np.ndarray, answers: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Served positions on the bars ``bars_ts`` (sorted open times, ms) and how many had no answer.

    ``answers`` has one row per answered bar: ``ts`` (the open time of the bar at whose close the
    answer was given), ``direction`` in {-1, 0, 1} and ``size`` in [0, 1]. Answers outside the bars'
    span are ignored; one inside it must fall on a bar.
    """
    missing = [c for c in ANSWER_COLUMNS if c not in answers]
    if missing:
        raise ValueError(
            f"answers must have columns {missing}; got columns {list(answers.columns)}"
        )
    ts = answers["ts"].to_numpy(dtype=np.int64)
    direction = answers["direction"].to_numpy(dtype=np.float64)
    size = answers["size"].to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isin(direction, (-1.0, 0.0, 1.0)))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"answers.direction must be -1, 0 or 1: row {i} has {direction[i]}")
    bad = np.flatnonzero(~(np.isfinite(size) & (size >= 0.0) & (size <= 1.0)))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"answers.size must lie in [0, 1]: row {i} has {size[i]}")
    inside = (ts >= bars_ts[0]) & (ts <= bars_ts[-1]) if bars_ts.size else np.zeros_like(ts, bool)
    ts, direction, size = ts[inside], direction[inside], size[inside]
    unique, counts = np.unique(ts, return_counts=True)
    if (counts > 1).any():
        twice = int(unique[np.argmax(counts > 1)])
        raise ValueError(
            f"answers.ts must be unique: {twice} ({fmt_ts(twice)} UTC) is answered twice"
        )
    at = np.searchsorted(bars_ts, ts)
    off = np.flatnonzero(bars_ts[np.minimum(at, bars_ts.size - 1)] != ts)
    if off.size:
        t = int(ts[off[0]])
        raise ValueError(f"answers.ts {t} ({fmt_ts(t)} UTC) is no bar's open time")
    positions = np.zeros(bars_ts.shape[0])
    positions[at] = direction * size
    return positions, int(bars_ts.shape[0] - ts.shape[0])


def compare_series(
    candles_all: pd.DataFrame,
    answers: pd.DataFrame,
    start_ms: int,
    end_ms: int,
    *,
    fee_bps: float = DEFAULT_FEE_BPS,
    grid: tuple[tuple[int, int], ...] | list[tuple[int, int]] = SMA_GRID,
    timeframe: str | None = None,
) -> dict[str, Any]:
    """The served answers, buy-and-hold and the SMA crossover over the bars ``[start_ms, end_ms)``.

    ``candles_all`` is the series (``ts``, ``close``, ...; sorted open times in ms) including its
    history before ``start_ms``: the crossover's pair is chosen by ``choose_sma`` on the candles
    before ``start_ms`` only, and its moving averages warm up on them (causally). ``answers`` as in
    ``answer_positions``; a bar without one is flat and counted in ``unanswered``. Returns
    ``{"bars", "unanswered", "fee_bps", "served", "buy_and_hold", "sma_cross"}``, each of the
    last three an ``equity_stats`` dict; ``sma_cross`` adds ``fast``, ``slow`` and
    ``train_sharpe`` (its Sharpe on the candles before ``start_ms``).
    """
    if start_ms >= end_ms:
        raise ValueError(
            f"start_ms must be before end_ms; got start_ms={start_ms} ({fmt_ts(start_ms)} UTC), "
            f"end_ms={end_ms} ({fmt_ts(end_ms)} UTC)"
        )
    ts_all, _ = candle_arrays(candles_all, need_ts=True)
    assert ts_all is not None
    timeframe = timeframe or infer_timeframe(ts_all)
    history = candles_all.iloc[: int(np.searchsorted(ts_all, end_ms))].reset_index(drop=True)
    start = int(np.searchsorted(ts_all, start_ms))
    if start >= len(history):
        raise ValueError(
            f"no candles in [{fmt_ts(start_ms)}, {fmt_ts(end_ms)}) UTC; the series holds "
            f"{fmt_ts(int(ts_all[0]))} to {fmt_ts(int(ts_all[-1]))}"
        )
    before = history.iloc[:start]
    window = history.iloc[start:].reset_index(drop=True)
    served, unanswered = answer_positions(window["ts"].to_numpy(dtype=np.int64), answers)
    fast, slow = choose_sma(before, grid, fee_bps=fee_bps, timeframe=timeframe)
    train = equity_stats(
        before, sma_cross(before, fast, slow), fee_bps=fee_bps, timeframe=timeframe
    )

    def stats(positions: np.ndarray) -> dict[str, float]:
        return equity_stats(window, positions, fee_bps=fee_bps, timeframe=timeframe)

    return {
        "bars": len(window),
        "unanswered": unanswered,
        "fee_bps": float(fee_bps),
        "served": stats(served),
        "buy_and_hold": stats(buy_and_hold(window)),
        "sma_cross": stats(sma_cross(history, fast, slow)[start:])
        | {"fast": fast, "slow": slow, "train_sharpe": train["sharpe"]},
    }
