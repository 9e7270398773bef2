"""The Store contract, run on SQLite and on PostgreSQL with real Binance candles.

Hand-checked bars (``zcat ../shared/data/binance_BTC-USDT_1h.csv.gz``):
2020-01-01 00:00 7195.24/7196.25/7175.46/7177.02 vol 511.814901; 2020-01-31 23:00 9401.63/9419.96/
9327.24/9352.89 vol 1129.827829; 2020-02-19 11:00 10125.0/10150.0/10117.66/10148.93 then five hours
missing (Binance maintenance) until 17:00 10149.99/10250.0/10133.1/10158.94; the zero-volume flat
candle 2021-02-11 03:00 at 44582.07.
"""

from __future__ import annotations

import re
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from market.gaps import Gap, find_gaps
from market.series import CANDLE_COLUMNS, SeriesKey
from market.validation import CandleValidationError, Plausibility
from store.candles import SeriesInfo, WriteMethod
from store.db import Store
from store.models import MarketData, SeriesCursor, SeriesGap
from tests.store.conftest import (
    BTC_1H,
    BTC_5M,
    ETH_1H,
    FEB_2020,
    HOUR,
    JAN_2020,
    MAR_2020,
    real_candles,
)

HAND_CHECKED = {  # ts: (open, high, low, close, volume)
    1577836800000: (7195.24, 7196.25, 7175.46, 7177.02, 511.814901),
    1580511600000: (9401.63, 9419.96, 9327.24, 9352.89, 1129.827829),
    1582110000000: (10125.0, 10150.0, 10117.66, 10148.93, 405.969511),
    1582131600000: (10149.99, 10250.0, 10133.1, 10158.94, 4021.115323),
    1613012400000: (44582.07, 44582.07, 44582.07, 44582.07, 0.0),
}
GAP_START, GAP_END = 1582113600000, 1582128000000  # 2020-02-19 12:00 .. 16:00, 5 bars


def _assert_bar(frame: pd.DataFrame, ts: int) -> None:
    row = frame.loc[frame["ts"] == ts, list(CANDLE_COLUMNS[1:])]
    assert len(row) == 1, f"bar {ts} missing"
    assert tuple(row.iloc[0]) == HAND_CHECKED[ts]


def _count(store: Store) -> int:
    with store.database.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(MarketData)).scalar_one())


# -- writing -----------------------------------------------------------------------------------


def test_full_history_written_once_then_idempotent(store: Store) -> None:
    candles = real_candles(BTC_1H)
    assert len(candles) == 37216
    assert store.candles.write_candles(BTC_1H, candles.iloc[:20000]) == 20000
    assert store.candles.write_candles(BTC_1H, candles) == 17216
    assert store.candles.write_candles(BTC_1H, candles) == 0
    assert _count(store) == 37216
    info = store.candles.series_info(BTC_1H)
    assert info == SeriesInfo(BTC_1H, 37216, 1577836800000, 1711926000000, 0, 0)
    loaded = store.candles.load_candles(BTC_1H)
    pd.testing.assert_frame_equal(loaded, candles, check_exact=True)
    for ts in HAND_CHECKED:
        _assert_bar(loaded, ts)


@pytest.mark.parametrize("method", ["copy", "insert"])
def test_interleaved_batches_insert_only_what_is_missing(store: Store, method: WriteMethod) -> None:
    feb = real_candles(BTC_1H, FEB_2020, MAR_2020)
    assert len(feb) == 29 * 24 - 5 - 1  # the 2020-02-09 and 2020-02-19 maintenance gaps
    assert store.candles.write_candles(BTC_1H, feb.iloc[1::2], method=method) == len(feb) // 2
    assert store.candles.write_candles(BTC_1H, feb, method=method) == len(feb) - len(feb) // 2
    assert store.candles.write_candles(BTC_1H, feb.iloc[::3], method=method) == 0
    pd.testing.assert_frame_equal(store.candles.load_candles(BTC_1H), feb, check_exact=True)


