"""Backtests on real BTC candles: hand-computed equity, trades, the grid path, baselines, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from market.backtest import TRADE_COLUMNS, backtest, backtest_many, cost_rate
from market.baselines import baseline_positions, buy_and_hold, sma_cross
from market.metrics import METRICS

FEE = 0.001  # the default 10 bps


@pytest.fixture(scope="module")
def head(btc_1h: pd.DataFrame) -> pd.DataFrame:
    return btc_1h.iloc[:10].reset_index(drop=True)


def test_first_closes_are_the_csv_values(head: pd.DataFrame) -> None:
    # The hand computations below use these real closes (2020-01-01 00:00..03:00 UTC).
    assert head.close.iloc[:4].tolist() == [7177.02, 7216.27, 7242.85, 7225.01]
    assert head.ts.iloc[0] == 1577836800000


def test_long_three_bars_with_fee_by_hand(head: pd.DataFrame) -> None:
    c0, c1, c2, c3 = 7177.02, 7216.27, 7242.85, 7225.01
    result = backtest(head.iloc[:6], [1, 1, 1, 0, 0, 0])
    e0 = 1 - FEE  # bought at the close of bar 0
    e1 = e0 * c1 / c0
    e2 = e1 * c2 / c1
    e3 = e2 * c3 / c2 * (1 - FEE)  # held over bar 3, sold at its close
    assert result.equity == pytest.approx([e0, e1, e2, e3, e3, e3], rel=1e-12)
    assert result.total_return == pytest.approx(c3 / c0 * (1 - FEE) ** 2 - 1, rel=1e-12)
    assert result.total_return == pytest.approx(0.0046743, abs=1e-7)
    assert result.returns == pytest.approx([-FEE, c1 / c0 - 1, c2 / c1 - 1, e3 / e2 - 1, 0, 0])
    assert result.costs == pytest.approx([FEE, 0, 0, e2 * c3 / c2 * FEE, 0, 0], rel=1e-12)


def test_fractional_short_and_slippage_by_hand(head: pd.DataFrame) -> None:
    c0, c1, c2 = 7177.02, 7216.27, 7242.85
    k = (10 + 5) / 10_000
    result = backtest(head.iloc[:3], [-0.5, -0.5, 0], fee_bps=10, slippage_bps=5)
    e0 = 1 - 0.5 * k
    e1 = e0 * (1 - 0.5 * (c1 / c0 - 1))
    e2 = e1 * (1 - 0.5 * (c2 / c1 - 1)) * (1 - 0.5 * k)
    assert result.equity == pytest.approx([e0, e1, e2], rel=1e-12)
    same = backtest(head.iloc[:3], [-0.5, -0.5, 0], fee_bps=15)
    assert np.array_equal(same.equity, result.equity)


def test_flip_pays_both_legs_and_splits_the_cost_between_trades(head: pd.DataFrame) -> None:
    c0, c1, c2 = 7177.02, 7216.27, 7242.85
    result = backtest(head.iloc[:3], [1, -1, 0], init_cash=1000.0)
    pre1 = 1000 * (1 - FEE) * c1 / c0
    e1 = pre1 * (1 - 2 * FEE)
    pre2 = e1 * (1 - (c2 / c1 - 1))
    assert result.equity == pytest.approx([1000 * (1 - FEE), e1, pre2 * (1 - FEE)], rel=1e-12)
    long, short = result.trades.itertuples(index=False)
    assert (long.side, long.entry_idx, long.exit_idx, long.is_open) == (1, 0, 1, False)
    assert (short.side, short.entry_idx, short.exit_idx, short.is_open) == (-1, 1, 2, False)
    assert long.fees == pytest.approx(1000 * FEE + pre1 * FEE, rel=1e-12)
    assert short.fees == pytest.approx(pre1 * FEE + pre2 * FEE, rel=1e-12)
    assert long.pnl == pytest.approx(pre1 * (1 - FEE) - 1000, rel=1e-12)
    assert short.pnl == pytest.approx(pre2 * (1 - FEE) - pre1 * (1 - FEE), rel=1e-12)
    assert result.trades.pnl.sum() == pytest.approx(result.equity[-1] - 1000, rel=1e-12)


def test_trades_of_fractional_runs(head: pd.DataFrame) -> None:
    positions = [0, 0.5, 1, 1, 0, -1, -0.5, 1, 0.25, 0.25]
    result = backtest(head, positions)
    trades = result.trades
    assert list(trades.columns) == list(TRADE_COLUMNS)
    assert trades.entry_idx.tolist() == [1, 5, 7]
    assert trades.exit_idx.tolist() == [4, 7, 9]
    assert trades.side.tolist() == [1, -1, 1]
    assert trades["size"].tolist() == [1.0, 1.0, 1.0]
    assert trades.bars.tolist() == [3, 2, 3]
    assert trades.is_open.tolist() == [False, False, True]
    assert trades.entry_ts.tolist() == head.ts.iloc[[1, 5, 7]].tolist()
    assert trades.exit_price.tolist() == head.close.iloc[[4, 7, 9]].tolist()
    costs = result.costs
    pre7 = costs[7] / (FEE * 1.5)  # equity at close 7 before the flip
    expected_fees = [
        costs[1] + costs[2] + costs[4],  # scaling in belongs to the trade
        costs[5] + costs[6] + pre7 * FEE * 0.5,  # the flip's closing half
        pre7 * FEE * 1.0 + costs[8],  # its opening half, then scaling out
    ]
    assert trades.fees.to_numpy() == pytest.approx(expected_fees, rel=1e-12)
    assert trades.pnl.sum() == pytest.approx(result.equity[-1] - 1.0, abs=1e-15)
    # The open trade starts with the equity left after the short's closing half, ends marked.
    start = pre7 * (1 - FEE * 0.5)
    assert trades.pnl.iloc[-1] == pytest.approx(result.equity[-1] - start, rel=1e-12)
    assert trades["return"].iloc[-1] == pytest.approx(result.equity[-1] / start - 1, rel=1e-12)


@pytest.fixture(scope="module")
def random_positions() -> np.ndarray:
    """Position series for property checks: fractional, exact 0 and +-1, held in runs."""
    rng = np.random.default_rng(7)
    shape = (6, 3000)
    p = rng.uniform(-1, 1, shape)
    p[rng.random(shape) < 0.3] = 0.0
    p[rng.random(shape) < 0.1] = 1.0
    p[rng.random(shape) < 0.1] = -1.0
    start = np.where(rng.random(shape) < 0.2, np.arange(shape[1]), 0)
    return np.take_along_axis(p, np.maximum.accumulate(start, axis=1), axis=1)


def test_equity_returns_drawdown_and_trades_agree(
    btc_1h: pd.DataFrame, random_positions: np.ndarray
) -> None:
    candles = btc_1h.iloc[:3000]
    for positions in random_positions:
        result = backtest(candles, positions, fee_bps=10, slippage_bps=3, init_cash=250.0)
        assert 250 * np.cumprod(1 + result.returns) == pytest.approx(result.equity, rel=1e-12)
        peak = np.maximum.accumulate(np.maximum(result.equity, 250.0))
        assert np.array_equal(result.drawdown, result.equity / peak - 1)
        assert result.drawdown.max() <= 0
        assert result.trades.pnl.sum() == pytest.approx(result.equity[-1] - 250, rel=1e-9)
        assert result.trades.fees.sum() == pytest.approx(result.costs.sum(), rel=1e-12)
        assert (result.trades.side * positions[result.trades.entry_idx] > 0).all()


@pytest.mark.parametrize("bars_first", [False, True])
def test_grid_equals_single_backtests(
    btc_1h: pd.DataFrame, random_positions: np.ndarray, bars_first: bool
) -> None:
    candles = btc_1h.iloc[:3000]
    grid_input = np.ascontiguousarray(random_positions.T) if bars_first else random_positions
    grid = backtest_many(candles, grid_input, fee_bps=10, slippage_bps=3)
    assert grid.equity.shape == random_positions.shape
    for i, positions in enumerate(random_positions):
        single = backtest(candles, positions, fee_bps=10, slippage_bps=3)
        assert np.array_equal(grid.equity[i], single.equity)
        for name, value in single.metrics().items():
            assert grid.metrics[name][i] == pytest.approx(value, rel=1e-12, nan_ok=True), name
    assert list(grid.metrics) == list(METRICS)
    assert grid.total_return == pytest.approx(grid.equity[:, -1] - 1, rel=1e-15)


def test_grid_on_a_bare_close_array(btc_1h: pd.DataFrame, random_positions: np.ndarray) -> None:
    close = btc_1h.close.to_numpy()[:3000]
    grid = backtest_many(close, random_positions, timeframe="1h")
    framed = backtest_many(btc_1h.iloc[:3000], random_positions)
    assert np.array_equal(grid.equity, framed.equity)
    assert np.array_equal(grid.metrics["sharpe"], framed.metrics["sharpe"])
    with pytest.raises(ValueError, match="metrics need the timeframe"):
        _ = backtest_many(close, random_positions).metrics


def test_buy_and_hold_pays_the_fee_once(btc_1h: pd.DataFrame) -> None:
    close = btc_1h.close.to_numpy()
    result = backtest(btc_1h, buy_and_hold(btc_1h))
    assert result.total_return == pytest.approx(close[-1] / close[0] * (1 - FEE) - 1, rel=1e-10)
    assert len(result.trades) == 1 and bool(result.trades.is_open.iloc[0])
    assert result.metrics()["exposure"] == pytest.approx(1 - 1 / len(close))


def test_sma_cross_is_the_rolling_means_comparison(btc_1h: pd.DataFrame) -> None:
    close = btc_1h.close.to_numpy()
    positions = sma_cross(btc_1h, fast=20, slow=50)
    windows = np.lib.stride_tricks.sliding_window_view
    fast = windows(close, 20).mean(axis=1)[30:]
    slow = windows(close, 50).mean(axis=1)
    expected = np.concatenate([np.zeros(49), (fast > slow).astype(float)])
    differ = np.flatnonzero(positions != expected)
    # Rolling sums and window means may round differently only where the averages all but tie.
    assert differ.size <= 2
    assert np.all(np.abs(fast - slow)[differ - 49] < 1e-6 * slow[differ - 49])
    assert set(np.unique(positions)) == {0.0, 1.0} and not positions[:49].any()
    # Causal: the first k candles give the first k positions.
    assert np.array_equal(sma_cross(btc_1h.iloc[:5000], 20, 50), positions[:5000])
    result = backtest(btc_1h, positions)
    entries = np.flatnonzero(np.diff(positions, prepend=0) == 1)
    assert result.trades.entry_idx.tolist() == entries.tolist()
    assert (result.trades.side == 1).all()
    assert set(baseline_positions(btc_1h)) == {"buy_and_hold", "sma_cross"}


@pytest.mark.parametrize(
    ("fast", "slow", "match"),
    [
        (50, 20, "fast must be smaller than slow; got fast=50, slow=20"),
        (0, 20, "fast must be an integer >= 1; got 0"),
        (5, 2.5, "slow must be an integer >= 1; got 2.5"),
    ],
)
def test_sma_cross_bad_windows(head: pd.DataFrame, fast: int, slow: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sma_cross(head, fast, slow)


def test_bad_positions(head: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="positions has 9 values but candles has 10 rows"):
        backtest(head, np.zeros(9))
    with pytest.raises(ValueError, match="position 3 is NaN"):
        backtest(head, [0, 0, 0, np.nan, 0, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match=r"must lie in \[-1, 1\]; position 2 is 1.5"):
        backtest(head, [0, 0, 1.5, 0, 0, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match=r"must lie in \[-1, 1\]; position 0 is -inf"):
        backtest(head, [-np.inf] + [0] * 9)
    with pytest.raises(ValueError, match=r"positions must be 1-D \(one per candle\)"):
        backtest(head, np.zeros((2, 10)))


def test_bad_grid_positions(head: pd.DataFrame) -> None:
    grid = np.zeros((4, 10))
    grid[2, 7] = np.nan
    with pytest.raises(ValueError, match="config 2, bar 7 is NaN"):
        backtest_many(head, grid)
    grid[2, 7] = -1.25
    with pytest.raises(ValueError, match=r"config 2, bar 7 is -1\.25"):
        backtest_many(head, grid.T)  # bars-first input names the same config and bar
    with pytest.raises(ValueError, match=r"shape \(4, 9\) but candles has 10 rows"):
        backtest_many(head, np.zeros((4, 9)))
    with pytest.raises(ValueError, match="both axes match 10 bars; pass bars_axis"):
        backtest_many(head, np.zeros((10, 10)))
    square = backtest_many(head, np.eye(10), bars_axis=0)
    assert square.equity.shape == (10, 10)
    with pytest.raises(ValueError, match=r"positions axis 0 must hold the 10 bars"):
        backtest_many(head, np.zeros((4, 10)), bars_axis=0)


def test_bad_candles_and_costs(head: pd.DataFrame) -> None:
    flat = np.zeros(10)
    with pytest.raises(ValueError, match="candles is empty"):
        backtest(head.iloc[:0], [])
    unsorted = head.iloc[[0, 1, 3, 2, 4, 5, 6, 7, 8, 9]].reset_index(drop=True)
    with pytest.raises(ValueError, match=r"row 3 ts=1577844000000 does not come after row 2"):
        backtest(unsorted, flat)
    duplicated = head.iloc[[0, 1, 1, 2, 3, 4, 5, 6, 7, 8]].reset_index(drop=True)
    with pytest.raises(ValueError, match="sorted by ts without duplicates: row 2"):
        backtest(duplicated, flat)
    broken = head.copy()
    broken.loc[4, "close"] = np.nan
    with pytest.raises(ValueError, match=r"candles\.close must be finite and > 0: row 4 close=nan"):
        backtest(broken, flat)
    with pytest.raises(ValueError, match=r"candles must have columns \['ts'\]"):
        backtest(head.drop(columns="ts"), flat)
    with pytest.raises(ValueError, match="fee_bps must be a finite number >= 0; got -1"):
        backtest(head, flat, fee_bps=-1)
    with pytest.raises(ValueError, match="slippage_bps must be a finite number >= 0; got nan"):
        backtest(head, flat, slippage_bps=float("nan"))
    with pytest.raises(ValueError, match="init_cash must be a finite number > 0; got 0"):
        backtest(head, flat, init_cash=0)
    with pytest.raises(ValueError, match="timeframe must be one of"):
        backtest(head, flat, timeframe="7x")
    assert cost_rate(10, 5) == pytest.approx(0.0015)


def test_blocked_layouts_agree_over_the_full_series(btc_1h: pd.DataFrame) -> None:
    # 37k bars x 8 configs spans several cache blocks in both layouts (the carry between blocks).
    close = btc_1h.close.to_numpy()
    momentum = np.zeros((8, close.size))
    for i, h in enumerate((3, 6, 12, 24, 48, 96, 168, 336)):
        momentum[i, h:] = np.clip((close[h:] / close[:-h] - 1) / 0.02, -1, 1)
    by_config = backtest_many(btc_1h, momentum)
    by_bar = backtest_many(btc_1h, np.ascontiguousarray(momentum.T))
    assert np.max(np.abs(by_config.equity / by_bar.equity - 1)) < 1e-12
    single = backtest(btc_1h, momentum[5])
    assert np.array_equal(single.equity, by_config.equity[5])
    # Causal: the first k bars backtested alone give the first k equity values.
    head = backtest(btc_1h.iloc[:20_000], momentum[5, :20_000])
    assert np.array_equal(head.equity, single.equity[:20_000])


def test_flat_positions_cost_nothing(head: pd.DataFrame) -> None:
    result = backtest(head, np.zeros(10), init_cash=100.0)
    assert np.array_equal(result.equity, np.full(10, 100.0))
    assert result.trades.empty and list(result.trades.columns) == list(TRADE_COLUMNS)
    metrics = result.metrics()
    assert metrics["trade_count"] == 0 and metrics["total_return"] == 0.0
    assert metrics["max_drawdown"] == 0.0 and metrics["exposure"] == 0.0
    one_bar = backtest(head.iloc[:1], [1.0])
    assert one_bar.equity.tolist() == [pytest.approx(1 - FEE)] and one_bar.timeframe is None
    with pytest.raises(ValueError, match="metrics need the timeframe"):
        one_bar.metrics()
