"""Supervised targets: the forward return over a horizon and its direction.

A label at bar ``t`` is about the future by design (``close[t + h]``), so labels must never be used
as features; the walk-forward splits purge and embargo around them. The last ``horizon`` bars have
no future close yet: they are unlabeled (NaN, and ``labeled`` is False). The known part of the
labels is stable: labels computed on the first ``k`` bars equal the first ``k - horizon`` labels
computed on all bars. The horizon counts rows (bars), as the feature windows do.

Beside the plain forward return, three targets a child may learn (``agents.training``'s ``label``
and ``primary`` genes), each a pure function of closes:

- :func:`volscaled_returns`: the forward return divided by the trailing realized volatility known
  at ``t`` (:func:`trailing_volatility`, past one-bar log returns only), scaled to the horizon
  (``sigma_t * sqrt(horizon)``), so a calm hour and a crash weigh alike;
- :func:`triple_barrier`: +1 / -1 / 0 by which of the upper barrier ``close_t * (1 + width_t)``,
  the lower ``close_t * (1 - width_t)`` or the time barrier (``horizon`` bars) the closes
  ``t + 1 .. t + horizon`` reach first (a touch counts: ``>=`` / ``<=``);
  :func:`triple_barrier_labels` sets ``width_t = k * sigma_t * sqrt(horizon)``;
- :func:`primary_signal`: the sign (-1, 0, +1) of a simple rule a meta-labelling child decides
  whether to follow: ``sma_cross`` (``SMA(fast) - SMA(slow)`` of the closes up to ``t``) or
  ``momentum`` (``close_t / close_{t - window} - 1``); 0 while its windows fill.

Every label of row ``t`` reads closes up to ``t + horizon`` at most (the split's purge holds for
all of them); volatilities and primary signals read closes up to ``t`` only. Windows are computed
over exactly their own bars (no running sums), so a value does not depend on where the series
starts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "LABELS",
    "PRIMARY_RULES",
    "VOL_WINDOW",
    "direction",
    "forward_return",
    "forward_returns",
    "make_labels",
    "primary_signal",
    "trailing_volatility",
    "triple_barrier",
    "triple_barrier_labels",
    "volscaled_returns",
]

LABELS: tuple[str, ...] = ("fwd", "volscaled", "triple_barrier")
"""The targets a child may learn (``agents.training``'s ``label`` gene)."""
PRIMARY_RULES: tuple[str, ...] = ("none", "sma_cross", "momentum")
"""Primary rules a meta-labelling child may follow (``primary`` gene); ``none``: no primary."""
VOL_WINDOW = 24
"""One-bar returns in the trailing volatility of the volscaled and triple-barrier labels."""
SMA_FAST, SMA_SLOW, MOMENTUM_WINDOW = 24, 96, 24


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


def _check_window(name: str, window: int) -> None:
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {window!r}")


def _closes(close: np.ndarray) -> np.ndarray:
    x = np.asarray(close, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"close must be 1-D; got shape {x.shape}")
    return x


def trailing_volatility(close: np.ndarray, window: int = VOL_WINDOW) -> np.ndarray:
    """Sample std (ddof 1) of the ``window`` one-bar log returns ending at ``t`` (closes
    ``t - window .. t``); NaN for the first ``window`` rows (and 1-bar windows: ddof 1 needs 2)."""
    _check_window("window", window)
    x = _closes(close)
    out = np.full(len(x), np.nan)
    if window >= 2 and len(x) > window:
        r = np.diff(np.log(x))
        out[window:] = np.lib.stride_tricks.sliding_window_view(r, window).std(axis=1, ddof=1)
    return out


def volscaled_returns(close: np.ndarray, horizon: int, window: int = VOL_WINDOW) -> np.ndarray:
    """``forward_returns(close, horizon)[t] / (sigma_t * sqrt(horizon))`` with ``sigma_t`` the
    :func:`trailing_volatility` known at ``t``; NaN where either is undefined or ``sigma_t`` is 0."""
    fwd = forward_returns(close, horizon)
    sigma = trailing_volatility(close, window) * np.sqrt(horizon)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sigma > 0, fwd / sigma, np.nan)


def triple_barrier(close: np.ndarray, horizon: int, width: np.ndarray) -> np.ndarray:
    """+1 when the closes ``t + 1 .. t + horizon`` reach ``close_t * (1 + width_t)`` before
    ``close_t * (1 - width_t)``, -1 the other way round, 0 when neither is reached in ``horizon``
    bars; NaN for the last ``horizon`` rows and where ``width_t`` is not finite and > 0."""
    _check_horizon(horizon)
    x = _closes(close)
    w = np.asarray(width, dtype=np.float64)
    if w.shape != x.shape:
        raise ValueError(f"width must have one value per close ({len(x)}); got shape {w.shape}")
    n = len(x)
    out = np.full(n, np.nan)
    m = n - horizon
    if m <= 0:
        return out
    base, half = x[:m], w[:m]
    label = np.zeros(m)
    open_ = np.ones(m, dtype=bool)
    for j in range(1, horizon + 1):
        move = x[j : j + m] / base - 1.0
        up, down = open_ & (move >= half), open_ & (move <= -half)
        label[up], label[down] = 1.0, -1.0
        open_ &= ~(up | down)
    with np.errstate(invalid="ignore"):
        good = np.isfinite(half) & (half > 0)
    out[:m] = np.where(good, label, np.nan)
    return out


def triple_barrier_labels(
    close: np.ndarray, horizon: int, k: float, window: int = VOL_WINDOW
) -> np.ndarray:
    """:func:`triple_barrier` with ``width_t = k * trailing_volatility(close, window)_t *
    sqrt(horizon)``: barriers ``k`` horizon-sized standard deviations away."""
    if isinstance(k, bool) or not (isinstance(k, int | float) and np.isfinite(k) and k > 0):
        raise ValueError(f"barrier k must be a finite number > 0; got {k!r}")
    _check_horizon(horizon)
    width = k * trailing_volatility(close, window) * np.sqrt(horizon)
    return triple_barrier(close, horizon, width)


def _sma(x: np.ndarray, window: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    if len(x) >= window:
        out[window - 1 :] = np.lib.stride_tricks.sliding_window_view(x, window).mean(axis=1)
    return out


def primary_signal(
    close: np.ndarray,
    rule: str,
    *,
    fast: int = SMA_FAST,
    slow: int = SMA_SLOW,
    window: int = MOMENTUM_WINDOW,
) -> np.ndarray:
    """The sign (-1.0, 0.0, +1.0) of ``rule`` at every bar from closes up to that bar (module
    doc); 0.0 while its windows fill. ``none`` is 0.0 everywhere."""
    if rule not in PRIMARY_RULES:
        raise ValueError(f"primary rule must be one of {', '.join(PRIMARY_RULES)}; got {rule!r}")
    x = _closes(close)
    if rule == "none":
        return np.zeros(len(x))
    if rule == "sma_cross":
        _check_window("fast", fast)
        _check_window("slow", slow)
        if fast >= slow:
            raise ValueError(f"fast must be < slow; got fast={fast} slow={slow}")
        gap = _sma(x, fast) - _sma(x, slow)
    else:
        _check_window("window", window)
        gap = np.full(len(x), np.nan)
        gap[window:] = x[window:] / x[:-window] - 1.0
    return np.where(np.isfinite(gap), np.sign(gap), 0.0)
