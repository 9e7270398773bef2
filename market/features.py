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

from market.series import CANDLE_COLUMNS

logger = logging.getLogger(__name__)

__all__ = [
    "FeatureSpec",
    "atr",
    "bollinger_width",
    "build_features",
    "ema",
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


def _check_window(name: str, value: int, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")


def _check_candles(candles: pd.DataFrame) -> None:
    missing = [column for column in CANDLE_COLUMNS if column not in candles.columns]
    if missing:
        raise ValueError(
            f"candles must have columns {', '.join(CANDLE_COLUMNS)}; missing {', '.join(missing)}"
        )


def _float(series: pd.Series) -> pd.Series:
    return series.astype("float64")


def _seeded_smoother(values: pd.Series, window: int, alpha: float) -> pd.Series:
    """Exponential smoothing seeded with the mean of the first ``window`` valid inputs.

    Leading NaN (e.g. the first bar of a difference) are skipped; the seed sits at the bar where the
    first full window ends, so it only uses bars up to that one.
    """
    x = _float(values)
    out = pd.Series(np.nan, index=x.index, dtype="float64")
    valid = np.flatnonzero(x.notna().to_numpy())
    if len(valid) == 0:
        return out
    first = int(valid[0])
    seed_at = first + window - 1
    if seed_at >= len(x):
        return out
    seeded = x.copy()
    seeded.iloc[:seed_at] = np.nan
    seeded.iloc[seed_at] = float(x.iloc[first : seed_at + 1].mean())
    # adjust=False is the causal recursion; ignore_na keeps the decay by observation, not by row.
    return seeded.ewm(alpha=alpha, adjust=False, ignore_na=True).mean()


def returns(close: pd.Series, periods: int = 1) -> pd.Series:
    """Simple return over ``periods`` bars: ``close[t] / close[t - periods] - 1``."""
    _check_window("periods", periods)
    x = _float(close)
    return x / x.shift(periods) - 1.0


def log_returns(close: pd.Series, periods: int = 1) -> pd.Series:
    """Log return over ``periods`` bars: ``log(close[t] / close[t - periods])``."""
    _check_window("periods", periods)
    x = np.log(_float(close))
    return x - x.shift(periods)


def sma(values: pd.Series, window: int) -> pd.Series:
    """Simple moving average of the last ``window`` bars (NaN until the window fills)."""
    _check_window("window", window)
    return _float(values).rolling(window, min_periods=window).mean()


def ema(values: pd.Series, window: int) -> pd.Series:
    """Exponential moving average, ``alpha = 2 / (window + 1)``, seeded with the first SMA."""
    _check_window("window", window)
    return _seeded_smoother(values, window, 2.0 / (window + 1))


def true_range(high: pd.Series, low: pd.Series, close: pd.Series) -> pd.Series:
    """``max(high, prev_close) - min(low, prev_close)``; NaN on the first bar (no prior close)."""
    prev = _float(close).shift(1)
    top = np.fmax(_float(high).to_numpy(), prev.to_numpy())
    bottom = np.fmin(_float(low).to_numpy(), prev.to_numpy())
    tr = pd.Series(top - bottom, index=close.index, dtype="float64")
    return tr.where(prev.notna())


def atr(high: pd.Series, low: pd.Series, close: pd.Series, window: int = 14) -> pd.Series:
    """Wilder's average true range; the first value is at bar ``window`` (TA-Lib's convention)."""
    _check_window("window", window)
    return _seeded_smoother(true_range(high, low, close), window, 1.0 / window)


def rsi(close: pd.Series, window: int = 14) -> pd.Series:
    """Wilder's relative strength index in [0, 100]; the first value is at bar ``window``.

    A window without losses reads 100, one without any move at all reads 50.
    """
    _check_window("window", window)
    delta = _float(close).diff()
    gain = _seeded_smoother(delta.clip(lower=0.0), window, 1.0 / window)
    loss = _seeded_smoother((-delta).clip(lower=0.0), window, 1.0 / window)
    g = gain.to_numpy()
    lo = loss.to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 100.0 - 100.0 / (1.0 + g / lo)
    value = np.where(lo == 0.0, np.where(g == 0.0, 50.0, 100.0), value)
    value = np.where(np.isnan(g) | np.isnan(lo), np.nan, value)
    return pd.Series(value, index=close.index, dtype="float64")


def macd(
    close: pd.Series, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """MACD line ``ema(fast) - ema(slow)``, its signal ``ema(line, signal)`` and the histogram."""
    _check_window("fast", fast)
    _check_window("slow", slow)
    _check_window("signal", signal)
    if fast >= slow:
        raise ValueError(f"macd fast window must be below the slow one ({slow}); got {fast}")
    line = ema(close, fast) - ema(close, slow)
    sig = ema(line, signal)
    return line, sig, line - sig


def bollinger_width(close: pd.Series, window: int = 20, k: float = 2.0) -> pd.Series:
    """Band width ``(upper - lower) / middle = 2 k std / sma`` (population std, as Bollinger's)."""
    _check_window("window", window)
    if not k > 0:
        raise ValueError(f"bollinger k must be > 0; got {k!r}")
    x = _float(close)
    std = x.rolling(window, min_periods=window).std(ddof=0)
    return 2.0 * k * std / x.rolling(window, min_periods=window).mean()


def realized_volatility(close: pd.Series, window: int = 24) -> pd.Series:
    """Sample standard deviation of the last ``window`` one-bar log returns (per bar)."""
    _check_window("window", window, minimum=2)
    return log_returns(close).rolling(window, min_periods=window).std(ddof=1)


def volume_zscore(volume: pd.Series, window: int = 24) -> pd.Series:
    """``(volume - mean) / std`` over the last ``window`` bars, the current bar included.

    A window of constant volume (std 0) reads 0: the bar equals its mean.
    """
    _check_window("window", window, minimum=2)
    v = _float(volume)
    rolling = v.rolling(window, min_periods=window)
    mean = rolling.mean()
    std = rolling.std(ddof=1)
    z = (v - mean) / std
    return z.mask(std == 0.0, 0.0)


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


def build_features(candles: pd.DataFrame, spec: FeatureSpec | None = None) -> pd.DataFrame:
    """All features of ``candles``, one row per candle (same index), ``ts`` first.

    Columns: ``ret_1, logret_1, sma_<n>..., ema_<n>..., rsi_<n>, atr_<n>, macd, macd_signal,
    macd_hist, bb_width_<n>, rv_<n>, vz_<n>``.
    """
    _check_candles(candles)
    spec = spec or FeatureSpec()
    close = candles["close"]
    out: dict[str, pd.Series] = {
        "ts": candles["ts"],
        "ret_1": returns(close),
        "logret_1": log_returns(close),
    }
    for n in spec.sma:
        out[f"sma_{n}"] = sma(close, n)
    for n in spec.ema:
        out[f"ema_{n}"] = ema(close, n)
    out[f"rsi_{spec.rsi}"] = rsi(close, spec.rsi)
    out[f"atr_{spec.atr}"] = atr(candles["high"], candles["low"], close, spec.atr)
    line, signal, hist = macd(close, spec.macd_fast, spec.macd_slow, spec.macd_signal)
    out["macd"], out["macd_signal"], out["macd_hist"] = line, signal, hist
    out[f"bb_width_{spec.bb}"] = bollinger_width(close, spec.bb, spec.bb_k)
    out[f"rv_{spec.vol}"] = realized_volatility(close, spec.vol)
    out[f"vz_{spec.vz}"] = volume_zscore(candles["volume"], spec.vz)
    frame = pd.DataFrame(out, index=candles.index)
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
