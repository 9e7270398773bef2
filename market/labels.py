"""Supervised targets: the forward return over a horizon and its direction.

A label at bar ``t`` is about the future by design (``close[t + h]``), so labels must never be used
as features; the walk-forward splits purge and embargo around them. The last ``horizon`` bars have
no future close yet: they are unlabeled (NaN, and ``labeled`` is False). The known part of the
labels is stable: labels computed on the first ``k`` bars equal the first ``k - horizon`` labels
computed on all bars. The horizon counts rows (bars), as the feature windows do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["direction", "forward_return", "forward_returns", "make_labels"]


def _check_horizon(horizon: int) -> None:
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1; got {horizon!r}")


def _check_threshold(threshold: float) -> None:
    if not (isinstance(threshold, int | float) and np.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be a finite number >= 0; got {threshold!r}")


def forward_returns(close: np.ndarray, horizon: int) -> np.ndarray:
    """``close[t + horizon] / close[t] - 1`` of a float64 array; NaN for the last ``horizon``."""
    _check_horizon(horizon)
    x = np.asarray(close, dtype=np.float64)
    out = np.full(len(x), np.nan)
    if horizon < len(x):
        out[: len(x) - horizon] = x[horizon:] / x[: len(x) - horizon] - 1.0
    return out


def forward_return(close: pd.Series, horizon: int) -> pd.Series:
    """``close[t + horizon] / close[t] - 1``; NaN for the last ``horizon`` bars."""
    values = forward_returns(close.to_numpy(dtype=np.float64), horizon)
    return pd.Series(values, index=close.index, name=close.name, dtype="float64")


def direction(fwd: pd.Series, threshold: float = 0.0) -> pd.Series:
    """1 above ``threshold``, -1 below ``-threshold``, 0 inside the dead band (edges included).

    NaN stays NaN (float dtype, so unlabeled bars are visible).
    """
    _check_threshold(threshold)
    values = fwd.to_numpy(dtype="float64")
    sign = np.where(values > threshold, 1.0, np.where(values < -threshold, -1.0, 0.0))
    return pd.Series(np.where(np.isnan(values), np.nan, sign), index=fwd.index, dtype="float64")


def make_labels(candles: pd.DataFrame, horizon: int, threshold: float = 0.0) -> pd.DataFrame:
    """Labels for every candle (same index): ``ts, fwd_return, direction, labeled``.

    ``direction`` is -1.0/0.0/1.0 (NaN when unlabeled); ``labeled`` is False for the last
    ``horizon`` rows (and for any row whose forward return is undefined).
    """
    for column in ("ts", "close"):
        if column not in candles.columns:
            raise ValueError(f"candles must have a {column!r} column; got {list(candles.columns)}")
    _check_threshold(threshold)
    fwd = forward_return(candles["close"], horizon)
    return pd.DataFrame(
        {
            "ts": candles["ts"],
            "fwd_return": fwd,
            "direction": direction(fwd, threshold),
            "labeled": fwd.notna(),
        },
        index=candles.index,
    )
