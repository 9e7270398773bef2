"""Features on the real BTC 1h candles: hand-checked values, warm-up NaN, and no look-ahead."""

from __future__ import annotations

import csv
import gzip
import itertools
import math
import statistics
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.features import (
    FeatureSpec,
    atr,
    bollinger_width,
    build_features,
    ema,
    log_returns,
    macd,
    momentum_rank,
    realized_volatility,
    returns,
    rsi,
    sma,
    true_range,
    volume_zscore,
)
from tests.conftest import shared_data_dir

SYMBOLS = ("BTC", "ETH", "SOL", "XRP", "BNB")


@cache
def raw_rows(symbol: str = "BTC") -> tuple[tuple[int, float, float, float, float, float], ...]:
    """The CSV rows as plain tuples (ts, open, high, low, close, volume), read without pandas."""
    path = shared_data_dir() / f"binance_{symbol}-USDT_1h.csv.gz"
    with gzip.open(path, "rt", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        return tuple(
            (int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5]))
            for r in reader
        )


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def row_at(ts: int) -> int:
    return next(i for i, r in enumerate(raw_rows()) if r[0] == ts)


def at(series: pd.Series, frame: pd.DataFrame, ts: int) -> float:
    return float(series[frame["ts"] == ts].iloc[0])


def test_log_and_simple_return_of_2020_01_01_0100(btc_1h: pd.DataFrame) -> None:
    rows = raw_rows()
    assert rows[1][0] == ms("2020-01-01 01:00")
    expected_log = math.log(rows[1][4] / rows[0][4])  # ln(7216.27 / 7177.02)
    expected_simple = rows[1][4] / rows[0][4] - 1
    features = build_features(btc_1h)
    assert features["logret_1"].iloc[1] == pytest.approx(expected_log, rel=1e-12)
    assert features["ret_1"].iloc[1] == pytest.approx(expected_simple, rel=1e-12)
    assert math.isnan(features["logret_1"].iloc[0]) and math.isnan(features["ret_1"].iloc[0])
    assert expected_log == pytest.approx(0.0054540, abs=1e-7)


def test_sma3_and_sma20_by_hand(btc_1h: pd.DataFrame) -> None:
    ts = ms("2021-03-13 12:00")
    i = row_at(ts)
    closes = [r[4] for r in raw_rows()[i - 2 : i + 1]]
    assert at(sma(btc_1h["close"], 3), btc_1h, ts) == pytest.approx(sum(closes) / 3, rel=1e-12)
    closes20 = [r[4] for r in raw_rows()[i - 19 : i + 1]]
    features = build_features(btc_1h)
    assert at(features["sma_20"], btc_1h, ts) == pytest.approx(sum(closes20) / 20, rel=1e-12)


def test_ema_by_hand_recursion(btc_1h: pd.DataFrame) -> None:
    closes = [r[4] for r in raw_rows()[:12]]
    value = sum(closes[:4]) / 4  # seeded with the SMA of the first window
    expected = [value]
    for x in closes[4:]:
        value = value + 0.4 * (x - value)  # alpha = 2 / (4 + 1)
        expected.append(value)
    got = ema(btc_1h["close"], 4).iloc[:12].to_numpy()
    assert np.isnan(got[:3]).all()
    np.testing.assert_allclose(got[3:], expected, rtol=1e-12)


def test_atr14_by_hand_at_bars_14_and_40(btc_1h: pd.DataFrame) -> None:
    rows = raw_rows()
    trs = [max(rows[i][2], rows[i - 1][4]) - min(rows[i][3], rows[i - 1][4]) for i in range(1, 41)]
    value = sum(trs[:14]) / 14  # TR of bars 1..14
    wilder = {14: value}
    for i in range(15, 41):
        value = (value * 13 + trs[i - 1]) / 14
        wilder[i] = value
    got = atr(btc_1h["high"], btc_1h["low"], btc_1h["close"], 14)
    assert got.iloc[:14].isna().all()
    assert got.iloc[14] == pytest.approx(wilder[14], rel=1e-12)
    assert got.iloc[40] == pytest.approx(wilder[40], rel=1e-12)
    tr = true_range(btc_1h["high"], btc_1h["low"], btc_1h["close"])
    assert math.isnan(tr.iloc[0]) and tr.iloc[1] == pytest.approx(trs[0], rel=1e-12)


