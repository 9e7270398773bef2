"""Daily sentiment files, and their one-day-lagged join onto the real BTC 1h candles."""

from __future__ import annotations

import csv
import gzip
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.sentiment import DAY_MS, join_daily_lagged, read_sentiment, write_sentiment
from tests.conftest import shared_data_dir

FEAR_GREED = "feargreed_crypto_1d.csv.gz"
SOCIAL = "social_sentiment_btc_1d.csv.gz"


@cache
def raw_values(name: str, label: str | None = None) -> dict[int, float]:
    """day ts -> value straight from the CSV (without pandas), optionally for one label."""
    with gzip.open(shared_data_dir() / name, "rt", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {
        int(r["timestamp"]): float(r["value"]) for r in rows if label is None or r["label"] == label
    }


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def value_at(frame: pd.DataFrame, when: str, column: str = "sentiment") -> float:
    return float(frame.loc[frame["ts"] == ms(when), column].iloc[0])


def test_read_fear_and_greed(shared_data: Path) -> None:
    daily = read_sentiment(shared_data / FEAR_GREED)
    assert list(daily.columns) == ["ts", "value"]
    assert daily["ts"].dtype == np.int64 and daily["value"].dtype == np.float64
    assert len(daily) == 2248
    assert daily["ts"].iloc[0] == ms("2018-02-01 00:00") and daily["ts"].iloc[-1] == ms(
        "2024-03-31"
    )
    assert daily["ts"].is_monotonic_increasing and daily["ts"].is_unique
    assert daily["value"].between(0, 100).all()
    assert daily.set_index("ts")["value"].to_dict() == raw_values(FEAR_GREED)


def test_read_one_social_stream(shared_data: Path) -> None:
    counts = {}
    for label in ("stocktwits", "reddit_submissions", "reddit_comments"):
        daily = read_sentiment(shared_data / SOCIAL, label=label)
        assert daily["ts"].is_monotonic_increasing and daily["ts"].is_unique
        assert daily.set_index("ts")["value"].to_dict() == raw_values(SOCIAL, label)
        counts[label] = len(daily)
    assert counts == {"stocktwits": 2326, "reddit_submissions": 2458, "reddit_comments": 2453}


def test_read_refuses_ambiguous_or_unknown_streams(shared_data: Path) -> None:
    with pytest.raises(ValueError, match=r"label is required .*\(reddit_comments, .*\); got None"):
        read_sentiment(shared_data / SOCIAL)
    with pytest.raises(ValueError, match=r"label must be one of .*stocktwits.*; got 'twitter'"):
        read_sentiment(shared_data / SOCIAL, label="twitter")


def test_bar_on_day_d_never_sees_d(shared_data: Path, btc_1h: pd.DataFrame) -> None:
    daily = read_sentiment(shared_data / FEAR_GREED)
    joined = join_daily_lagged(btc_1h, daily)
    fg = raw_values(FEAR_GREED)
    d, d_prev = ms("2020-01-01 00:00"), ms("2019-12-31 00:00")
    assert (fg[d_prev], fg[d]) == (38.0, 37.0)  # different values, so the test can tell them apart
    assert value_at(joined, "2020-01-01 00:00") == fg[d_prev]
    assert value_at(joined, "2020-01-01 23:00") == fg[d_prev]  # day D is not over yet
    assert value_at(joined, "2020-01-02 00:00") == fg[d]  # D has ended
    # At the end of the data the last bar sees 2024-03-30; the 31st (also 75) is never seen, as
    # the day-stamped join below proves.
    assert value_at(joined, "2024-03-31 23:00") == fg[ms("2024-03-30 00:00")]
    assert list(joined.columns) == [*btc_1h.columns, "sentiment"]
    assert joined.index.equals(btc_1h.index)
    assert joined["sentiment"].notna().all()  # the index starts in 2018, before the candles


def test_every_bar_sees_exactly_the_previous_day(shared_data: Path, btc_1h: pd.DataFrame) -> None:
    # Join the days' own timestamps: each bar must get the day before its own (the index has no
    # holes after 2018), never its own day or a later one.
    days = read_sentiment(shared_data / FEAR_GREED)
    stamped = days.assign(value=days["ts"].astype("float64"))
    seen = join_daily_lagged(btc_1h, stamped, column="day")["day"].to_numpy()
    bar_day = btc_1h["ts"].to_numpy() // DAY_MS * DAY_MS
    np.testing.assert_array_equal(seen, bar_day - DAY_MS)


def test_holes_carry_forward_unless_too_old(shared_data: Path, btc_1h: pd.DataFrame) -> None:
    # reddit_comments has no value for 2021-03-18..26; the 17th's value is the latest known.
    daily = read_sentiment(shared_data / SOCIAL, label="reddit_comments")
    raw = raw_values(SOCIAL, "reddit_comments")
    before, after = raw[ms("2021-03-17 00:00")], raw[ms("2021-03-27 00:00")]
    stale = join_daily_lagged(btc_1h, daily)
    fresh = join_daily_lagged(btc_1h, daily, max_age_days=3)
    for when in ("2021-03-18 00:00", "2021-03-20 23:00"):
        assert value_at(stale, when) == before and value_at(fresh, when) == before
    assert value_at(stale, "2021-03-21 00:00") == before
    assert np.isnan(value_at(fresh, "2021-03-21 00:00"))  # 4 days old: too old
    assert np.isnan(value_at(fresh, "2021-03-27 23:00"))
    assert value_at(fresh, "2021-03-28 00:00") == after
    # The stream ends on 2021-05-09: without a limit it would be carried into 2024.
    assert value_at(stale, "2024-03-31 23:00") == raw[ms("2021-05-09 00:00")]
    assert (
        fresh["sentiment"].last_valid_index()
        == btc_1h.index[btc_1h["ts"] == ms("2021-05-12 23:00")][0]
    )
    # Before the first value is known, bars read NaN.
    late = daily[daily["ts"] >= ms("2020-06-01 00:00")]
    assert np.isnan(value_at(join_daily_lagged(btc_1h, late), "2020-06-01 23:00"))
    assert value_at(join_daily_lagged(btc_1h, late), "2020-06-02 00:00") == raw[ms("2020-06-01")]


def test_join_refuses_bad_input(shared_data: Path, btc_1h: pd.DataFrame) -> None:
    daily = read_sentiment(shared_data / FEAR_GREED)
    with pytest.raises(
        ValueError, match=r"column must not already be a candle column; got 'close'"
    ):
        join_daily_lagged(btc_1h, daily, column="close")
    with pytest.raises(ValueError, match=r"max_age_days must be an integer >= 1 or None; got 0"):
        join_daily_lagged(btc_1h, daily, max_age_days=0)
    with pytest.raises(ValueError, match=r"daily must have a 'value' column"):
        join_daily_lagged(btc_1h, daily.rename(columns={"value": "v"}))
    with pytest.raises(ValueError, match=r"daily must have one value per day"):
        join_daily_lagged(btc_1h, pd.concat([daily, daily.iloc[:1]]))
    # days in any order: the same join as in order (sorted input skips the sort)
    shuffled = daily.sample(frac=1.0, random_state=3)
    assert not shuffled["ts"].is_monotonic_increasing
    pd.testing.assert_frame_equal(join_daily_lagged(btc_1h, shuffled),
                                  join_daily_lagged(btc_1h, daily))  # fmt: skip


@pytest.fixture(scope="module")
def fear_greed() -> pd.DataFrame:
    return read_sentiment(shared_data_dir() / FEAR_GREED)


@settings(max_examples=25, deadline=None)
@given(start=st.integers(0, 36_000), k=st.integers(1, 1000))
def test_join_has_no_look_ahead(
    btc_1h: pd.DataFrame, fear_greed: pd.DataFrame, start: int, k: int
) -> None:
    candles = btc_1h.iloc[start : start + 1000]
    full = join_daily_lagged(candles, fear_greed, max_age_days=2)["sentiment"].to_numpy()[:k]
    prefix = join_daily_lagged(candles.iloc[:k], fear_greed, max_age_days=2)["sentiment"]
    np.testing.assert_allclose(prefix.to_numpy(), full, rtol=1e-12, equal_nan=True)
    # and what a bar sees was published before the bar's day began
    seen_days = join_daily_lagged(
        candles.iloc[:k], fear_greed.assign(value=fear_greed["ts"].astype("float64"))
    )["sentiment"].to_numpy()
    assert (seen_days + DAY_MS <= candles["ts"].to_numpy()[:k]).all()


# --- the growing copy the live service keeps ---------------------------------------------------


def shipped_days(shared_data: Path) -> pd.DataFrame:
    """The shipped Fear & Greed file as write_sentiment's input (``ts, value, label``)."""
    frame = pd.read_csv(shared_data / FEAR_GREED, dtype={"label": str})
    return frame.rename(columns={"timestamp": "ts"})


def test_write_merges_by_day_into_the_shipped_shape(shared_data: Path, tmp_path: Path) -> None:
    days = shipped_days(shared_data)
    copy = tmp_path / "sentiment" / FEAR_GREED
    assert write_sentiment(days.iloc[:100], copy) == 100  # created, with its folder
    assert write_sentiment(days.iloc[50:150], copy) == 50  # 50 already there, 50 new
    with gzip.open(shared_data / FEAR_GREED, "rt") as shipped, gzip.open(copy, "rt") as written:
        assert written.read().splitlines() == shipped.read().splitlines()[:151]  # header + 150
    before = copy.read_bytes()
    assert write_sentiment(days.iloc[20:150], copy) == 0  # idempotent: the file is not touched
    assert copy.read_bytes() == before
    pd.testing.assert_frame_equal(
        read_sentiment(copy), read_sentiment(shared_data / FEAR_GREED).iloc[:150]
    )


def test_write_keeps_a_stored_day_and_warns_when_the_source_changed_it(
    shared_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    days = shipped_days(shared_data).iloc[:10]
    copy = tmp_path / FEAR_GREED
    write_sentiment(days, copy)
    changed = days.iloc[[3]].assign(value=99.0, label="Extreme Greed")
    day = int(changed["ts"].iloc[0])
    with caplog.at_level("WARNING", logger="market.sentiment"):
        assert write_sentiment(changed, copy) == 0
    assert f"day {day} is stored with value {days['value'].iloc[3]:g}; kept it" in caplog.text
    assert read_sentiment(copy)["value"].tolist() == days["value"].astype(float).tolist()


def test_write_refuses_what_is_not_one_value_per_day(shared_data: Path, tmp_path: Path) -> None:
    days = shipped_days(shared_data).iloc[:3]
    copy = tmp_path / FEAR_GREED
    with pytest.raises(
        ValueError, match=r"frame must have columns ts, value, label; missing \['label'\]"
    ):
        write_sentiment(days.drop(columns="label"), copy)
    with pytest.raises(ValueError, match=r"ts must be 00:00 UTC of its day; got 1517443200001"):
        write_sentiment(days.assign(ts=days["ts"] + 1), copy)
    with pytest.raises(ValueError, match=r"ts must be one per day; got 1517443200000 twice"):
        write_sentiment(pd.concat([days, days.iloc[:1]]), copy)
    assert not copy.exists()
