"""vectorbt as the oracle: random position series on real BTC and ETH 1h candles, equal to 1e-9.

The suite runs 50 series x 5,000 bars per symbol; the issue's full check is
``REDLINE_ORACLE_SERIES=1000 REDLINE_ORACLE_BARS=0 pytest tests/market/test_oracle_vectorbt.py``
(0 bars = the whole series). The mapping is ``market.backtest.vectorbt_orders``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market.backtest import backtest_many, vectorbt_orders

vbt = pytest.importorskip("vectorbt")

N_SERIES = int(os.environ.get("REDLINE_ORACLE_SERIES", "50"))
N_BARS = int(os.environ.get("REDLINE_ORACLE_BARS", "5000"))
CHUNK = 25  # configs per vectorbt call: its order records grow with rows x columns
REL = 1e-9


def random_positions(rng: np.random.Generator, n_series: int, n_bars: int) -> np.ndarray:
    """Fractional long and short positions, exact 0 and +-1, held for random runs of bars.

    Each series changes position with its own probability per bar, log-uniform in [0.2%, 10%]
    (a change every 10 to 500 hours). Far faster churn at 15 bps loses everything (e^-37 over
    37k bars when changing every bar); vectorbt keeps cash as a running sum, so its own rounding
    is about 1e-16 of the largest equity it has held, and past a 1e5-fold loss from a peak it is
    vectorbt that drifts beyond 1e-9 (Redline compounds ratios and stays near 1e-13).
    """
    shape = (n_series, n_bars)
    p = rng.uniform(-1.0, 1.0, shape)
    p[rng.random(shape) < 0.25] = 0.0
    p[rng.random(shape) < 0.1] = 1.0
    p[rng.random(shape) < 0.1] = -1.0
    rate = np.exp(rng.uniform(np.log(0.002), np.log(0.1), (n_series, 1)))
    start = np.where(rng.random(shape) < rate, np.arange(n_bars), 0)
    return np.take_along_axis(p, np.maximum.accumulate(start, axis=1), axis=1)


@pytest.fixture(scope="module", params=["BTC", "ETH"])
def case(request: pytest.FixtureRequest, shared_data: Path) -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.read_csv(shared_data / f"binance_{request.param}-USDT_1h.csv.gz")
    candles = frame.rename(columns={"timestamp": "ts"})
    if N_BARS:
        candles = candles.iloc[-N_BARS:].reset_index(drop=True)
    seed = {"BTC": 20240331, "ETH": 20200101}[request.param]
    return candles, random_positions(np.random.default_rng(seed), N_SERIES, len(candles))


def vectorbt_equity(close: np.ndarray, positions: np.ndarray, **costs: float) -> np.ndarray:
    parts = []
    for a in range(0, len(positions), CHUNK):
        orders = vectorbt_orders(close, positions[a : a + CHUNK], init_cash=1.0, **costs)
        parts.append(orders.equity(vbt.Portfolio.from_orders(**orders.kwargs)))
    return np.concatenate(parts)


def assert_equal_rel(ours: np.ndarray, theirs: np.ndarray) -> None:
    worst = float(np.max(np.abs(ours / theirs - 1.0)))
    assert worst <= REL, f"max relative difference {worst:.3g}"


def test_equity_and_total_return_with_fee_and_slippage(
    case: tuple[pd.DataFrame, np.ndarray],
) -> None:
    candles, positions = case
    close = candles.close.to_numpy()
    grid = backtest_many(candles, positions, fee_bps=10, slippage_bps=5)
    theirs = vectorbt_equity(close, positions, fee_bps=10, slippage_bps=5)
    assert theirs.shape == grid.equity.shape
    assert_equal_rel(grid.equity, theirs)
    assert_equal_rel(1 + grid.total_return, theirs[:, -1])
    assert grid.total_return == pytest.approx(theirs[:, -1] - 1, rel=1e-9, abs=1e-12)
    # The costs matter: without them the equity is far from vectorbt's.
    free = backtest_many(candles, positions, fee_bps=0)
    assert np.max(np.abs(free.equity / theirs - 1)) > 1e-3


def test_without_costs_plain_target_percent_is_exact(case: tuple[pd.DataFrame, np.ndarray]) -> None:
    candles, positions = case
    positions = positions[:10]
    close = candles.close.to_numpy()
    orders = vectorbt_orders(close, positions, fee_bps=0, slippage_bps=0)
    assert orders.rows_per_bar == 1  # one targetpercent order per bar, no cash buffer
    pf = vbt.Portfolio.from_orders(**orders.kwargs)
    assert_equal_rel(backtest_many(candles, positions, fee_bps=0).equity, orders.equity(pf))
    # That is the plain call; vectorbt ignores orders under 1e-12 units (its abs_tol), which at
    # 1.0 of cash and a 10,000+ USD asset drops real rebalancing trades, hence the cash scaling.
    ours = backtest_many(candles, positions, fee_bps=0).equity
    for cash, exact in ((1e9, True), (1.0, False)):
        plain = vbt.Portfolio.from_orders(
            close[:, None], size=positions.T, size_type="targetpercent", direction="both",
            init_cash=cash,
        )  # fmt: skip
        worst = np.max(np.abs(ours / (np.asarray(plain.value()).T / cash) - 1))
        assert (worst <= REL) == exact, worst


def test_slippage_alone_equals_vectorbt_price_slippage(
    case: tuple[pd.DataFrame, np.ndarray],
) -> None:
    candles, positions = case
    positions = positions[:10]
    close = candles.close.to_numpy()
    orders = vectorbt_orders(close, positions, fee_bps=0, slippage_bps=8)
    kwargs = orders.kwargs | {"slippage": orders.kwargs["fees"], "fees": 0.0}
    theirs = orders.equity(vbt.Portfolio.from_orders(**kwargs))
    assert_equal_rel(backtest_many(candles, positions, fee_bps=0, slippage_bps=8).equity, theirs)


def test_why_the_plain_mapping_is_not_used_with_fees(case: tuple[pd.DataFrame, np.ndarray]) -> None:
    """vectorbt's plain targetpercent pays fees on drift rebalancing and cannot pay a 100% long's
    fee from cash: a different convention, off by far more than 1e-9."""
    candles, positions = case
    positions = positions[:5]
    close = candles.close.to_numpy()
    plain = vbt.Portfolio.from_orders(
        close[:, None], size=positions.T, size_type="targetpercent", direction="both",
        fees=0.001, init_cash=1e9,
    )  # fmt: skip
    ours = backtest_many(candles, positions, fee_bps=10).equity
    assert np.max(np.abs(ours / (np.asarray(plain.value()).T / 1e9) - 1)) > 1e-4
