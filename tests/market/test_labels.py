"""Labels on the real BTC 1h candles: hand-checked values, the unlabeled tail, stable known part."""

from __future__ import annotations

import csv
import gzip
from datetime import UTC, datetime
from functools import cache

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.labels import direction, forward_return, make_labels
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