def test_load_range_is_start_inclusive_end_exclusive(store: Store) -> None:
    store.candles.write_candles(BTC_1H, real_candles(BTC_1H, JAN_2020, MAR_2020))
    jan = store.candles.load_candles(BTC_1H, JAN_2020, FEB_2020)
    assert len(jan) == 31 * 24
    assert jan["ts"].iloc[0] == JAN_2020 and jan["ts"].iloc[-1] == FEB_2020 - HOUR
    _assert_bar(jan, 1577836800000)
    _assert_bar(jan, 1580511600000)
    assert list(jan.columns) == list(CANDLE_COLUMNS)
    assert jan.dtypes.to_dict() == {"ts": np.int64, **dict.fromkeys(CANDLE_COLUMNS[1:], np.float64)}
    assert isinstance(jan.index, pd.RangeIndex) and jan.index[0] == 0

    around_gap = store.candles.load_candles(BTC_1H, 1582110000000, 1582131600000 + HOUR)
    assert around_gap["ts"].tolist() == [1582110000000, 1582131600000]
    _assert_bar(around_gap, 1582110000000)
    _assert_bar(around_gap, 1582131600000)

    one = store.candles.load_candles(BTC_1H, JAN_2020, JAN_2020 + 1)
    assert one["ts"].tolist() == [JAN_2020]
    assert store.candles.load_candles(BTC_1H, JAN_2020, JAN_2020).empty
    from_feb = store.candles.load_candles(BTC_1H, start_ms=FEB_2020)
    until_feb = store.candles.load_candles(BTC_1H, end_ms=FEB_2020)
    assert len(from_feb) + len(until_feb) == len(store.candles.load_candles(BTC_1H))
    assert from_feb["ts"].iloc[0] == FEB_2020


def test_empty_results_keep_the_candle_frame_shape(store: Store) -> None:
    empty = store.candles.load_candles(ETH_1H)
    assert empty.empty and list(empty.columns) == list(CANDLE_COLUMNS)
    assert empty.dtypes.to_dict() == {
        "ts": np.int64,
        **dict.fromkeys(CANDLE_COLUMNS[1:], np.float64),
    }
    assert store.candles.existing_timestamps(ETH_1H, 0, 2**62).dtype == np.int64
    assert store.candles.series_info(ETH_1H) is None
    assert store.candles.list_series() == []
    assert store.candles.write_candles(ETH_1H, real_candles(ETH_1H).iloc[:0]) == 0


def test_existing_timestamps_skip_the_real_gap(store: Store) -> None:
    feb = real_candles(BTC_1H, FEB_2020, MAR_2020)
    store.candles.write_candles(BTC_1H, feb)
    got = store.candles.existing_timestamps(BTC_1H, GAP_START - 2 * HOUR, GAP_END + 3 * HOUR)
    assert got.dtype == np.int64
    assert got.tolist() == [
        GAP_START - 2 * HOUR,
        GAP_START - HOUR,
        GAP_END + HOUR,
        GAP_END + 2 * HOUR,
    ]
    assert np.array_equal(store.candles.existing_timestamps(BTC_1H), feb["ts"].to_numpy())


def test_bad_batch_names_row_field_value_and_stores_nothing(store: Store) -> None:
    jan = real_candles(BTC_1H, JAN_2020, FEB_2020)
    assert store.candles.write_candles(BTC_1H, jan) == 744
    feb = real_candles(BTC_1H, FEB_2020, MAR_2020)
    bad_high = float(feb["low"].to_numpy()[17]) - 1.0
    feb.loc[17, "high"] = bad_high
    with pytest.raises(
        CandleValidationError, match=re.escape(f"row 17: high {bad_high!r}")
    ) as info:
        store.candles.write_candles(BTC_1H, feb)
    assert {(p.row, p.field) for p in info.value.problems} >= {(17, "high")}
    assert _count(store) == 744
    assert store.candles.load_candles(BTC_1H, FEB_2020).empty
    pd.testing.assert_frame_equal(store.candles.load_candles(BTC_1H), jan, check_exact=True)


def test_candles_off_the_key_grid_are_refused(store: Store) -> None:
    hourly = real_candles(BTC_1H, JAN_2020, JAN_2020 + 8 * HOUR)
    four_hours = SeriesKey("binance", "BTC/USDT", "4h")
    with pytest.raises(CandleValidationError, match=r"row 1: ts 1577840400000"):
        store.candles.write_candles(four_hours, hourly)
    assert store.candles.list_series() == []


