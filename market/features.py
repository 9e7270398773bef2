"""Technical features of a candle frame, computed causally and vectorized.

Every value at bar ``t`` uses only bars ``0..t`` (no look-ahead): rolling windows end at ``t``
and the recursive smoothers (EMA, Wilder's RSI and ATR) run forward in time. Computing a feature on
the first ``k`` bars therefore gives exactly the first ``k`` values of the feature computed on all
bars, which the tests check as a property.

Conventions:

- windows are counted in rows (bars), so a data gap inside a window is not bridged by time;
- a value whose window has not filled yet is NaN;
- EMA and Wilder smoothing are seeded like TA-Lib: the first value is the simple mean of the
  first ``n`` inputs, then ``s[t] = s[t-1] + alpha * (x[t] - s[t-1])`` with ``alpha = 2 / (n + 1)``
  (EMA) or ``1 / n`` (Wilder);
- realized volatility is per bar (not annualized: the frame does not carry its timeframe);
  :mod:`market.regimes` annualizes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from market import kernels
from market.series import CANDLE_COLUMNS

logger = logging.getLogger(__name__)

__all__ = [
    "FeatureSpec",
    "atr",
    "bollinger_width",
    "build_features",
    "ema",
    "feature_arrays",
    "log_returns",
    "macd",
    "momentum_rank",
    "realized_volatility",
    "returns",
    "rsi",
    "sma",
    "true_range",
    "volume_zscore",
]


_check_window = kernels.check_window


def _check_candles(candles: pd.DataFrame) -> None:
    missing = [column for column in CANDLE_COLUMNS if column not in candles.columns]
    if missing:
        raise ValueError(
            f"candles must have columns {', '.join(CANDLE_COLUMNS)}; missing {', '.join(missing)}"
        )


def _array(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype=np.float64)


def _like(values: np.ndarray, series: pd.Series) -> pd.Series:
    """``values`` on ``series``' index and name."""
    return pd.Series(values, index=series.index, name=series.name, dtype="float64")


def returns(close: pd.Series, periods: int = 1) -> pd.Series:
    """Simple return over ``periods`` bars: ``close[t] / close[t - periods] - 1``."""
    return _like(kernels.returns(_array(close), periods), close)


def log_returns(close: pd.Series, periods: int = 1) -> pd.Series:
    """Log return over ``periods`` bars: ``log(close[t] / close[t - periods])``."""
    return _like(kernels.log_returns(_array(close), periods), close)


def sma(values: pd.Series, window: int) -> pd.Series:
    """Simple moving average of the last ``window`` bars (NaN until the window fills)."""
    _check_window("window", window)
    return _like(kernels.rolling_mean(_array(values), window), values)


def ema(values: pd.Series, window: int) -> pd.Series:
    """Exponential moving average, ``alpha = 2 / (window + 1)``, seeded with the first SMA."""
    return _like(kernels.ema(_array(values), window), values)


def true_range(high: pd.Series, low: pd.Series, close: pd.Series) -> pd.Series:
    """``max(high, prev_close) - min(low, prev_close)``; NaN on the first bar (no prior close)."""
    return _like(kernels.true_range(_array(high), _array(low), _array(close)), close)


def atr(high: pd.Series, low: pd.Series, close: pd.Series, window: int = 14) -> pd.Series:
    """Wilder's average true range; the first value is at bar ``window`` (TA-Lib's convention)."""
    return _like(kernels.atr(_array(high), _array(low), _array(close), window), close)


def rsi(close: pd.Series, window: int = 14) -> pd.Series:
    """Wilder's relative strength index in [0, 100]; the first value is at bar ``window``.

    A window without losses reads 100, one without any move at all reads 50.
    """
    return _like(kernels.rsi(_array(close), window), close)


