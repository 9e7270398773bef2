"""The baselines every strategy is reported beside: buy-and-hold and an SMA crossover.

Both return a position series (one value per candle) under ``market.backtest``'s convention: the
value at bar t is decided from closes up to and including bar t and held to the next close. Both are
causal: computed on the first k candles they equal the first k values computed on all candles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from market.features import sma

BASELINES: tuple[str, ...] = ("buy_and_hold", "sma_cross")


def _close(candles: pd.DataFrame | np.ndarray) -> pd.Series:
    if isinstance(candles, pd.DataFrame):
        if "close" not in candles:
            raise ValueError(f"candles must have a 'close' column; got {list(candles.columns)}")
        return candles["close"].astype("float64").reset_index(drop=True)
    close = np.asarray(candles, dtype=np.float64)
    if close.ndim != 1:
        raise ValueError(f"close must be 1-D; got shape {close.shape}")
    return pd.Series(close)


def buy_and_hold(candles: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Fully long from the close of the first bar to the end: all ones."""
    return np.ones(len(_close(candles)))


def sma_cross(candles: pd.DataFrame | np.ndarray, fast: int = 20, slow: int = 50) -> np.ndarray:
    """Long-only: 1.0 while SMA(fast) of closes is above SMA(slow), else 0.0 (flat).

    Flat until the slow average has a full window. Ties (equal averages) are flat.
    """
    for name, value in (("fast", fast), ("slow", slow)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    if fast >= slow:
        raise ValueError(f"fast must be smaller than slow; got fast={fast}, slow={slow}")
    close = _close(candles)
    above = (sma(close, fast) > sma(close, slow)).to_numpy()  # NaN compares False: flat
    return above.astype(np.float64)


def baseline_positions(
    candles: pd.DataFrame | np.ndarray, *, fast: int = 20, slow: int = 50
) -> dict[str, np.ndarray]:
    """Both baselines' positions, keyed by the names in ``BASELINES``."""
    return {"buy_and_hold": buy_and_hold(candles), "sma_cross": sma_cross(candles, fast, slow)}
