"""Benchmark the backtest grid: Redline's 2-D path against vectorbt on the same position series.

Run from the repo root with the venv's python:  .venv/bin/python benchmarks/backtest.py [--quick]

- Inputs: the real BTC/USDT 1h candles (37,216 bars, ../shared/data) and 500 momentum strategies on
  them (``momentum_grid``: 25 horizons x 10 thresholds x 2 styles, fractional and -1/0/+1, long and
  short); 10 bps fee and 5 bps slippage.
- Redline: ``backtest_many`` equity for all configs (best of 3), then its metrics; one series alone.
- vectorbt, same inputs, numba warmed up first: the plain ``Portfolio.from_orders(targetpercent)``
  call plus ``value()`` (its cheapest equity; a slightly different cost convention, see
  market/backtest.py), which is the speed reported as vs_vectorbt; and the exact mapping
  (``vectorbt_orders``: 3 orders per bar and a cash-buffer column) whose equity must be identical,
  which gives max_rel_err. --quick runs vectorbt on fewer configs (printed). vectorbt keeps cash
  as a running sum, so its rounding is ~1e-16 of the largest equity it has held: grids that churn
  hourly at 15 bps and lose 1e5-fold from a peak drift on vectorbt's side beyond 1e-9, which is why
  the grid's horizons start at a day (tests/market/test_oracle_vectorbt.py says more).
- Memory bandwidth: a numpy copy of the positions' bytes; the grid reads positions and writes
  equity, the same traffic as the copy, so bandwidth_fraction = copy time / grid time.

The last line is ``RESULT vs_vectorbt=... max_rel_err=... grid_config_candles_per_s=...
bandwidth_fraction=...``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from market.backtest import backtest, backtest_many, cost_rate, vectorbt_orders  # noqa: E402
from market.files import read_candle_file  # noqa: E402

DATA = Path(os.environ.get("REDLINE_SHARED_DATA", REPO.parent / "shared" / "data"))
FEE_BPS, SLIPPAGE_BPS = 10.0, 5.0
VBT_CASH = 1e9  # vectorbt ignores orders under 1e-12 units; see market.backtest.vectorbt_orders


def momentum_grid(close: np.ndarray) -> np.ndarray:
    """500 (configs, bars) position series: 25 horizons x 10 thresholds x 2 styles, causal.

    The h-bar return m (h from 1 to 60 days) against a threshold (1% to 20%): a -1/0/+1 band
    re-decided every hour, and a fractional clip(m / threshold, -1, 1) in steps of 0.1 re-decided
    once a day (at 00:00 UTC, held for the day).
    """
    n_bars = close.size
    horizons = np.unique(np.geomspace(24, 1440, 25).round().astype(int))
    thresholds = np.geomspace(0.01, 0.2, 10)
    daily = np.arange(n_bars) // 24 * 24  # the series starts at 00:00 UTC
    rows = []
    for h in horizons:
        momentum = np.zeros_like(close)
        momentum[h:] = close[h:] / close[:-h] - 1.0  # known at the close of bar t
        for theta in thresholds:
            rows.append(np.where(momentum > theta, 1.0, np.where(momentum < -theta, -1.0, 0.0)))
            rows.append((np.round(np.clip(momentum / theta, -1.0, 1.0) * 10) / 10)[daily])
    return np.ascontiguousarray(np.stack(rows))


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, out = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def vbt_plain(vbt: Any, close: np.ndarray, positions: np.ndarray) -> np.ndarray:
    pf = vbt.Portfolio.from_orders(
        close[:, None], size=positions.T, size_type="targetpercent", direction="both",
        fees=cost_rate(FEE_BPS, SLIPPAGE_BPS), init_cash=VBT_CASH,
    )  # fmt: skip
    return np.asarray(pf.value()).T / VBT_CASH


def vbt_exact(vbt: Any, close: np.ndarray, positions: np.ndarray, chunk: int = 25) -> np.ndarray:
    parts = []
    for a in range(0, len(positions), chunk):
        orders = vectorbt_orders(
            close, positions[a : a + chunk], fee_bps=FEE_BPS, slippage_bps=SLIPPAGE_BPS
        )
        parts.append(orders.equity(vbt.Portfolio.from_orders(**orders.kwargs)))
    return np.concatenate(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="vectorbt on fewer configs")
    parser.add_argument("--configs", type=int, default=500)
    parser.add_argument("--vbt-configs", type=int, default=None, help="default 500, quick 100")
    args = parser.parse_args()
    vbt_configs = args.vbt_configs or (100 if args.quick else 500)

    candles = read_candle_file(DATA / "binance_BTC-USDT_1h.csv.gz")
    close = candles["close"].to_numpy()
    positions = momentum_grid(close)[: args.configs]
    n_configs, n_bars = positions.shape
    cells = n_configs * n_bars
    print(f"candles: BTC/USDT 1h, {n_bars} bars; configs: {n_configs} momentum variants; "
          f"fee {FEE_BPS} bps + slippage {SLIPPAGE_BPS} bps")  # fmt: skip

    def grid(p: np.ndarray) -> np.ndarray:
        return backtest_many(candles, p, fee_bps=FEE_BPS, slippage_bps=SLIPPAGE_BPS).equity

    grid(positions[:2])
    t_grid, equity = best_of(3, lambda: grid(positions))
    grid_rate = cells / t_grid
    print(f"redline grid equity: {t_grid:.3f} s = {grid_rate:,.0f} config-candles/s")
    many = backtest_many(candles, positions, fee_bps=FEE_BPS, slippage_bps=SLIPPAGE_BPS)
    t_metrics, _ = best_of(1, lambda: many.metrics)
    print(f"redline grid metrics ({len(many.metrics)} per config, trades included): "
          f"{t_metrics:.3f} s more")  # fmt: skip
    t_one, one = best_of(3, lambda: backtest(candles, positions[1], fee_bps=FEE_BPS,
                                             slippage_bps=SLIPPAGE_BPS))  # fmt: skip
    t_one_grid, _ = best_of(5, lambda: grid(positions[1:2]))
    print(
        f"one series alone: backtest() with {len(one.trades)} trades {t_one * 1e3:.1f} ms; "
        f"equity only {t_one_grid * 1e3:.2f} ms = {n_bars / t_one_grid:,.0f} candles/s"
    )

    copy_target = np.empty_like(positions)
    t_copy, _ = best_of(5, lambda: np.copyto(copy_target, positions))
    print(f"numpy copy of the same {positions.nbytes / 1e6:.0f} MB: {t_copy * 1e3:.1f} ms "
          f"({2 * positions.nbytes / t_copy / 1e9:.1f} GB/s read+write); "
          f"grid {2 * positions.nbytes / t_grid / 1e9:.1f} GB/s")  # fmt: skip

    import vectorbt as vbt

    subset = positions[:vbt_configs]
    sub_cells = subset.size
    start = time.perf_counter()
    vbt_plain(vbt, close[:200], subset[:2, :200])
    vbt_exact(vbt, close[:200], subset[:2, :200])
    print(f"vectorbt {vbt.__version__}: numba warmed up (compiled / loaded from cache) in "
          f"{time.perf_counter() - start:.1f} s")  # fmt: skip
    t_vbt_one, _ = best_of(3, lambda: vbt_plain(vbt, close, subset[1:2]))
    print(f"one series alone, vectorbt plain call: {t_vbt_one * 1e3:.1f} ms "
          f"({t_vbt_one / t_one_grid:.0f}x Redline's equity-only time)")  # fmt: skip
    t_ours_sub, ours_sub = best_of(3, lambda: grid(subset))
    t_plain, plain = best_of(1, lambda: vbt_plain(vbt, close, subset))
    t_exact, exact = best_of(1, lambda: vbt_exact(vbt, close, subset))
    plain_err = float(np.max(np.abs(ours_sub / plain - 1)))
    max_rel_err = float(np.max(np.abs(ours_sub / exact - 1)))
    vs_plain = t_plain / t_ours_sub
    print(f"vectorbt on {vbt_configs} configs x {n_bars} bars: plain targetpercent "
          f"{t_plain:.2f} s = {sub_cells / t_plain:,.0f} config-candles/s (differs by "
          f"{plain_err:.2g}: fees on drift, cash-limited buys)")  # fmt: skip
    print(
        f"vectorbt exact mapping (identical results): {t_exact:.2f} s = "
        f"{sub_cells / t_exact:,.0f} config-candles/s; max relative error {max_rel_err:.2g}"
    )
    print(
        f"redline on the same {vbt_configs} configs: {t_ours_sub:.3f} s; "
        f"{vs_plain:.1f}x the plain vectorbt call, {t_exact / t_ours_sub:.1f}x the exact mapping"
    )
    assert np.array_equal(ours_sub, equity[:vbt_configs])
    print(
        f"RESULT vs_vectorbt={vs_plain:.1f} max_rel_err={max_rel_err:.2g} "
        f"grid_config_candles_per_s={grid_rate:.3g} bandwidth_fraction={t_copy / t_grid:.3f}"
    )


if __name__ == "__main__":
    pd.set_option("display.width", 120)
    main()
