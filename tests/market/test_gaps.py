"""Gaps in real Binance candles, and the grid arithmetic behind them as properties."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.gaps import Gap, find_gaps, missing_ranges

HOUR = 3_600_000


def _ts(shared_data: Path, name: str) -> np.ndarray:
    return pd.read_csv(shared_data / f"{name}.csv.gz", usecols=["timestamp"])[
        "timestamp"
    ].to_numpy()


# --- Real data ------------------------------------------------------------------------------------


def test_btc_1h_has_the_15_maintenance_gaps_of_32_candles(btc_1h: pd.DataFrame) -> None:
    gaps = find_gaps(btc_1h["ts"].to_numpy(), HOUR)
    assert len(gaps) == 15
    assert sum(gap.missing for gap in gaps) == 32
    # 37216 candles + 32 missing = every hour from 2020-01-01 00:00 to 2024-03-31 23:00.
    assert len(btc_1h) + 32 == (1711926000000 - 1577836800000) // HOUR + 1
    # Hand-checked with zcat: 2020-02-09 01:00 (1581210000000) is followed by 03:00 (1581217200000).
    assert gaps[0] == Gap(start_ts=1581213600000, end_ts=1581213600000, missing=1)
    # 2020-02-19 11:00 (1582110000000) is followed by 17:00 (1582131600000): 12:00..16:00 missing.
    assert gaps[1] == Gap(start_ts=1582113600000, end_ts=1582128000000, missing=5)
    # 2021-08-13 01:00 is followed by 06:00.
    assert Gap(start_ts=1628820000000, end_ts=1628830800000, missing=4) in gaps
    # The 2023-03-24 trading halt: the flat 12:00 candle (1679659200000), then 14:00.
    assert gaps[-1] == Gap(start_ts=1679662800000, end_ts=1679662800000, missing=1)
    assert [gap.missing for gap in gaps] == [1, 5, 1, 2, 3, 1, 4, 1, 1, 1, 2, 3, 4, 2, 1]
    assert all(isinstance(gap.start_ts, int) and isinstance(gap.missing, int) for gap in gaps)


def test_other_real_series(shared_data: Path) -> None:
    eth = find_gaps(_ts(shared_data, "binance_ETH-USDT_1h"), HOUR)
    assert (len(eth), sum(gap.missing for gap in eth)) == (15, 32)
    sol = find_gaps(_ts(shared_data, "binance_SOL-USDT_1h"), HOUR)
    assert (len(sol), sum(gap.missing for gap in sol)) == (10, 20)
    assert find_gaps(_ts(shared_data, "binance_BTC-USDT_5m"), 300_000) == []
    assert find_gaps(_ts(shared_data, "binance_BTC-USDT_15m"), 900_000) == []


def test_missing_ranges_on_real_btc(btc_1h: pd.DataFrame) -> None:
    ts = btc_1h["ts"].to_numpy()
    first, last = int(ts[0]), int(ts[-1])
    inside = missing_ranges(ts, first, last + HOUR, HOUR)
    assert inside == [(gap.start_ts, gap.end_ts + HOUR) for gap in find_gaps(ts, HOUR)]
    # Two hours before the data and one after: the fetcher's view of a wider window.
    wider = missing_ranges(ts, first - 2 * HOUR, last + 2 * HOUR, HOUR)
    assert wider[0] == (first - 2 * HOUR, first)
    assert wider[-1] == (last + HOUR, last + 2 * HOUR)
    assert wider[1:-1] == inside
    # A window inside one gap: 2020-02-19 13:00..15:00 of the 12:00..16:00 hole.
    assert missing_ranges(ts, 1582117200000, 1582124400000, HOUR) == [
        (1582117200000, 1582124400000)
    ]
    # A fully covered window: January 2020.
    assert missing_ranges(ts, first, first + 31 * 24 * HOUR, HOUR) == []


# --- Edges and errors -----------------------------------------------------------------------------


def test_window_edges_off_the_grid() -> None:
    # start 00:30 -> first open time 01:00; end 03:30 -> 03:00 is still inside.
    assert missing_ranges(np.array([2 * HOUR]), HOUR // 2, 3 * HOUR + HOUR // 2, HOUR) == [
        (HOUR, 2 * HOUR),
        (3 * HOUR, 4 * HOUR),
    ]
    assert missing_ranges(np.array([], dtype=np.int64), 0, 3 * HOUR, HOUR) == [(0, 3 * HOUR)]
    assert missing_ranges(np.array([HOUR]), 5 * HOUR, 5 * HOUR, HOUR) == []
    assert missing_ranges(np.array([HOUR]), 5 * HOUR, 2 * HOUR, HOUR) == []
    assert missing_ranges(np.array([HOUR]), HOUR + 1, 2 * HOUR, HOUR) == []  # no grid point


def test_few_points_and_unsorted_input() -> None:
    assert find_gaps(np.array([], dtype=np.int64), HOUR) == []
    assert find_gaps(np.array([HOUR]), HOUR) == []
    assert find_gaps([5 * HOUR, HOUR, HOUR, 2 * HOUR], HOUR) == [Gap(3 * HOUR, 4 * HOUR, 2)]


def test_bad_input_is_refused_with_the_value() -> None:
    with pytest.raises(
        ValueError, match=r"ts must be on the 3600000 ms grid; got 3600001 at position 1"
    ):
        find_gaps(np.array([0, HOUR + 1]), HOUR)
    with pytest.raises(ValueError, match=r"ts must be integer milliseconds; got dtype float64"):
        find_gaps(np.array([0.0, 3600000.0]), HOUR)
    with pytest.raises(ValueError, match=r"timeframe_ms must be positive; got 0"):
        missing_ranges(np.array([0]), 0, HOUR, 0)
    with pytest.raises(TypeError, match=r"timeframe_ms must be an int; got '1h'"):
        find_gaps(np.array([0]), "1h")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Gap.missing must be at least 1; got 0"):
        Gap(0, 0, 0)


# --- Properties -----------------------------------------------------------------------------------

_TF = st.sampled_from([60_000, 300_000, HOUR, 86_400_000])


@st.composite
def _grid_subset(draw: st.DrawFn) -> tuple[np.ndarray, int, int]:
    """(timestamps on a grid, possibly shuffled and repeated; timeframe; grid origin index)."""
    tf = draw(_TF)
    base = draw(st.integers(0, 500_000))
    steps = draw(st.lists(st.integers(0, 200), max_size=60))
    points = np.array([(base + step) * tf for step in steps], dtype=np.int64)
    return points, tf, base


def _brute_missing(points: np.ndarray, start: int, end: int, tf: int) -> list[int]:
    have = set(points.tolist())
    first = -(-start // tf) * tf
    return [g for g in range(first, end, tf) if g not in have]


@settings(max_examples=200, deadline=None)
@given(_grid_subset())
def test_find_gaps_accounts_for_every_grid_point(case: tuple[np.ndarray, int, int]) -> None:
    points, tf, _ = case
    gaps = find_gaps(points, tf)
    unique = np.unique(points)
    if len(unique) < 2:
        assert gaps == []
        return
    span = (int(unique[-1]) - int(unique[0])) // tf + 1
    assert len(unique) + sum(gap.missing for gap in gaps) == span
    expected = _brute_missing(unique, int(unique[0]), int(unique[-1]), tf)
    flattened = [g for gap in gaps for g in range(gap.start_ts, gap.end_ts + tf, tf)]
    assert flattened == expected
    for gap in gaps:
        assert gap.missing == (gap.end_ts - gap.start_ts) // tf + 1
        assert gap.start_ts - tf in set(unique.tolist()) and gap.end_ts + tf in set(unique.tolist())


@settings(max_examples=200, deadline=None)
@given(_grid_subset(), st.integers(-50, 250), st.integers(-50, 250), st.integers(0, 10**6))
def test_missing_ranges_matches_brute_force(
    case: tuple[np.ndarray, int, int], lo: int, hi: int, jitter: int
) -> None:
    points, tf, base = case
    # Window ends anywhere, on the grid or not.
    start = (base + lo) * tf + jitter % tf
    end = (base + hi) * tf + (jitter // 7) % tf
    ranges = missing_ranges(points, start, end, tf)
    flattened = [g for a, b in ranges for g in range(a, b, tf)]
    assert flattened == _brute_missing(points, start, end, tf)
    for (_, b1), (a2, _) in itertools.pairwise(ranges):
        assert b1 < a2  # merged: ranges never touch
    assert all(a % tf == 0 and b % tf == 0 and a < b for a, b in ranges)
    if len(np.unique(points)) >= 2:
        first, last = int(points.min()), int(points.max())
        assert missing_ranges(points, first, last + tf, tf) == [
            (gap.start_ts, gap.end_ts + tf) for gap in find_gaps(points, tf)
        ]