def test_rsi5_on_a_small_window_by_hand(btc_1h: pd.DataFrame) -> None:
    # 2020-03-12 (the covid crash): a window with big moves in both directions.
    start = row_at(ms("2020-03-12 00:00"))
    closes = [r[4] for r in raw_rows()[start : start + 8]]
    deltas = [b - a for a, b in itertools.pairwise(closes)]
    gains = [max(d, 0.0) for d in deltas]
    losses = [max(-d, 0.0) for d in deltas]
    avg_gain, avg_loss = sum(gains[:5]) / 5, sum(losses[:5]) / 5
    expected = [100 - 100 / (1 + avg_gain / avg_loss)]
    for g, loss in zip(gains[5:], losses[5:], strict=True):
        avg_gain = (avg_gain * 4 + g) / 5
        avg_loss = (avg_loss * 4 + loss) / 5
        expected.append(100 - 100 / (1 + avg_gain / avg_loss))
    window = btc_1h.iloc[start : start + 8].reset_index(drop=True)
    got = rsi(window["close"], 5).to_numpy()
    assert np.isnan(got[:5]).all()
    np.testing.assert_allclose(got[5:], expected, rtol=1e-12)


def test_macd_bollinger_vol_and_volume_z_by_hand(btc_1h: pd.DataFrame) -> None:
    rows = raw_rows()[:60]
    closes = [r[4] for r in rows]

    def hand_ema(xs: list[float], n: int) -> list[float]:
        out = [math.nan] * (n - 1)
        value = sum(xs[:n]) / n
        out.append(value)
        for x in xs[n:]:
            value += 2 / (n + 1) * (x - value)
            out.append(value)
        return out

    fast, slow = hand_ema(closes, 12), hand_ema(closes, 26)
    line = [f - s for f, s in zip(fast[25:], slow[25:], strict=True)]
    signal = hand_ema(line, 9)
    features = build_features(btc_1h.iloc[:60])
    assert features["macd"].iloc[50] == pytest.approx(line[25], rel=1e-12)
    assert features["macd_signal"].iloc[50] == pytest.approx(signal[25], rel=1e-12)
    assert features["macd_hist"].iloc[50] == pytest.approx(line[25] - signal[25], rel=1e-9)

    window = closes[31:51]
    width = 4 * statistics.pstdev(window) / statistics.fmean(window)
    assert features["bb_width_20"].iloc[50] == pytest.approx(width, rel=1e-10)

    logs = [math.log(b / a) for a, b in itertools.pairwise(closes[26:51])]
    assert features["rv_24"].iloc[50] == pytest.approx(statistics.stdev(logs), rel=1e-10)

    volumes = [r[5] for r in rows[27:51]]
    z = (volumes[-1] - statistics.fmean(volumes)) / statistics.stdev(volumes)
    assert features["vz_24"].iloc[50] == pytest.approx(z, rel=1e-10)


def test_each_feature_starts_when_its_window_fills(btc_1h: pd.DataFrame) -> None:
    features = build_features(btc_1h)
    first_valid = {name: int(features[name].notna().to_numpy().argmax()) for name in features}
    assert first_valid == {
        "ts": 0,
        "ret_1": 1,
        "logret_1": 1,
        "sma_20": 19,
        "sma_50": 49,
        "ema_12": 11,
        "ema_26": 25,
        "rsi_14": 14,
        "atr_14": 14,
        "macd": 25,
        "macd_signal": 33,
        "macd_hist": 33,
        "bb_width_20": 19,
        "rv_24": 24,
        "vz_24": 23,
    }
    # Once started, no feature has a hole on the real series (flat zero-volume candles included).
    for name in features:
        assert features[name].iloc[first_valid[name] :].notna().all(), name
    assert features.index.equals(btc_1h.index)
    assert features["rsi_14"].dropna().between(0, 100).all()


def test_spec_windows_name_the_columns(btc_1h: pd.DataFrame) -> None:
    spec = FeatureSpec(sma=(5,), ema=(9, 21), rsi=7, atr=10, bb=30, bb_k=2.5, vol=48, vz=12)
    features = build_features(btc_1h.iloc[:200], spec)
    assert list(features.columns) == [
        "ts", "ret_1", "logret_1", "sma_5", "ema_9", "ema_21", "rsi_7", "atr_10",
        "macd", "macd_signal", "macd_hist", "bb_width_30", "rv_48", "vz_12",
    ]  # fmt: skip