def test_an_implausible_price_is_never_stored(store: Store) -> None:
    """A price of 1e308 would be kept for good (first write wins): the write refuses it."""
    jan = real_candles(BTC_1H, JAN_2020, FEB_2020)
    jan.loc[17, "high"] = 1e308
    with pytest.raises(
        CandleValidationError,
        match=r"row 17: high 1e\+308 is outside the plausible price range \[1e-12, 1e\+12\]",
    ):
        store.candles.write_candles(BTC_1H, jan)
    assert _count(store) == 0
    wide = Plausibility(max_price=1.7e308)  # the limits are the caller's (validation.*)
    assert store.candles.write_candles(BTC_1H, jan, plausibility=wide) == 744


# -- replacing a range (`data import --replace`) ------------------------------------------------


def _corrected(frame: pd.DataFrame, ts: int, factor: float) -> pd.DataFrame:
    fixed = frame.copy()
    at = fixed["ts"] == ts
    for name in ("open", "high", "low", "close"):
        fixed.loc[at, name] = fixed.loc[at, name] * factor
    return fixed


def test_replace_swaps_the_range_keeps_the_old_rows_and_nothing_else(store: Store) -> None:
    jan, feb = real_candles(BTC_1H, JAN_2020, FEB_2020), real_candles(BTC_1H, FEB_2020, MAR_2020)
    store.candles.write_candles(BTC_1H, pd.concat([jan, feb], ignore_index=True))
    store.candles.write_candles(ETH_1H, real_candles(ETH_1H, JAN_2020, FEB_2020))
    day = FEB_2020 + 24 * HOUR  # 2020-02-02: replace its 24 candles, one of them corrected
    new = _corrected(real_candles(BTC_1H, day, day + 24 * HOUR), day + 5 * HOUR, 1.01)
    kept: list[pd.DataFrame] = []
    done = store.candles.replace_candles(BTC_1H, new, day, day + 24 * HOUR, keep_old=kept.append)
    assert done.written == 24 and len(done.old) == 24
    pd.testing.assert_frame_equal(kept[0], done.old)
    pd.testing.assert_frame_equal(
        done.old, real_candles(BTC_1H, day, day + 24 * HOUR), check_exact=True
    )
    pd.testing.assert_frame_equal(store.candles.load_candles(BTC_1H, day, day + 24 * HOUR), new)
    # Outside the range: BTC before and after, and the other series, exactly as they were.
    pd.testing.assert_frame_equal(
        store.candles.load_candles(BTC_1H, None, day), real_candles(BTC_1H, JAN_2020, day)
    )
    after = real_candles(BTC_1H, day + 24 * HOUR, MAR_2020)
    pd.testing.assert_frame_equal(store.candles.load_candles(BTC_1H, day + 24 * HOUR), after)
    assert store.candles.series_info(ETH_1H).rows == 744
    # Fewer rows than before (a range the exchange now says is partly empty) is a replace too.
    assert store.candles.replace_candles(BTC_1H, new.iloc[:10], day, day + 24 * HOUR).written == 10
    assert len(store.candles.load_candles(BTC_1H, day, day + 24 * HOUR)) == 10


