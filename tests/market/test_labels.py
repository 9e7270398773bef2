"""Labels on the real BTC 1h candles: hand-checked values, the unlabeled tail, stable known part;
the volatility-scaled and triple-barrier targets and the meta-labelling primaries: hand-checked,
causal (a label of row t reads bars up to t + horizon only; volatilities and primaries none after t)."""

from __future__ import annotations

import csv
import gzip
import math
import statistics
from datetime import UTC, datetime
from functools import cache

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.labels import (
    direction,
    forward_return,
    forward_returns,
    make_labels,
    primary_signal,
    trailing_volatility,
    triple_barrier,
    triple_barrier_labels,
    volscaled_returns,
)
from tests.conftest import shared_data_dir


@cache
def raw_closes() -> dict[int, float]:
    """ts -> close straight from the CSV, without pandas."""
    with gzip.open(shared_data_dir() / "binance_BTC-USDT_1h.csv.gz", "rt", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        return {int(r[0]): float(r[4]) for r in reader}


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_forward_return_and_direction_by_hand(btc_1h: pd.DataFrame) -> None:
    labels = make_labels(btc_1h, horizon=4)
    closes = raw_closes()
    t0, t4 = ms("2020-01-01 00:00"), ms("2020-01-01 04:00")
    expected = closes[t4] / closes[t0] - 1  # 7217.27 / 7177.02 - 1
    row = labels[labels["ts"] == t0].iloc[0]
    assert row["fwd_return"] == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.0056081, abs=1e-7)
    assert row["direction"] == 1.0
    assert bool(row["labeled"])
    # 2020-03-12 20:00 -> 2020-03-13 00:00, during the covid crash: down 19%.
    t, th = ms("2020-03-12 20:00"), ms("2020-03-13 00:00")
    crash = labels[labels["ts"] == t].iloc[0]
    assert crash["fwd_return"] == pytest.approx(closes[th] / closes[t] - 1, rel=1e-12)
    assert crash["fwd_return"] < -0.18 and crash["direction"] == -1.0


def test_last_horizon_rows_are_unlabeled(btc_1h: pd.DataFrame) -> None:
    labels = make_labels(btc_1h, horizon=24)
    assert list(labels.columns) == ["ts", "fwd_return", "direction", "labeled"]
    assert labels.index.equals(btc_1h.index)
    assert labels["labeled"].sum() == len(btc_1h) - 24
    tail = labels.iloc[-24:]
    assert not tail["labeled"].any()
    assert tail["fwd_return"].isna().all() and tail["direction"].isna().all()
    head = labels.iloc[:-24]
    assert head["labeled"].all() and head["fwd_return"].notna().all()
    assert set(head["direction"].unique()) == {-1.0, 1.0}  # no close repeats a day later


def test_dead_band_threshold(btc_1h: pd.DataFrame) -> None:
    plain = make_labels(btc_1h, horizon=1)
    banded = make_labels(btc_1h, horizon=1, threshold=0.005)
    fwd = banded["fwd_return"]
    inside = fwd.abs() <= 0.005
    assert (banded.loc[inside, "direction"] == 0).all()
    assert (banded.loc[fwd > 0.005, "direction"] == 1).all()
    assert (banded.loc[fwd < -0.005, "direction"] == -1).all()
    assert (
        plain.loc[~inside & fwd.notna(), "direction"]
        == banded.loc[~inside & fwd.notna(), "direction"]
    ).all()
    # About half of the BTC hours move less than 0.5%.
    share = inside[banded["labeled"]].mean()
    assert 0.4 < share < 0.8
    # Edges of the band are inside it.
    edge = pd.Series([0.01, -0.01, 0.0100001, np.nan])
    assert direction(edge, 0.01).tolist()[:3] == [0.0, 0.0, 1.0]
    assert np.isnan(direction(edge, 0.01).iloc[3])


def test_bad_arguments_are_named(btc_1h: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"horizon must be an integer >= 1; got 0"):
        make_labels(btc_1h, horizon=0)
    with pytest.raises(ValueError, match=r"threshold must be a finite number >= 0; got -0.1"):
        make_labels(btc_1h, horizon=1, threshold=-0.1)
    with pytest.raises(ValueError, match=r"candles must have a 'close' column"):
        make_labels(btc_1h.drop(columns="close"), horizon=1)