def test_bad_windows_and_frames_are_named() -> None:
    with pytest.raises(ValueError, match=r"features.rsi must be an integer >= 1; got 0"):
        FeatureSpec(rsi=0)
    with pytest.raises(ValueError, match=r"features.sma must be an integer >= 1; got -3"):
        FeatureSpec(sma=(20, -3))
    with pytest.raises(ValueError, match=r"features.macd_fast must be below .*got 30"):
        FeatureSpec(macd_fast=30)
    with pytest.raises(ValueError, match=r"features.bb_k must be > 0; got 0"):
        FeatureSpec(bb_k=0)
    with pytest.raises(ValueError, match=r"window must be an integer >= 1; got 2.5"):
        sma(pd.Series([1.0, 2.0]), 2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"missing volume"):
        build_features(pd.DataFrame(columns=["ts", "open", "high", "low", "close"]))


# --- no look-ahead ------------------------------------------------------------------------------

FeatureFn = Callable[[pd.DataFrame], pd.Series | pd.DataFrame]

FEATURES: dict[str, FeatureFn] = {
    "returns": lambda c: returns(c["close"], 3),
    "log_returns": lambda c: log_returns(c["close"]),
    "sma": lambda c: sma(c["close"], 20),
    "ema": lambda c: ema(c["close"], 26),
    "rsi": lambda c: rsi(c["close"], 14),
    "true_range": lambda c: true_range(c["high"], c["low"], c["close"]),
    "atr": lambda c: atr(c["high"], c["low"], c["close"], 14),
    "macd": lambda c: pd.concat(macd(c["close"]), axis=1),
    "bollinger_width": lambda c: bollinger_width(c["close"], 20, 2.0),
    "realized_volatility": lambda c: realized_volatility(c["close"], 24),
    "volume_zscore": lambda c: volume_zscore(c["volume"], 24),
    "build_features": lambda c: build_features(c),
}

SLICE = 1200


@pytest.fixture(scope="module")
def btc_slices(btc_1h: pd.DataFrame) -> list[pd.DataFrame]:
    """Ten 1,200-bar slices spread over 2020-2024 (calm, trending and crash periods)."""
    starts = np.linspace(0, len(btc_1h) - SLICE, 10).astype(int)
    return [btc_1h.iloc[s : s + SLICE].reset_index(drop=True) for s in starts]


