"""market.kernels gives pandas' numbers bit for bit: the pandas formulations below are the oracle.

These are the expressions market.features used before it called pandas' window kernels directly
(``Series.rolling``, ``Series.ewm``, ``shift``, ``clip``, ``mask``); equality is exact
(``assert_array_equal``), on the real candles of five symbols and on generated series with holes
and infinities. A pandas upgrade that changes a private kernel fails here first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market import kernels
from market.features import FeatureSpec, build_features
from market.files import read_candle_file as read_candles
from tests.conftest import shared_data_dir

SYMBOLS = ("BTC", "ETH", "SOL", "XRP", "BNB")


# -- the pandas formulations (the oracle) ---------------------------------------------------------


def pd_seeded_smoother(values: pd.Series, window: int, alpha: float) -> pd.Series:
    x = values.astype("float64")
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
    return seeded.ewm(alpha=alpha, adjust=False, ignore_na=True).mean()


def pd_ema(x: pd.Series, n: int) -> pd.Series:
    return pd_seeded_smoother(x, n, 2.0 / (n + 1))


def pd_log_returns(close: pd.Series, periods: int = 1) -> pd.Series:
    x = np.log(close.astype("float64"))
    return x - x.shift(periods)


def pd_true_range(high: pd.Series, low: pd.Series, close: pd.Series) -> pd.Series:
    prev = close.astype("float64").shift(1)
    top = np.fmax(high.to_numpy(), prev.to_numpy())
    bottom = np.fmin(low.to_numpy(), prev.to_numpy())
    return pd.Series(top - bottom, index=close.index).where(prev.notna())


def pd_rsi(close: pd.Series, n: int) -> np.ndarray:
    delta = close.astype("float64").diff()
    g = pd_seeded_smoother(delta.clip(lower=0.0), n, 1.0 / n).to_numpy()
    lo = pd_seeded_smoother((-delta).clip(lower=0.0), n, 1.0 / n).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 100.0 - 100.0 / (1.0 + g / lo)
    value = np.where(lo == 0.0, np.where(g == 0.0, 50.0, 100.0), value)
    return np.where(np.isnan(g) | np.isnan(lo), np.nan, value)


def pd_features(c: pd.DataFrame, spec: FeatureSpec) -> dict[str, np.ndarray]:
    close, volume = c["close"].astype("float64"), c["volume"].astype("float64")
    out = {"ret_1": close / close.shift(1) - 1.0, "logret_1": pd_log_returns(close)}
    for n in spec.sma:
        out[f"sma_{n}"] = close.rolling(n, min_periods=n).mean()
    for n in spec.ema:
        out[f"ema_{n}"] = pd_ema(close, n)
    out[f"rsi_{spec.rsi}"] = pd.Series(pd_rsi(close, spec.rsi))
    tr = pd_true_range(c["high"], c["low"], close)
    out[f"atr_{spec.atr}"] = pd_seeded_smoother(tr, spec.atr, 1.0 / spec.atr)
    line = pd_ema(close, spec.macd_fast) - pd_ema(close, spec.macd_slow)
    signal = pd_ema(line, spec.macd_signal)
    out["macd"], out["macd_signal"], out["macd_hist"] = line, signal, line - signal
    bb = close.rolling(spec.bb, min_periods=spec.bb)
    out[f"bb_width_{spec.bb}"] = 2.0 * spec.bb_k * bb.std(ddof=0) / bb.mean()
    rv = pd_log_returns(close).rolling(spec.vol, min_periods=spec.vol).std(ddof=1)
    out[f"rv_{spec.vol}"] = rv
    rolling = volume.rolling(spec.vz, min_periods=spec.vz)
    std = rolling.std(ddof=1)
    out[f"vz_{spec.vz}"] = ((volume - rolling.mean()) / std).mask(std == 0.0, 0.0)
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


# -- the checks -----------------------------------------------------------------------------------

SPECS = (
    FeatureSpec(),
    FeatureSpec(sma=(5, 10), ema=(5, 12), rsi=7, atr=7, macd_fast=6, macd_slow=13,
                macd_signal=5, bb=10, vol=12, vz=12),
    FeatureSpec(sma=(50, 200), ema=(26, 100), rsi=21, atr=21, macd_fast=12, macd_slow=26,
                macd_signal=9, bb=40, vol=72, vz=72),
)  # fmt: skip


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_every_feature_equals_the_pandas_formulation_on_real_candles(symbol: str) -> None:
    candles = read_candles(shared_data_dir() / f"binance_{symbol}-USDT_1h.csv.gz")
    assert len(candles) > 20_000
    for spec in SPECS:
        built = build_features(candles, spec)
        oracle = pd_features(candles, spec)
        assert set(built.columns) == {"ts", *oracle}
        for name, expected in oracle.items():
            np.testing.assert_array_equal(built[name].to_numpy(), expected, err_msg=name)


def test_the_500_candle_tail_a_bot_sends_is_equal_too() -> None:
    candles = read_candles(shared_data_dir() / "binance_BTC-USDT_1h.csv.gz").tail(500)
    candles = candles.reset_index(drop=True)
    for spec in SPECS:
        built, oracle = build_features(candles, spec), pd_features(candles, spec)
        for name, expected in oracle.items():
            np.testing.assert_array_equal(built[name].to_numpy(), expected, err_msg=name)


values = st.lists(
    st.one_of(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
        st.just(float("nan")),
        st.just(float("inf")),
        st.just(0.0),
    ),
    min_size=0,
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(values, st.integers(min_value=2, max_value=12))
def test_window_kernels_equal_pandas_on_series_with_holes_and_infinities(
    xs: list[float], window: int
) -> None:
    x = np.array(xs, dtype=np.float64)
    s = pd.Series(x)
    rolling = s.rolling(window, min_periods=window)
    np.testing.assert_array_equal(kernels.rolling_mean(x, window), rolling.mean().to_numpy())
    np.testing.assert_array_equal(kernels.rolling_sum(x, window), rolling.sum().to_numpy())
    for ddof in (0, 1):
        np.testing.assert_array_equal(
            kernels.rolling_std(x, window, ddof), rolling.std(ddof=ddof).to_numpy()
        )
    for alpha in (1.0 / window, 2.0 / (window + 1)):
        np.testing.assert_array_equal(
            kernels.seeded_smoother(x, window, alpha),
            pd_seeded_smoother(s, window, alpha).to_numpy(),
        )
    np.testing.assert_array_equal(kernels.shift(x, window), s.shift(window).to_numpy())
    np.testing.assert_array_equal(kernels.diff(x), s.diff().to_numpy())


def test_a_bad_window_is_named() -> None:
    with pytest.raises(ValueError, match=r"window must be an integer >= 2; got 1"):
        kernels.volume_zscore(np.ones(5), 1)
    with pytest.raises(ValueError, match=r"macd fast window must be below the slow one \(5\)"):
        kernels.macd(np.ones(5), 6, 5)