def macd(
    close: pd.Series, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """MACD line ``ema(fast) - ema(slow)``, its signal ``ema(line, signal)`` and the histogram."""
    line, sig, hist = kernels.macd(_array(close), fast, slow, signal)
    return _like(line, close), _like(sig, close), _like(hist, close)


def bollinger_width(close: pd.Series, window: int = 20, k: float = 2.0) -> pd.Series:
    """Band width ``(upper - lower) / middle = 2 k std / sma`` (population std, as Bollinger's)."""
    return _like(kernels.bollinger_width(_array(close), window, k), close)


def realized_volatility(close: pd.Series, window: int = 24) -> pd.Series:
    """Sample standard deviation of the last ``window`` one-bar log returns (per bar)."""
    return _like(kernels.realized_volatility(_array(close), window), close)


def volume_zscore(volume: pd.Series, window: int = 24) -> pd.Series:
    """``(volume - mean) / std`` over the last ``window`` bars, the current bar included.

    A window of constant volume (std 0) reads 0: the bar equals its mean.
    """
    return _like(kernels.volume_zscore(_array(volume), window), volume)


@dataclass(frozen=True)
class FeatureSpec:
    """The windows :func:`build_features` uses (all in bars)."""

    sma: tuple[int, ...] = (20, 50)
    ema: tuple[int, ...] = (12, 26)
    rsi: int = 14
    atr: int = 14
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9
    bb: int = 20
    bb_k: float = 2.0
    vol: int = 24
    vz: int = 24

    def __post_init__(self) -> None:
        for name in ("sma", "ema"):
            if isinstance(getattr(self, name), list):  # from YAML or JSON
                object.__setattr__(self, name, tuple(getattr(self, name)))
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "bb_k":
                if not (isinstance(value, int | float) and value > 0):
                    raise ValueError(f"features.bb_k must be > 0; got {value!r}")
            elif isinstance(value, tuple):
                for item in value:
                    _check_window(f"features.{field.name}", item)
            else:
                minimum = 2 if field.name in ("vol", "vz") else 1
                _check_window(f"features.{field.name}", value, minimum)
        if self.macd_fast >= self.macd_slow:
            raise ValueError(
                f"features.macd_fast must be below features.macd_slow ({self.macd_slow}); "
                f"got {self.macd_fast}"
            )


def feature_arrays(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    spec: FeatureSpec | None = None,
) -> dict[str, np.ndarray]:
    """:func:`build_features`' columns (``ts`` aside) of float64 arrays, with no pandas in
    between: what the feature banks and the live service call."""
    spec = spec or FeatureSpec()
    out = {"ret_1": kernels.returns(close), "logret_1": kernels.log_returns(close)}
    for n in spec.sma:
        kernels.check_window("window", n)
        out[f"sma_{n}"] = kernels.rolling_mean(close, n)
    for n in spec.ema:
        out[f"ema_{n}"] = kernels.ema(close, n)
    out[f"rsi_{spec.rsi}"] = kernels.rsi(close, spec.rsi)
    out[f"atr_{spec.atr}"] = kernels.atr(high, low, close, spec.atr)
    line, signal, hist = kernels.macd(close, spec.macd_fast, spec.macd_slow, spec.macd_signal)
    out["macd"], out["macd_signal"], out["macd_hist"] = line, signal, hist
    out[f"bb_width_{spec.bb}"] = kernels.bollinger_width(close, spec.bb, spec.bb_k)
    out[f"rv_{spec.vol}"] = kernels.realized_volatility(close, spec.vol)
    out[f"vz_{spec.vz}"] = kernels.volume_zscore(volume, spec.vz)
    return out


def build_features(candles: pd.DataFrame, spec: FeatureSpec | None = None) -> pd.DataFrame:
    """All features of ``candles``, one row per candle (same index), ``ts`` first.

    Columns: ``ret_1, logret_1, sma_<n>..., ema_<n>..., rsi_<n>, atr_<n>, macd, macd_signal,
    macd_hist, bb_width_<n>, rv_<n>, vz_<n>``.
    """
    _check_candles(candles)
    high, low, close, volume = (_array(candles[c]) for c in ("high", "low", "close", "volume"))
    arrays = feature_arrays(high, low, close, volume, spec)
    frame = pd.DataFrame({"ts": candles["ts"], **arrays}, index=candles.index)
    logger.debug("built %d feature columns on %d candles", frame.shape[1] - 1, len(frame))
    return frame


def momentum_rank(closes: pd.DataFrame, lookback: int) -> pd.DataFrame:
    """Cross-sectional rank of each symbol's ``lookback``-bar return, per timestamp, in [0, 1].

    ``closes`` has one row per timestamp and one column per symbol. At each row the symbols with a
    return are ranked (ties share the average rank) and scaled so the worst reads 0 and the best 1;
    a row with a single ranked symbol reads 0.5. A symbol without a return yet (history shorter than
    ``lookback``, or a missing close) is NaN and does not take part in that row's ranking.
    """
    _check_window("lookback", lookback)
    x = closes.astype("float64")
    momentum = x / x.shift(lookback) - 1.0
    ranks = momentum.rank(axis=1, method="average")
    count = momentum.notna().sum(axis=1)
    scaled = ranks.sub(1.0).div(count.sub(1).where(count > 1), axis=0)
    single = count == 1
    if single.any():
        scaled.loc[single] = ranks.loc[single].where(ranks.loc[single].isna(), 0.5)
    return scaled
