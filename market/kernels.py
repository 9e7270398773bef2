"""The array maths under :mod:`market.features`: float64 arrays in, float64 arrays out.

:mod:`market.features` is the API (pandas Series in and out, the conventions in its docstring);
the feature banks and the live service call these directly. For 500 candles a pandas expression
costs more in its own bookkeeping (index alignment, dtype checks, a new Series per step) than in
arithmetic (``benchmarks/data.py`` and ``benchmarks/serve.py`` measure the difference), which is
what lets ``/v1/predict`` compute a new candle set's features per request.

**The same numbers as pandas, bit for bit.** Rolling windows and the exponential smoother run on
pandas' own compiled window kernels (``pandas._libs.window.aggregations``: ``roll_mean``,
``roll_sum``, ``roll_var``, ``ewm``), called with the bounds, minimum periods and input
preparation (float64, infinities read as NaN) that ``Series.rolling(n, min_periods=n)`` and
``Series.ewm(alpha=a, adjust=False, ignore_na=True)`` use; shifts, differences and ratios are the
numpy element-wise operations pandas applies underneath. ``tests/market/test_kernels.py`` holds the
pandas formulations and checks equality with ``assert_array_equal`` on real candles. That module is
private to pandas, so ``constraints.txt`` pins pandas and that test is the guard on an upgrade.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import numpy.typing as npt
from pandas._libs.window import aggregations as _windows  # type: ignore[attr-defined]

__all__ = [
    "atr",
    "bollinger_width",
    "check_window",
    "diff",
    "ema",
    "log_returns",
    "macd",
    "realized_volatility",
    "returns",
    "rolling_mean",
    "rolling_std",
    "rolling_sum",
    "rsi",
    "seeded_smoother",
    "shift",
    "true_range",
    "volume_zscore",
]

Array = npt.NDArray[np.float64]


def check_window(name: str, value: int, minimum: int = 1) -> None:
    """A window or period must be an integer >= ``minimum`` (ValueError naming it otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")


def _prepared(values: npt.ArrayLike) -> Array:
    """What pandas hands its window kernels: contiguous float64, infinities as NaN."""
    x = np.ascontiguousarray(values, dtype=np.float64)
    inf = np.isinf(x)
    return np.where(inf, np.nan, x) if inf.any() else x


@functools.lru_cache(maxsize=256)
def _bounds(n: int, window: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Trailing fixed windows ``[t - window + 1, t]`` (pandas' FixedWindowIndexer); remembered
    per (length, window), read-only, since a service sees the same few again and again."""
    end = np.arange(1, n + 1, dtype=np.int64)
    start = np.maximum(end - window, 0)
    start.flags.writeable = end.flags.writeable = False
    return start, end


def shift(x: Array, periods: int) -> Array:
    """``x`` moved ``periods`` rows later, NaN in front (``Series.shift``)."""
    out = np.full(len(x), np.nan)
    if periods < len(x):
        out[periods:] = x[: len(x) - periods]
    return out


def diff(x: Array, periods: int = 1) -> Array:
    """``x[t] - x[t - periods]``, NaN in front (``Series.diff``)."""
    with np.errstate(invalid="ignore"):  # inf - inf is NaN, as in pandas
        return x - shift(x, periods)


def _rolling(kernel: Any, x: Array, window: int, **options: Any) -> Array:
    """pandas' compiled ``kernel`` over trailing windows of ``window`` rows, ``window`` of them
    required (``Series.rolling(window, min_periods=window)``)."""
    if len(x) == 0:
        return np.asarray(x, dtype=np.float64).copy()
    start, end = _bounds(len(x), window)
    return np.asarray(kernel(_prepared(x), start, end, window, **options))


def rolling_mean(x: Array, window: int) -> Array:
    """Mean of the last ``window`` rows, NaN until the window holds ``window`` values."""
    return _rolling(_windows.roll_mean, x, window)


def rolling_sum(x: Array, window: int) -> Array:
    """Sum of the last ``window`` rows, NaN until the window holds ``window`` values."""
    return _rolling(_windows.roll_sum, x, window)


def rolling_std(x: Array, window: int, ddof: int = 1) -> Array:
    """Standard deviation of the last ``window`` rows (a rounding-negative variance reads 0)."""
    var = _rolling(_windows.roll_var, x, window, ddof=ddof)
    with np.errstate(invalid="ignore"):
        out = np.sqrt(var)
        out[var < 0] = 0.0
    return out


def _nanmean(values: Array, nan: npt.NDArray[np.bool_]) -> float:
    """pandas' ``Series.mean()`` of ``values`` whose NaN mask is ``nan``: NaN skipped (filled
    with 0 and not counted)."""
    if nan.any():
        count = int((~nan).sum())
        return float(np.where(nan, 0.0, values).sum() / count) if count else np.nan
    return float(values.sum() / len(values))


_EWM_START = np.zeros(1, dtype=np.int64)
_EWM_START.flags.writeable = False


def seeded_smoother(values: Array, window: int, alpha: float) -> Array:
    """Exponential smoothing seeded with the mean of the first ``window`` valid inputs.

    Leading NaN (e.g. the first bar of a difference) are skipped; the seed sits at the bar where the
    first full window ends, so it only uses bars up to that one. Then ``s[t] = s[t-1] + alpha *
    (x[t] - s[t-1])``, decaying by observation (a NaN input is skipped, not decayed over).
    """
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    nan = np.isnan(x)
    if n and not nan[0]:
        first = 0
    else:
        valid = np.flatnonzero(~nan)
        if len(valid) == 0:
            return np.full(n, np.nan)
        first = int(valid[0])
    seed_at = first + window - 1
    if seed_at >= n:
        return np.full(n, np.nan)
    seeded = x.copy()
    seeded[:seed_at] = np.nan
    seeded[seed_at] = _nanmean(x[first : seed_at + 1], nan[first : seed_at + 1])
    com = (1.0 - alpha) / alpha  # pandas' centre of mass for ``alpha``
    end = np.array([n], dtype=np.int64)
    return np.asarray(
        _windows.ewm(_prepared(seeded), _EWM_START, end, 1, com, False, True, None, True)
    )


def returns(close: Array, periods: int = 1) -> Array:
    """Simple return over ``periods`` bars: ``close[t] / close[t - periods] - 1``."""
    check_window("periods", periods)
    return close / shift(close, periods) - 1.0


def log_returns(close: Array, periods: int = 1) -> Array:
    """Log return over ``periods`` bars: ``log(close[t] / close[t - periods])``."""
    check_window("periods", periods)
    return diff(np.log(close), periods)


def ema(values: Array, window: int) -> Array:
    """Exponential moving average, ``alpha = 2 / (window + 1)``, seeded with the first SMA."""
    check_window("window", window)
    return seeded_smoother(values, window, 2.0 / (window + 1))


def true_range(high: Array, low: Array, close: Array) -> Array:
    """``max(high, prev_close) - min(low, prev_close)``; NaN on the first bar (no prior close)."""
    prev = shift(close, 1)
    tr = np.fmax(high, prev) - np.fmin(low, prev)
    return np.where(np.isnan(prev), np.nan, tr)


def atr(high: Array, low: Array, close: Array, window: int = 14) -> Array:
    """Wilder's average true range; the first value is at bar ``window`` (TA-Lib's convention)."""
    check_window("window", window)
    return seeded_smoother(true_range(high, low, close), window, 1.0 / window)


def rsi(close: Array, window: int = 14) -> Array:
    """Wilder's relative strength index in [0, 100]; the first value is at bar ``window``.

    A window without losses reads 100, one without any move at all reads 50.
    """
    check_window("window", window)
    delta = diff(close)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = seeded_smoother(np.where(delta < 0.0, 0.0, delta), window, 1.0 / window)
        lo = seeded_smoother(np.where(-delta < 0.0, 0.0, -delta), window, 1.0 / window)
        value = 100.0 - 100.0 / (1.0 + g / lo)
    value = np.where(lo == 0.0, np.where(g == 0.0, 50.0, 100.0), value)
    return np.where(np.isnan(g) | np.isnan(lo), np.nan, value)


def macd(
    close: Array, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[Array, Array, Array]:
    """MACD line ``ema(fast) - ema(slow)``, its signal ``ema(line, signal)`` and the histogram."""
    check_window("fast", fast)
    check_window("slow", slow)
    check_window("signal", signal)
    if fast >= slow:
        raise ValueError(f"macd fast window must be below the slow one ({slow}); got {fast}")
    line = ema(close, fast) - ema(close, slow)
    sig = ema(line, signal)
    return line, sig, line - sig


def bollinger_width(close: Array, window: int = 20, k: float = 2.0) -> Array:
    """Band width ``(upper - lower) / middle = 2 k std / sma`` (population std, as Bollinger's)."""
    check_window("window", window)
    if not k > 0:
        raise ValueError(f"bollinger k must be > 0; got {k!r}")
    return 2.0 * k * rolling_std(close, window, ddof=0) / rolling_mean(close, window)


def realized_volatility(close: Array, window: int = 24) -> Array:
    """Sample standard deviation of the last ``window`` one-bar log returns (per bar)."""
    check_window("window", window, minimum=2)
    return rolling_std(log_returns(close), window, ddof=1)


def volume_zscore(volume: Array, window: int = 24) -> Array:
    """``(volume - mean) / std`` over the last ``window`` bars, the current bar included.

    A window of constant volume (std 0) reads 0: the bar equals its mean.
    """
    check_window("window", window, minimum=2)
    mean = rolling_mean(volume, window)
    std = rolling_std(volume, window, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (volume - mean) / std
    return np.where(std == 0.0, 0.0, z)