def assert_prefix_equal(fn: FeatureFn, candles: pd.DataFrame, k: int) -> None:
    full = np.asarray(fn(candles), dtype="float64")[:k]
    prefix = np.asarray(fn(candles.iloc[:k]), dtype="float64")
    np.testing.assert_allclose(prefix, full, rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_no_look_ahead_on_real_btc(name: str, btc_slices: list[pd.DataFrame]) -> None:
    @settings(max_examples=15, deadline=None)
    @given(which=st.integers(0, len(btc_slices) - 1), k=st.integers(1, SLICE))
    def check(which: int, k: int) -> None:
        assert_prefix_equal(FEATURES[name], btc_slices[which], k)

    check()


prices = st.lists(st.floats(1.0, 1e5, allow_nan=False), min_size=2, max_size=120)


@settings(max_examples=40, deadline=None)
@given(closes=prices, data=st.data())
def test_no_look_ahead_on_generated_series(closes: list[float], data: st.DataObject) -> None:
    close = np.array(closes)
    spread = np.array(
        data.draw(st.lists(st.floats(0, 0.05), min_size=len(closes), max_size=len(closes)))
    )
    candles = pd.DataFrame(
        {
            "ts": np.arange(len(close), dtype=np.int64) * 3_600_000,
            "open": close,
            "high": close * (1 + spread),
            "low": close * (1 - spread),
            "close": close,
            "volume": np.abs(np.sin(close)) * 100,
        }
    )
    k = data.draw(st.integers(1, len(close)))
    spec = FeatureSpec(sma=(3, 7), ema=(2, 5), rsi=4, atr=3, macd_fast=3, macd_slow=6,
                       macd_signal=2, bb=5, vol=4, vz=4)  # fmt: skip
    assert_prefix_equal(lambda c: build_features(c, spec), candles, k)
    features = build_features(candles, spec)
    assert features["rsi_4"].dropna().between(0, 100).all()
    assert (features["atr_3"].dropna() >= 0).all()
    assert (features["bb_width_5"].dropna() >= 0).all()


# --- cross-sectional momentum -------------------------------------------------------------------


@pytest.fixture(scope="module")
def panel(shared_data: Path) -> pd.DataFrame:
    """Closes of the five symbols on one ts index (SOL starts in August 2020)."""
    series = {
        symbol: pd.read_csv(shared_data / f"binance_{symbol}-USDT_1h.csv.gz").set_index(
            "timestamp"
        )["close"]
        for symbol in SYMBOLS
    }
    closes = pd.DataFrame(series).sort_index()
    closes.index.name = "ts"
    return closes


def test_momentum_rank_on_five_real_symbols(panel: pd.DataFrame) -> None:
    ranks = momentum_rank(panel, 24)
    assert ranks.shape == panel.shape and list(ranks.columns) == list(SYMBOLS)
    values = ranks.to_numpy()
    assert np.nanmin(values) == 0.0 and np.nanmax(values) == 1.0
    assert ranks.iloc[:24].isna().all().all()
    sol_start = panel["SOL"].first_valid_index()
    assert sol_start == ms("2020-08-11 06:00")
    sol_first_rank = ranks["SOL"].first_valid_index()
    assert sol_first_rank == panel.index[int(np.flatnonzero(panel.index == sol_start)[0]) + 24]
    # Before SOL trades, four symbols share the ranks 0, 1/3, 2/3, 1.
    four = ranks.loc[ms("2020-06-01 00:00")]
    assert list(four.isna()) == [False, False, True, False, False]
    assert sorted(four.dropna().round(12)) == [0.0, round(1 / 3, 12), round(2 / 3, 12), 1.0]
    # With all five trading, a row is a permutation of 0, .25, .5, .75, 1, except three hours of
    # 2023 where XRP and BNB were both exactly flat over the day and share the average rank.
    full = ranks.loc[ms("2023-01-01 00:00") : ms("2023-12-31 23:00")]
    permutation = (np.sort(full.to_numpy(), axis=1) == [0, 0.25, 0.5, 0.75, 1]).all(axis=1)
    assert (~permutation).sum() == 3
    tied = ranks.loc[ms("2023-06-03 17:00")].to_dict()
    assert tied == {"BTC": 1.0, "ETH": 0.0, "SOL": 0.75, "XRP": 0.375, "BNB": 0.375}
    np.testing.assert_allclose(full.sum(axis=1), 2.5, rtol=1e-12)


def test_momentum_rank_by_hand_at_one_timestamp(panel: pd.DataFrame) -> None:
    ts = ms("2022-05-12 12:00")  # the LUNA collapse week
    i = row_at(ts)
    momentum = {s: raw_rows(s)[i][4] / raw_rows(s)[i - 24][4] - 1 for s in SYMBOLS if s != "SOL"}
    sol = raw_rows("SOL")
    j = next(n for n, r in enumerate(sol) if r[0] == ts)
    momentum["SOL"] = sol[j][4] / sol[j - 24][4] - 1
    order = sorted(momentum, key=momentum.__getitem__)
    expected = {symbol: position / 4 for position, symbol in enumerate(order)}
    got = momentum_rank(panel, 24).loc[ts].to_dict()
    assert got == pytest.approx(expected, abs=1e-12)


def test_momentum_rank_has_no_look_ahead(panel: pd.DataFrame) -> None:
    window = panel.iloc[5000:6500]  # spans SOL's listing

    @settings(max_examples=20, deadline=None)
    @given(k=st.integers(1, len(window)), lookback=st.integers(1, 48))
    def check(k: int, lookback: int) -> None:
        full = momentum_rank(window, lookback).to_numpy()[:k]
        prefix = momentum_rank(window.iloc[:k], lookback).to_numpy()
        np.testing.assert_allclose(prefix, full, rtol=1e-12, equal_nan=True)

    check()


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.lists(st.one_of(st.none(), st.floats(0.5, 2.0)), min_size=3, max_size=3),
        min_size=2,
        max_size=30,
    )
)
def test_momentum_rank_bounds_on_generated_panels(rows: list[list[float | None]]) -> None:
    closes = pd.DataFrame(rows, columns=["a", "b", "c"], dtype="float64")
    ranks = momentum_rank(closes, 1)
    momentum = closes / closes.shift(1) - 1
    assert (ranks.isna() == momentum.isna()).all().all()
    values = ranks.to_numpy()
    finite = values[~np.isnan(values)]
    assert ((finite >= 0) & (finite <= 1)).all()
    one = momentum.notna().sum(axis=1) == 1
    assert (ranks[one].max(axis=1) == 0.5).all()


def test_the_prefix_check_catches_a_look_ahead_feature(btc_slices: list[pd.DataFrame]) -> None:
    """The property has teeth: a centered window (uses the next bars) fails it."""
    centered: FeatureFn = lambda c: c["close"].rolling(5, center=True).mean()  # noqa: E731
    with pytest.raises(AssertionError):
        assert_prefix_equal(centered, btc_slices[0], 600)