@pytest.fixture(scope="module")
def btc_slice(btc_1h: pd.DataFrame) -> pd.DataFrame:
    return btc_1h.iloc[18_000:19_500].reset_index(drop=True)  # 2022: the LUNA and FTX months


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 1500), horizon=st.integers(1, 48), threshold=st.sampled_from([0, 0.002]))
def test_known_labels_do_not_change_with_more_data(
    btc_slice: pd.DataFrame, k: int, horizon: int, threshold: float
) -> None:
    full = make_labels(btc_slice, horizon, threshold)
    prefix = make_labels(btc_slice.iloc[:k], horizon, threshold)
    known = max(k - horizon, 0)
    for column in ("fwd_return", "direction"):
        np.testing.assert_allclose(
            prefix[column].to_numpy()[:known],
            full[column].to_numpy()[:known],
            rtol=1e-12,
            equal_nan=True,
        )
    assert prefix["labeled"].iloc[:known].all()
    assert not prefix["labeled"].iloc[known:].any()


@settings(max_examples=40, deadline=None)
@given(
    closes=st.lists(st.floats(1.0, 1e5), min_size=1, max_size=60),
    horizon=st.integers(1, 10),
    threshold=st.floats(0, 0.1),
)
def test_direction_matches_the_sign_outside_the_band(
    closes: list[float], horizon: int, threshold: float
) -> None:
    close = pd.Series(closes)
    fwd = forward_return(close, horizon)
    d = direction(fwd, threshold)
    values = fwd.to_numpy()
    known = ~np.isnan(values)
    assert known.sum() == max(len(closes) - horizon, 0)
    assert set(np.unique(d[known])) <= {-1.0, 0.0, 1.0}
    np.testing.assert_array_equal(
        d[known & (np.abs(values) > threshold)],
        np.sign(values)[known & (np.abs(values) > threshold)],
    )
    assert (d[known & (np.abs(values) <= threshold)] == 0).all()


# -- volatility-scaled and triple-barrier targets, meta-labelling primaries -----------------------


def closes_from(start: str, bars: int) -> np.ndarray:
    """``bars`` raw closes from the CSV, hourly from ``start`` (the sample has no gap there)."""
    closes, t0 = raw_closes(), ms(start)
    return np.array([closes[t0 + i * 3_600_000] for i in range(bars)])


def test_trailing_volatility_and_volscaled_return_by_hand() -> None:
    close = closes_from("2020-01-01 00:00", 60)
    sigma = trailing_volatility(close, 24)
    assert np.isnan(sigma[:24]).all() and np.isfinite(sigma[24:]).all()
    # Row 30 (2020-01-02 06:00): the 24 one-bar log returns of closes 6..30, nothing later.
    logs = [math.log(close[i] / close[i - 1]) for i in range(7, 31)]
    assert sigma[30] == pytest.approx(statistics.stdev(logs), rel=1e-12)
    scaled = volscaled_returns(close, 4, 24)
    expected = (close[34] / close[30] - 1) / (statistics.stdev(logs) * math.sqrt(4))
    assert scaled[30] == pytest.approx(expected, rel=1e-12)
    assert np.isnan(scaled[:24]).all() and np.isnan(scaled[-4:]).all()
    assert np.isfinite(scaled[24:-4]).all()


def naive_triple_barrier(close: np.ndarray, horizon: int, width: np.ndarray) -> list[float]:
    out = []
    for t in range(len(close)):
        if t + horizon >= len(close) or not (math.isfinite(width[t]) and width[t] > 0):
            out.append(math.nan)
            continue
        label = 0.0
        for j in range(1, horizon + 1):
            move = close[t + j] / close[t] - 1
            if move >= width[t]:
                label = 1.0
                break
            if move <= -width[t]:
                label = -1.0
                break
        out.append(label)
    return out