def test_a_bad_replacement_changes_nothing(store: Store) -> None:
    feb = real_candles(BTC_1H, FEB_2020, MAR_2020)
    store.candles.write_candles(BTC_1H, feb)
    kept: list[pd.DataFrame] = []
    bad = feb.iloc[:48].copy()
    bad.loc[30, "close"] = 1e308
    with pytest.raises(CandleValidationError, match=r"row 30: close 1e\+308 is outside"):
        store.candles.replace_candles(
            BTC_1H, bad, FEB_2020, FEB_2020 + 48 * HOUR, keep_old=kept.append
        )
    with pytest.raises(
        ValueError,
        match=rf"row 24: ts {FEB_2020 + 24 * HOUR} is outside the range being replaced "
        rf"\[{FEB_2020}, {FEB_2020 + 24 * HOUR}\) \(24 rows are\)",
    ):
        store.candles.replace_candles(BTC_1H, feb.iloc[:48], FEB_2020, FEB_2020 + 24 * HOUR)
    with pytest.raises(ValueError, match=r"end_ms must be after start_ms \(1580515200000\)"):
        store.candles.replace_candles(BTC_1H, feb.iloc[:0], FEB_2020, FEB_2020)
    with pytest.raises(ValueError, match=r"start_ms must be a non-negative open time on the 1h"):
        store.candles.replace_candles(BTC_1H, feb.iloc[:1], FEB_2020 + 1, MAR_2020)

    def refuse(old: pd.DataFrame) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):  # the old rows could not be kept: no change
        store.candles.replace_candles(
            BTC_1H, _corrected(feb, FEB_2020, 1.01), FEB_2020, MAR_2020, keep_old=refuse
        )
    assert kept == []
    pd.testing.assert_frame_equal(store.candles.load_candles(BTC_1H), feb, check_exact=True)


def test_write_method_is_checked(store: Store) -> None:
    with pytest.raises(ValueError, match="method must be one of auto, copy, insert; got 'bulk'"):
        store.candles.write_candles(BTC_1H, real_candles(BTC_1H).iloc[:3], method="bulk")  # type: ignore[arg-type]


def test_copy_and_insert_give_identical_tables(store: Store) -> None:
    part = real_candles(BTC_1H, FEB_2020, MAR_2020)  # 691 bars around the real maintenance gaps
    assert store.candles.write_candles(BTC_1H, part.iloc[:300], method="insert") == 300
    assert store.candles.write_candles(BTC_1H, part, method="insert") == len(part) - 300
    assert store.candles.write_candles(BTC_1H, part, method="insert") == 0
    by_insert = store.candles.load_candles(BTC_1H)

    assert store.candles.delete_series(BTC_1H) == len(part)
    assert store.candles.series_info(BTC_1H) is None
    assert store.candles.write_candles(BTC_1H, part.iloc[:300], method="copy") == 300
    assert store.candles.write_candles(BTC_1H, part, method="copy") == len(part) - 300
    assert store.candles.write_candles(BTC_1H, part, method="auto") == 0
    by_copy = store.candles.load_candles(BTC_1H)

    pd.testing.assert_frame_equal(by_copy, by_insert, check_exact=True)
    pd.testing.assert_frame_equal(by_copy, part, check_exact=True)


# -- series overview ---------------------------------------------------------------------------


def test_list_series_over_three_real_series(store: Store) -> None:
    btc = real_candles(BTC_1H, JAN_2020, MAR_2020)
    eth = real_candles(ETH_1H, JAN_2020, FEB_2020)
    five = real_candles(BTC_5M)
    day_one = five[five["ts"] < five["ts"].iloc[0] + 24 * HOUR]
    store.candles.write_candles(ETH_1H, eth)
    store.candles.write_candles(BTC_5M, day_one)
    store.candles.write_candles(BTC_1H, btc)
    btc_gaps = find_gaps(store.candles.existing_timestamps(BTC_1H), BTC_1H.timeframe_ms)
    store.candles.replace_gaps(BTC_1H, btc_gaps)

    assert [(g.start_ts, g.end_ts, g.missing) for g in btc_gaps] == [
        (1581213600000, 1581213600000, 1),
        (GAP_START, GAP_END, 5),
    ]
    assert store.candles.list_series() == [
        SeriesInfo(BTC_1H, len(btc), JAN_2020, MAR_2020 - HOUR, 2, 6),
        SeriesInfo(BTC_5M, 288, 1704067200000, 1704067200000 + 24 * HOUR - 300_000, 0, 0),
        SeriesInfo(ETH_1H, 744, JAN_2020, FEB_2020 - HOUR, 0, 0),
    ]
    assert len(btc) == 60 * 24 - 6
    assert store.candles.series_info(ETH_1H) == store.candles.list_series()[2]
    info = store.candles.list_series()[0]
    with pytest.raises(FrozenInstanceError):
        info.rows = 0  # type: ignore[misc]


