"""Metrics: known small cases by hand, the 2-D path, and the per-regime breakdown on real BTC."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from market.backtest import backtest, backtest_many
from market.baselines import sma_cross
from market.metrics import (
    METRICS,
    TradeOutcomes,
    compute_metrics,
    drawdown_stats,
    metrics_by_regime,
)
from market.regimes import NO_REGIME, REGIMES
from market.timeframes import bars_per_year

BPY = bars_per_year("1h")  # 8760


def no_trades() -> TradeOutcomes:
    empty = np.zeros(0)
    return TradeOutcomes(empty.astype(np.int64), empty, empty, empty.astype(np.int64))


def one_row(returns: list[float], held: list[float] | None = None) -> dict[str, float]:
    r = np.array([returns])
    h = np.ones_like(r) if held is None else np.array([held])
    out = compute_metrics(r, h, np.zeros_like(r), no_trades(), bars_per_year=BPY)
    return {name: value[0].item() for name, value in out.items()}


def test_return_and_risk_metrics_by_hand() -> None:
    r = [0.01, -0.02, 0.03, 0.0, -0.01]
    m = one_row(r)
    growth = 1.01 * 0.98 * 1.03 * 1.0 * 0.99
    assert m["total_return"] == pytest.approx(growth - 1, rel=1e-12)
    assert m["annualized_return"] == pytest.approx(growth ** (BPY / 5) - 1, rel=1e-9)
    sd = statistics.stdev(r)
    assert m["volatility"] == pytest.approx(sd * math.sqrt(BPY), rel=1e-12)
    assert m["sharpe"] == pytest.approx(statistics.mean(r) / sd * math.sqrt(BPY), rel=1e-12)
    downside = math.sqrt((0.02**2 + 0.01**2) / 5)
    assert m["sortino"] == pytest.approx(statistics.mean(r) / downside * math.sqrt(BPY))
    assert m["max_drawdown"] == pytest.approx(-0.02, rel=1e-12)  # bar 1 against bar 0's peak
    assert m["calmar"] == pytest.approx(m["annualized_return"] / 0.02, rel=1e-12)
    assert m["bars"] == 5


def test_drawdown_depth_and_duration() -> None:
    growth = np.cumprod(1 + np.array([[0.1, -0.1, 0.05, 0.02, 0.1, -0.05],
                                      [-0.1, 0.2, 0.0, 0.0, 0.0, 0.0]]), axis=1)  # fmt: skip
    depth, duration = drawdown_stats(growth)
    # Row 0: peak 1.1 at bar 0, under water for bars 1-3, new peak at bar 4, dips at bar 5.
    assert depth[0] == pytest.approx(0.99 / 1.1 - 1, rel=1e-12)
    assert duration[0] == 3
    # Row 1: the starting capital is the first peak, so a first-bar loss is a drawdown.
    assert depth[1] == pytest.approx(-0.1, rel=1e-12)
    assert duration[1] == 1


def test_hit_rate_exposure_turnover() -> None:
    r = np.array([[0.0, 0.01, -0.01, 0.02, 0.0, 0.03]])
    held = np.array([[0.0, 1.0, 1.0, -0.5, 0.5, 0.0]])
    traded = np.array([[1.0, 0.0, 1.5, 1.0, 0.5, 0.0]])
    m = compute_metrics(r, held, traded, no_trades(), bars_per_year=BPY)
    assert m["hit_rate"][0] == pytest.approx(2 / 4)  # bars 1..4 in the market, 1 and 3 gained
    assert m["exposure"][0] == pytest.approx(3.0 / 6)
    assert m["time_in_market"][0] == pytest.approx(4 / 6)
    assert m["turnover"][0] == pytest.approx(4.0 / 6 * BPY)


def test_trade_metrics_per_config() -> None:
    trades = TradeOutcomes(
        config=np.array([0, 0, 0, 1, 3]),
        pnl=np.array([0.1, -0.05, 0.02, -0.01, 0.04]),
        ret=np.array([0.1, -0.04, 0.03, -0.01, 0.05]),
        entry_idx=np.array([0, 2, 4, 1, 3]),
    )
    zeros = np.zeros((4, 6))
    m = compute_metrics(zeros, zeros, zeros, trades, bars_per_year=BPY)
    assert m["trade_count"].tolist() == [3, 1, 0, 1]
    assert m["win_rate"][[0, 1, 3]] == pytest.approx([2 / 3, 0.0, 1.0])
    assert m["profit_factor"][[0, 1]] == pytest.approx([0.12 / 0.05, 0.0])
    assert m["profit_factor"][3] == math.inf  # no losing trade
    assert m["expectancy"][[0, 1, 3]] == pytest.approx([0.09 / 3, -0.01, 0.05])
    assert np.isnan(m["win_rate"][2]) and np.isnan(m["profit_factor"][2])
    assert np.isnan(m["expectancy"][2])
    assert np.isnan(m["sharpe"]).all()  # flat returns: no volatility, no Sharpe


def test_metrics_vectorized_equal_row_by_row() -> None:
    rng = np.random.default_rng(3)  # generated returns: a property of the pure function
    r = rng.normal(0, 0.01, (5, 400))
    held = rng.choice([-1.0, 0.0, 0.5, 1.0], (5, 400))
    traded = np.abs(np.diff(held, prepend=0.0))
    together = compute_metrics(r, held, traded, no_trades(), bars_per_year=BPY)
    for i in range(5):
        alone = compute_metrics(r[i : i + 1], held[i : i + 1], traded[i : i + 1], no_trades(),
                                bars_per_year=BPY)  # fmt: skip
        for name in METRICS:
            assert together[name][i] == pytest.approx(alone[name][0], rel=1e-12, nan_ok=True)


def simple_regimes(candles: pd.DataFrame) -> np.ndarray:
    """Causal labels for the test: 7-day return and 7-day hourly volatility (NO_REGIME at first)."""
    close = candles.close.to_numpy()
    window = 168
    labels = np.full(close.size, NO_REGIME, dtype=object)
    trend = close[window:] / close[:-window] - 1
    vol = pd.Series(np.log(close)).diff().rolling(window).std().to_numpy()[window:] * np.sqrt(BPY)
    labels[window:] = np.where(
        trend >= 0.05,
        "bull_trending",
        np.where(trend <= -0.05, "bear_trending",
                 np.where(vol >= 0.6, "volatile_ranging", "calm_ranging")),
    )  # fmt: skip
    return labels.astype(str)


def test_per_regime_breakdown_adds_up(btc_1h: pd.DataFrame) -> None:
    candles = btc_1h.iloc[:8000]
    regimes = simple_regimes(candles)
    positions = np.stack([sma_cross(candles, 20, 50), sma_cross(candles, 10, 100) * -0.5])
    grid = backtest_many(candles, positions, fee_bps=10, slippage_bps=2)
    per = grid.metrics_by_regime(regimes)
    overall = grid.metrics
    assert list(per) == [*REGIMES, NO_REGIME]
    assert all(list(values) == list(METRICS) for values in per.values())
    assert set(np.unique(regimes)) == {*REGIMES, NO_REGIME}
    bars = np.sum([per[name]["bars"] for name in per], axis=0)
    assert bars.tolist() == [len(candles)] * 2
    # Decision returns regroup the bar returns' factors: regime growths compound to the total.
    growth = np.prod([1 + per[name]["total_return"] for name in per], axis=0)
    assert growth == pytest.approx(1 + overall["total_return"], rel=1e-10)
    assert sum(per[name]["trade_count"] for name in per) == pytest.approx(overall["trade_count"])
    turnover = sum(per[name]["turnover"] * per[name]["bars"] for name in per)
    assert turnover == pytest.approx(overall["turnover"] * len(candles), rel=1e-12)
    # A regime's exposure is the mean |position| decided in it.
    calm = regimes == "calm_ranging"
    assert per["calm_ranging"]["exposure"] == pytest.approx(np.abs(positions[:, calm]).mean(1))
    # The 1-D path gives the same breakdown.
    single = backtest(candles, positions[1], fee_bps=10, slippage_bps=2).metrics_by_regime(regimes)
    for name in per:
        for metric in METRICS:
            assert single[name][metric] == pytest.approx(per[name][metric][1], rel=1e-12,
                                                         nan_ok=True)  # fmt: skip


def test_absent_regime_has_no_bars_and_nan_metrics(btc_1h: pd.DataFrame) -> None:
    candles = btc_1h.iloc[:500]
    labels = np.full(500, "calm_ranging")
    per = backtest(candles, sma_cross(candles)).metrics_by_regime(labels)
    assert list(per) == list(REGIMES)
    assert per["bull_trending"]["bars"] == 0 and per["bull_trending"]["trade_count"] == 0
    assert math.isnan(per["bull_trending"]["sharpe"])
    assert per["calm_ranging"]["bars"] == 500


def test_regime_labels_must_match_the_bars(btc_1h: pd.DataFrame) -> None:
    result = backtest(btc_1h.iloc[:100], np.ones(100))
    with pytest.raises(ValueError, match=r"regimes must have one label per bar \(100\); got"):
        result.metrics_by_regime(np.full(99, "calm_ranging"))
    r = np.zeros((1, 5))
    with pytest.raises(ValueError, match=r"held \(1, 4\) and traded \(1, 5\) must have the shape"):
        compute_metrics(r, np.zeros((1, 4)), r, no_trades(), bars_per_year=BPY)
    with pytest.raises(ValueError, match="regimes must have one label per bar"):
        metrics_by_regime(r, r, r, no_trades(), ["calm_ranging"], bars_per_year=BPY)