def test_triple_barrier_by_hand_through_the_covid_crash() -> None:
    close = closes_from("2020-03-10 00:00", 96)  # 2020-03-10 .. 03-13: the crash of the 12th
    labels = triple_barrier_labels(close, 6, 1.5, 24)
    width = 1.5 * trailing_volatility(close, 24) * math.sqrt(6)
    assert np.array_equal(labels, naive_triple_barrier(close, 6, width), equal_nan=True)
    assert np.isnan(labels[:24]).all() and np.isnan(labels[-6:]).all()
    # 2020-03-12 08:00 (row 56): 7,378 then 6,015 two hours later (-18.5%); the barrier is 3.5%.
    t = 56
    moves = [close[t + j] / close[t] - 1 for j in range(1, 7)]
    first_down = next(j for j, m in enumerate(moves, 1) if m <= -width[t])
    assert first_down == 2 and width[t] == pytest.approx(0.0351, abs=1e-4)
    assert all(m < width[t] for m in moves[:first_down]) and labels[t] == -1.0
    assert set(np.unique(labels[24:-6])) == {-1.0, 0.0, 1.0}
    # The barriers are what the function is given: one explicit width per bar.
    fixed = triple_barrier(close, 6, np.full(len(close), 0.05))
    assert np.array_equal(fixed, naive_triple_barrier(close, 6, np.full(len(close), 0.05)),
                          equal_nan=True)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    closes=st.lists(st.floats(1.0, 1e4), min_size=1, max_size=40),
    horizon=st.integers(1, 8),
    width=st.floats(0.0, 0.3),
)
def test_triple_barrier_equals_the_plain_loop(
    closes: list[float], horizon: int, width: float
) -> None:
    close = np.array(closes)
    w = np.full(len(close), width)
    assert np.array_equal(triple_barrier(close, horizon, w),
                          naive_triple_barrier(close, horizon, w), equal_nan=True)  # fmt: skip


def test_primaries_by_hand() -> None:
    close = closes_from("2020-01-01 00:00", 130)
    cross = primary_signal(close, "sma_cross", fast=24, slow=96)
    assert (cross[:95] == 0).all() and set(np.unique(cross[95:])) <= {-1.0, 1.0}
    t = 120
    gap = sum(close[t - 23 : t + 1]) / 24 - sum(close[t - 95 : t + 1]) / 96
    assert cross[t] == math.copysign(1.0, gap)
    momentum = primary_signal(close, "momentum", window=24)
    assert (momentum[:24] == 0).all()
    assert momentum[t] == math.copysign(1.0, close[t] / close[t - 24] - 1)
    assert (primary_signal(close, "none") == 0).all()


@settings(max_examples=25, deadline=None)
@given(t=st.integers(0, 1400), horizon=st.integers(1, 24), factor=st.floats(0.5, 2.0))
def test_targets_and_primaries_are_causal(
    btc_slice: pd.DataFrame, t: int, horizon: int, factor: float
) -> None:
    """Bars after ``t + horizon`` never change a target of row ``t`` (or before), and bars after
    ``t`` never change a volatility or a primary signal of row ``t`` (or before)."""
    close = btc_slice["close"].to_numpy(np.float64)
    later = close.copy()
    later[t + horizon + 1 :] *= factor  # the far future rewritten
    after = close.copy()
    after[t + 1 :] *= factor  # everything after t rewritten
    for label in (
        lambda c: forward_returns(c, horizon),
        lambda c: volscaled_returns(c, horizon),
        lambda c: triple_barrier_labels(c, horizon, 1.0),
    ):
        assert np.array_equal(label(close)[: t + 1], label(later)[: t + 1], equal_nan=True)
    for known_at_t in (
        trailing_volatility,
        lambda c: primary_signal(c, "sma_cross"),
        lambda c: primary_signal(c, "momentum"),
    ):
        assert np.array_equal(known_at_t(close)[: t + 1], known_at_t(after)[: t + 1],
                              equal_nan=True)  # fmt: skip
    # ...and a series cut at t gives the same values up to t (no running sums over the start).
    for known_at_t in (trailing_volatility, lambda c: primary_signal(c, "sma_cross")):
        assert np.array_equal(known_at_t(close[: t + 1]), known_at_t(close)[: t + 1],
                              equal_nan=True)  # fmt: skip


def test_bad_target_arguments_are_named() -> None:
    close = closes_from("2020-01-01 00:00", 50)
    with pytest.raises(ValueError, match=r"primary rule must be one of none, sma_cross, "
                       r"momentum; got 'macd'"):  # fmt: skip
        primary_signal(close, "macd")
    with pytest.raises(ValueError, match=r"fast must be < slow; got fast=30 slow=20"):
        primary_signal(close, "sma_cross", fast=30, slow=20)
    with pytest.raises(ValueError, match=r"barrier k must be a finite number > 0; got 0"):
        triple_barrier_labels(close, 4, 0)
    with pytest.raises(ValueError, match=r"width must have one value per close \(50\)"):
        triple_barrier(close, 4, np.ones(3))
    with pytest.raises(ValueError, match=r"window must be an integer >= 1; got 0"):
        trailing_volatility(close, 0)
    with pytest.raises(ValueError, match=r"horizon must be an integer >= 1; got 0"):
        volscaled_returns(close, 0)