# -- ingestion bookkeeping ---------------------------------------------------------------------


def test_cursor_round_trip(fresh_url: str) -> None:
    frozen = datetime(2024, 4, 1, 12, 30, tzinfo=UTC)
    with Store.open(fresh_url, clock=lambda: frozen) as store:
        assert store.candles.get_cursor(BTC_1H) is None
        store.candles.set_cursor(BTC_1H, 1711926000000)
        store.candles.set_cursor(ETH_1H, FEB_2020)
        assert store.candles.get_cursor(BTC_1H) == 1711926000000
        store.candles.set_cursor(BTC_1H, GAP_START - HOUR)  # moved back after a repair: allowed
        assert store.candles.get_cursor(BTC_1H) == GAP_START - HOUR
        assert store.candles.get_cursor(ETH_1H) == FEB_2020
        assert store.candles.get_cursor(BTC_5M) is None
        with store.database.engine.connect() as connection:
            stamps = connection.execute(select(SeriesCursor.updated_at)).scalars().all()
        assert stamps == [frozen, frozen]
        assert all(stamp.tzinfo is not None for stamp in stamps)


def test_cursor_must_be_on_the_grid(store: Store) -> None:
    with pytest.raises(ValueError, match=r"ts_ms must be a non-negative open time on the 1h grid"):
        store.candles.set_cursor(BTC_1H, JAN_2020 + 1)
    with pytest.raises(ValueError, match=r"ts_ms must be an integer ms timestamp; got 1\.5"):
        store.candles.set_cursor(BTC_1H, 1.5)  # type: ignore[arg-type]
    assert store.candles.get_cursor(BTC_1H) is None


def test_gaps_round_trip_on_the_full_real_history(fresh_url: str) -> None:
    frozen = datetime(2024, 4, 1, tzinfo=UTC)
    with Store.open(fresh_url, clock=lambda: frozen) as store:
        store.candles.write_candles(BTC_1H, real_candles(BTC_1H))
        gaps = find_gaps(store.candles.existing_timestamps(BTC_1H), BTC_1H.timeframe_ms)
        assert (len(gaps), sum(g.missing for g in gaps)) == (15, 32)  # SOURCES.md
        store.candles.replace_gaps(BTC_1H, gaps)
        store.candles.replace_gaps(ETH_1H, [Gap(GAP_START, GAP_END, 5)])
        assert store.candles.gaps(BTC_1H) == gaps
        info = store.candles.series_info(BTC_1H)
        assert info is not None and (info.gap_count, info.missing_bars) == (15, 32)
        with store.database.engine.connect() as connection:
            detected = set(connection.execute(select(SeriesGap.detected_at)).scalars())
        assert detected == {frozen}

        store.candles.replace_gaps(BTC_1H, gaps[:2])
        assert store.candles.gaps(BTC_1H) == gaps[:2]
        store.candles.replace_gaps(BTC_1H, [])
        assert store.candles.gaps(BTC_1H) == []
        assert store.candles.gaps(ETH_1H) == [Gap(GAP_START, GAP_END, 5)]


def test_inconsistent_gaps_are_refused_and_keep_the_old_ones(store: Store) -> None:
    store.candles.replace_gaps(BTC_1H, [Gap(GAP_START, GAP_END, 5)])
    with pytest.raises(ValueError, match=r"gaps\[1\]\.missing must be the bars .* \(5\); got 4"):
        store.candles.replace_gaps(
            BTC_1H, [Gap(1581213600000, 1581213600000, 1), Gap(GAP_START, GAP_END, 4)]
        )
    with pytest.raises(ValueError, match=r"gaps\[1\]\.start_ts is listed twice; got 1582113600000"):
        store.candles.replace_gaps(BTC_1H, [Gap(GAP_START, GAP_END, 5), Gap(GAP_START, GAP_END, 5)])
    with pytest.raises(ValueError, match=r"gaps\[0\]\.start_ts must be .* on the 1h grid"):
        store.candles.replace_gaps(BTC_1H, [Gap(GAP_START + 1, GAP_END, 5)])
    assert store.candles.gaps(BTC_1H) == [Gap(GAP_START, GAP_END, 5)]
