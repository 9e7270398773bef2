"""Candle validation on real Binance candles: every rule, its message, and the salvage path."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.files import read_candle_file
from market.series import CANDLE_COLUMNS
from market.validation import (
    DEFAULT_PLAUSIBILITY,
    CandleProblem,
    CandleValidationError,
    Plausibility,
    Rule,
    _all_good,
    split_valid,
    validate_candle_array,
    validate_candles,
)
from tests.conftest import shared_data_dir

HOUR = 3_600_000
ANY_MOVE = Plausibility(max_bar_move=1e300)
# The two genuine zero-volume flat candles of BTC/USDT 1h (SOURCES.md), hand-checked with zcat:
# 2021-02-11 03:00 UTC: 44582.07 x4, volume 0.0; 2023-03-24 12:00 UTC (trading halt): 28080.0 x4.
FLAT_CANDLES = {1613012400000: 44582.07, 1679659200000: 28080.0}


@pytest.fixture
def head(btc_1h: pd.DataFrame) -> pd.DataFrame:
    """The first 40 real BTC/USDT 1h candles (2020-01-01 00:00 to 15:00 UTC), a fresh copy."""
    return btc_1h.head(40).copy()


def _refusal(frame: pd.DataFrame, timeframe: str = "1h") -> CandleValidationError:
    with pytest.raises(CandleValidationError) as caught:
        validate_candles(frame, timeframe)
    return caught.value


def _as_object(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    frame[column] = frame[column].astype(object)
    return frame


# --- Real data is valid as it is ------------------------------------------------------------------


def test_real_btc_1h_is_valid_and_unchanged(btc_1h: pd.DataFrame) -> None:
    clean = validate_candles(btc_1h, "1h")
    pd.testing.assert_frame_equal(clean, btc_1h[list(CANDLE_COLUMNS)])
    assert list(clean.columns) == list(CANDLE_COLUMNS)
    assert clean["ts"].dtype == np.int64
    assert all(clean[name].dtype == np.float64 for name in CANDLE_COLUMNS[1:])
    assert isinstance(clean.index, pd.RangeIndex)
    assert len(clean) == 37216


@pytest.mark.parametrize(
    ("name", "timeframe", "rows"),
    [
        ("binance_ETH-USDT_5m", "5m", 26208),
        ("binance_BTC-USDT_15m", "15m", 8736),
        ("binance_SOL-USDT_1h", "1h", 31870),
    ],
)
def test_other_real_series_are_valid(
    shared_data: Path, name: str, timeframe: str, rows: int
) -> None:
    frame = pd.read_csv(shared_data / f"{name}.csv.gz").rename(columns={"timestamp": "ts"})
    assert len(validate_candles(frame, timeframe)) == rows


def test_the_two_zero_volume_flat_candles_are_accepted(btc_1h: pd.DataFrame) -> None:
    flat = btc_1h[btc_1h["volume"] == 0]
    assert flat["ts"].tolist() == list(FLAT_CANDLES)
    for ts, price in FLAT_CANDLES.items():
        row = btc_1h[btc_1h["ts"] == ts]
        assert row[["open", "high", "low", "close"]].to_numpy().tolist() == [[price] * 4]
        # On their own, and with their neighbours, they pass strict validation and the salvage path.
        alone = validate_candles(row, "1h")
        assert alone["volume"].tolist() == [0.0]
        at = int(row.index[0])
        neighbours = btc_1h.iloc[at - 2 : at + 2]
        good, rejects = split_valid(neighbours, "1h")
        assert len(good) == 4 and rejects.empty


def test_empty_frame_is_a_valid_empty_candle_frame() -> None:
    clean = validate_candles(pd.DataFrame(columns=list(CANDLE_COLUMNS)), "1h")
    assert len(clean) == 0 and list(clean.columns) == list(CANDLE_COLUMNS)
    assert clean["ts"].dtype == np.int64 and clean["close"].dtype == np.float64


# --- Each rule, its row, field, value and message -------------------------------------------------

Mutation = Callable[[pd.DataFrame], pd.DataFrame]


def _set(row: int, column: str, value: Any) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(value, float) or frame[column].dtype != np.float64:
            _as_object(frame, column)
        frame.loc[row, column] = value  # RangeIndex: label == position
        return frame

    return mutate


def _swap_rows(a: int, b: int) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        order = list(range(len(frame)))
        order[a], order[b] = order[b], order[a]
        return frame.iloc[order].reset_index(drop=True)

    return mutate


RULE_CASES = [
    pytest.param(
        _set(17, "high", 7240.0),
        (17, "high", 7240.0, Rule.HIGH_BELOW_OPEN_CLOSE),
        "row 17: high 7240.0 is below max(open, close) 7244.34",
        id="high-below-open",
    ),
    pytest.param(
        _set(17, "low", 7240.0),
        (17, "low", 7240.0, Rule.LOW_ABOVE_OPEN_CLOSE),
        "row 17: low 7240.0 is above min(open, close) 7236.83",
        id="low-above-close",
    ),
    pytest.param(
        _set(3, "close", "abc"),
        (3, "close", "abc", Rule.NOT_A_NUMBER),
        "row 3: close 'abc' is not a number",
        id="text-price",
    ),
    pytest.param(
        _set(5, "open", float("nan")),
        (5, "open", None, Rule.MISSING_VALUE),
        "row 5: open is missing (got nan)",
        id="nan-price",
    ),
    pytest.param(
        _set(6, "volume", float("inf")),
        (6, "volume", float("inf"), Rule.NOT_FINITE),
        "row 6: volume inf is not finite",
        id="inf-volume",
    ),
    pytest.param(
        _set(7, "low", 0.0),
        (7, "low", 0.0, Rule.NOT_POSITIVE),
        "row 7: low 0.0 is not positive",
        id="zero-price",
    ),
    pytest.param(
        _set(0, "open", -7195.24),
        (0, "open", -7195.24, Rule.NOT_POSITIVE),
        "row 0: open -7195.24 is not positive",
        id="negative-price",
    ),
    pytest.param(
        _set(8, "volume", -915.545974),
        (8, "volume", -915.545974, Rule.NEGATIVE_VOLUME),
        "row 8: volume -915.545974 is negative",
        id="negative-volume",
    ),
    pytest.param(
        _set(9, "ts", 1577869200001),
        (9, "ts", 1577869200001, Rule.OFF_GRID),
        "row 9: ts 1577869200001 (2020-01-01 09:00:00.001 UTC) is not on the 1h grid "
        "(1577869200001 % 3600000 = 1)",
        id="off-grid",
    ),
    pytest.param(
        _set(10, "ts", 1577872800000.5),
        (10, "ts", 1577872800000.5, Rule.NOT_AN_INTEGER),
        "row 10: ts 1577872800000.5 is not an integer millisecond timestamp",
        id="fractional-ts",
    ),
    pytest.param(
        _set(10, "ts", "yesterday"),
        (10, "ts", "yesterday", Rule.NOT_AN_INTEGER),
        "row 10: ts 'yesterday' is not an integer millisecond timestamp",
        id="text-ts",
    ),
    pytest.param(
        _set(11, "ts", None),
        (11, "ts", None, Rule.MISSING_VALUE),
        "row 11: ts is missing (got None)",
        id="missing-ts",
    ),
    pytest.param(
        _set(12, "ts", 1577876400000),
        (12, "ts", 1577876400000, Rule.DUPLICATE_TS),
        "row 12: ts 1577876400000 (2020-01-01 11:00:00 UTC) duplicates row 11 (different values)",
        id="duplicate-ts",
    ),
    pytest.param(
        _swap_rows(20, 21),
        (21, "ts", 1577908800000, Rule.DECREASING_TS),
        "row 21: ts 1577908800000 (2020-01-01 20:00:00 UTC) is before row 20's ts 1577912400000 "
        "(2020-01-01 21:00:00 UTC)",
        id="decreasing-ts",
    ),
]


@pytest.mark.parametrize(("mutate", "expected", "message"), RULE_CASES)
def test_each_rule_names_row_field_and_value(
    head: pd.DataFrame,
    mutate: Mutation,
    expected: tuple[int, str, object, str],
    message: str,
) -> None:
    error = _refusal(mutate(head))
    assert isinstance(error, ValueError)
    assert len(error.problems) == 1
    problem = error.problems[0]
    row, field, value, rule = expected
    assert (problem.row, problem.field, problem.rule) == (row, field, rule)
    if value is not None:
        assert problem.value == value
    assert str(problem) == message
    assert re.search(re.escape(message), str(error))
    assert str(error).startswith("invalid 1h candles, 1 problem:")


def test_problem_is_a_comparable_frozen_record(head: pd.DataFrame) -> None:
    error = _refusal(_set(17, "high", 7240.0)(head))
    assert error.problems == [CandleProblem(17, "high", 7240.0, "high_below_open_close")]
    with pytest.raises(AttributeError):
        error.problems[0].row = 3  # type: ignore[misc]


def test_high_and_low_swapped_breaks_three_rules(head: pd.DataFrame) -> None:
    head.loc[17, ["high", "low"]] = [7224.92, 7249.99]
    error = _refusal(head)
    assert [(p.row, p.field, p.rule) for p in error.problems] == [
        (17, "high", Rule.HIGH_BELOW_OPEN_CLOSE),
        (17, "low", Rule.LOW_ABOVE_OPEN_CLOSE),
        (17, "high", Rule.HIGH_BELOW_LOW),
    ]
    assert "row 17: high 7224.92 is below low 7249.99" in str(error)


def test_identical_duplicate_row_is_named_as_such(head: pd.DataFrame) -> None:
    doubled = pd.concat([head, head.iloc[[39]]], ignore_index=True)
    with pytest.raises(
        CandleValidationError, match=r"row 40: ts 1577977200000 .* duplicates row 39 "
    ):
        validate_candles(doubled, "1h")
    assert "(identical values)" in str(_refusal(doubled))


def test_missing_and_duplicated_columns(head: pd.DataFrame) -> None:
    with pytest.raises(
        CandleValidationError,
        match=r"missing column 'volume' \(columns: ts, open, high, low, close\)",
    ) as caught:
        validate_candles(head.drop(columns="volume"), "1h")
    assert caught.value.problems == [CandleProblem(None, "volume", None, "missing_column")]
    with pytest.raises(CandleValidationError, match=r"missing column 'ts' \(columns: timestamp, "):
        validate_candles(head.rename(columns={"ts": "timestamp"}), "1h")
    twice = pd.concat([head, head[["close"]]], axis=1)
    with pytest.raises(CandleValidationError, match=r"column 'close' appears 2 times"):
        validate_candles(twice, "1h")
    with pytest.raises(CandleValidationError, match=r"missing column 'volume'"):
        split_valid(head.drop(columns="volume"), "1h")


def test_seconds_instead_of_milliseconds_gets_a_hint(head: pd.DataFrame) -> None:
    head["ts"] = head["ts"] // 1000
    error = _refusal(head)
    assert len(error.problems) == 40
    assert str(error.problems[0]) == (
        "row 0: ts 1577836800 (1970-01-19 06:17:16.800 UTC) is not on the 1h grid "
        "(1577836800 % 3600000 = 1036800) (seconds? Redline timestamps are milliseconds)"
    )


def test_message_shows_the_first_five_and_counts_the_rest(head: pd.DataFrame) -> None:
    rows = [2, 4, 8, 16, 20, 24, 30, 39]
    head.loc[rows, "volume"] = -head.loc[rows, "volume"]
    error = _refusal(head)
    text = str(error)
    assert text.startswith("invalid 1h candles, 8 problems:\n")
    assert "row 2: volume -655.156809 is negative" in text
    assert "row 20: volume -391.834174 is negative" in text
    assert "row 24:" not in text
    assert text.endswith("\n  ... and 3 more")
    assert [p.row for p in error.problems] == rows


def test_rows_are_positions_not_index_labels(head: pd.DataFrame) -> None:
    head.index = pd.RangeIndex(1000, 1040)
    head.loc[1017, "high"] = 7240.0
    error = _refusal(head)
    assert error.problems[0].row == 17
    assert isinstance(validate_candles(head.drop(index=1017), "1h").index, pd.RangeIndex)


def test_unknown_timeframe_and_non_frames_are_refused(head: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"timeframe must be one of 1m, .*; got '7x'"):
        validate_candles(head, "7x")
    with pytest.raises(TypeError, match=r"candles must be a pandas DataFrame; got list"):
        validate_candles([[1, 2]], "1h")  # type: ignore[arg-type]
    # On a 4h grid most of the real 1h open times are off it.
    assert len(_refusal(head, "4h").problems) == 30


def test_types_are_coerced_to_the_candle_dtypes(head: pd.DataFrame) -> None:
    expected = validate_candles(head, "1h")
    text = head.astype(str)  # as if every cell came from a text source
    pd.testing.assert_frame_equal(validate_candles(text, "1h"), expected)
    floats = head.assign(ts=head["ts"].astype(float), extra="kept out")
    pd.testing.assert_frame_equal(validate_candles(floats, "1h"), expected)
    dates = head.assign(ts=pd.to_datetime(head["ts"], unit="ms", utc=True))
    pd.testing.assert_frame_equal(validate_candles(dates, "1h"), expected)
    nullable = head.astype({"ts": "Int64", "open": "Float64"})
    pd.testing.assert_frame_equal(validate_candles(nullable, "1h"), expected)
    flags = head.assign(close=True)
    assert {p.rule for p in _refusal(flags).problems} == {Rule.NOT_A_NUMBER}


# --- split_valid ----------------------------------------------------------------------------------


def test_split_valid_on_real_data_rejects_nothing(btc_1h: pd.DataFrame) -> None:
    good, rejects = split_valid(btc_1h, "1h")
    pd.testing.assert_frame_equal(good, btc_1h[list(CANDLE_COLUMNS)])
    assert rejects.empty
    assert list(rejects.columns) == [*btc_1h.columns, "reason"]


def test_split_valid_keeps_good_rows_and_explains_rejects(head: pd.DataFrame) -> None:
    _as_object(head, "close")
    head.loc[3, "close"] = "abc"
    head.loc[9, "ts"] = 1577869200001
    head.loc[17, ["high", "low"]] = [7224.92, 7249.99]
    good, rejects = split_valid(head, "1h")
    assert rejects.index.tolist() == [3, 9, 17]
    assert rejects.index.name == "row"
    assert rejects.loc[3, "close"] == "abc"  # the input's own value
    assert rejects.loc[3, "reason"] == "close 'abc' is not a number"
    assert str(rejects.loc[9, "reason"]).startswith(
        "ts 1577869200001 (2020-01-01 09:00:00.001 UTC)"
    )
    assert rejects.loc[17, "reason"] == (
        "high 7224.92 is below max(open, close) 7244.34; "
        "low 7249.99 is above min(open, close) 7236.83; high 7224.92 is below low 7249.99"
    )
    assert len(good) == 37
    assert 1577847600000 not in good["ts"].tolist()
    assert good.loc[good["ts"] == 1577844000000, "close"].item() == 7242.85
    pd.testing.assert_frame_equal(validate_candles(good, "1h"), good)


def test_split_valid_rejects_later_duplicates(head: pd.DataFrame) -> None:
    overlap = pd.concat([head, head.iloc[10:15]], ignore_index=True)
    good, rejects = split_valid(overlap, "1h")
    pd.testing.assert_frame_equal(good, head.reset_index(drop=True))
    assert rejects.index.tolist() == [40, 41, 42, 43, 44]
    assert rejects.loc[40, "reason"] == (
        "ts 1577872800000 (2020-01-01 10:00:00 UTC) duplicates row 10 (identical values)"
    )
    # A conflicting later copy is rejected too: the first one wins.
    revised = overlap.copy()
    revised.loc[40, "close"] = 7203.0
    good, rejects = split_valid(revised, "1h")
    assert good.loc[10, "close"] == 7202.0
    assert str(rejects.loc[40, "reason"]).endswith("duplicates row 10 (different values)")


def test_split_valid_a_corrupt_first_copy_does_not_shadow_a_good_one(head: pd.DataFrame) -> None:
    fixed_later = pd.concat([head, head.iloc[[5]]], ignore_index=True)
    fixed_later.loc[5, "open"] = float("nan")
    good, rejects = split_valid(fixed_later, "1h")
    assert rejects.index.tolist() == [5]
    pd.testing.assert_frame_equal(good, head.reset_index(drop=True))


def test_split_valid_sorts_out_of_order_rows(btc_1h: pd.DataFrame) -> None:
    month = btc_1h.iloc[:744]
    swapped = pd.concat([month.iloc[400:], month.iloc[:400]], ignore_index=True)
    assert len(_refusal(swapped).problems) == 1  # strict: row 344 goes back in time
    good, rejects = split_valid(swapped, "1h")
    assert rejects.empty
    pd.testing.assert_frame_equal(good, month.reset_index(drop=True))
    shuffled = month.sample(frac=1.0, random_state=7)
    good, rejects = split_valid(shuffled, "1h")
    assert rejects.empty
    pd.testing.assert_frame_equal(good, month.reset_index(drop=True))


# --- A million rows -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def million(btc_1h: pd.DataFrame) -> pd.DataFrame:
    """27 copies of the real BTC 1h series laid end to end (1,004,832 real candles, shifted ts)."""
    span = (int(btc_1h["ts"].iloc[-1]) - int(btc_1h["ts"].iloc[0])) // HOUR * HOUR + HOUR
    copies = [btc_1h.assign(ts=btc_1h["ts"] + k * span) for k in range(27)]
    return pd.concat(copies, ignore_index=True)


def test_a_million_rows_validate_in_well_under_a_second(million: pd.DataFrame) -> None:
    started = time.perf_counter()
    clean = validate_candles(million, "1h")
    elapsed = time.perf_counter() - started
    assert len(clean) == 1_004_832
    assert elapsed < 2.0, f"validate_candles took {elapsed:.2f}s for 1M rows"


def test_a_million_rows_with_bad_ones_split_fast(million: pd.DataFrame) -> None:
    bad = million.copy()
    rows = np.arange(1000, 1_000_000, 1000)
    bad.loc[rows, "volume"] = -1.0
    bad = pd.concat([bad, million.iloc[:5000]], ignore_index=True)  # 5000 identical duplicates
    started = time.perf_counter()
    good, rejects = split_valid(bad, "1h")
    elapsed = time.perf_counter() - started
    # Rows 1000..4000 are bad in the first copy, so their later (good) copies are kept instead.
    assert len(rejects) == len(rows) + 5000 - 4
    assert len(good) == 1_004_832 - len(rows) + 4
    assert good["volume"].to_numpy()[1000] == million["volume"].to_numpy()[1000]
    assert elapsed < 5.0, f"split_valid took {elapsed:.2f}s"
    started = time.perf_counter()
    error = _refusal(bad)
    # Strict: every bad row, every duplicate, and the one step back in time where the copy starts.
    assert len(error.problems) == len(rows) + 5000 + 1
    assert error.problems[-1].rule == Rule.DUPLICATE_TS
    assert sum(p.rule == Rule.DECREASING_TS for p in error.problems) == 1
    assert time.perf_counter() - started < 5.0


# --- Properties -----------------------------------------------------------------------------------

TEXT = "n/a"
# Corruptions that break a candle whatever its real values (they read the row's own prices).
CORRUPTIONS: dict[str, list[str]] = {
    "ts": ["off_grid", "fraction", "nan", "text", "repeat"],
    "open": ["nan", "inf", "-inf", "zero", "negative", "text", "above_high"],
    "high": ["nan", "inf", "zero", "negative", "text", "below_low"],
    "low": ["nan", "-inf", "zero", "negative", "text", "above_high"],
    "close": ["nan", "inf", "zero", "negative", "text", "below_low"],
    "volume": ["nan", "inf", "negative", "text"],
}


def _corrupt(frame: pd.DataFrame, row: int, column: str, kind: str) -> None:
    original = frame.iloc[row]
    values: dict[str, Any] = {
        "off_grid": int(original["ts"]) + 1 + row % 100,
        "fraction": float(original["ts"]) + 0.25,
        "nan": float("nan"),
        "inf": float("inf"),
        "-inf": float("-inf"),
        "zero": 0.0,
        "negative": -float(original[column]) - 1.0,
        "text": TEXT,
        "above_high": float(original["high"]) * 2,
        "below_low": float(original["low"]) / 2,
        "repeat": int(frame["ts"].iloc[row - 1 if row else 1]),
    }
    value = values[kind]
    if not isinstance(value, float) or frame[column].dtype != np.float64:
        _as_object(frame, column)
    frame.loc[row, column] = value  # RangeIndex: label == position


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_one_corrupted_real_cell_is_always_refused_and_named(
    btc_1h: pd.DataFrame, data: st.DataObject
) -> None:
    start = data.draw(st.integers(0, len(btc_1h) - 60), label="start")
    length = data.draw(st.integers(2, 50), label="length")
    row = data.draw(st.integers(0, length - 1), label="row")
    column = data.draw(st.sampled_from(CANDLE_COLUMNS), label="column")
    kind = data.draw(st.sampled_from(CORRUPTIONS[column]), label="kind")
    window = btc_1h.iloc[start : start + length].reset_index(drop=True)
    frame = window.copy()
    _corrupt(frame, row, column, kind)

    with pytest.raises(CandleValidationError) as caught:
        validate_candles(frame, "1h")
    message = str(caught.value)
    assert re.search(rf"\brow {row}\b", message), message
    assert column in message, message
    # Repeating row 1's ts at row 0 makes row 1 the later duplicate ("duplicates row 0").
    involved = {1} if (kind == "repeat" and row == 0) else {row}
    assert {p.row for p in caught.value.problems} == involved

    good, rejects = split_valid(frame, "1h")
    assert set(rejects.index) == involved
    assert len(good) + len(rejects) == len(frame)
    kept = validate_candles(frame.drop(index=list(involved)), "1h")
    pd.testing.assert_frame_equal(good, kept)


@st.composite
def _messy_frames(draw: st.DrawFn) -> pd.DataFrame:
    """Small frames of candle-shaped rows, some valid, some broken anywhere (a pure-function test,
    so the values are generated)."""
    n = draw(st.integers(0, 30))
    rows = []
    for _ in range(n):
        slot = draw(st.integers(0, 12))
        ts: object = slot * HOUR + draw(st.sampled_from([0, 0, 0, 0, 1, 1800_000]))
        base = draw(st.floats(1.0, 1e5))
        o = base * draw(st.floats(0.9, 1.1))
        c = base * draw(st.floats(0.9, 1.1))
        h = max(o, c) * draw(st.floats(1.0, 1.05))
        lo = min(o, c) * draw(st.floats(0.95, 1.0))
        v = draw(st.floats(0.0, 1e4))
        cells: list[object] = [ts, o, h, lo, c, v]
        if draw(st.booleans()):
            at = draw(st.integers(0, 5))
            cells[at] = draw(
                st.one_of(
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.just(TEXT),
                    st.none(),
                )
            )
        rows.append(cells)
    return pd.DataFrame(rows, columns=list(CANDLE_COLUMNS), dtype=object)


@settings(max_examples=150, deadline=None)
@given(_messy_frames())
def test_split_valid_partitions_and_agrees_with_strict_validation(frame: pd.DataFrame) -> None:
    # The rows' own cells only: the generated closes jump up to 1e5x between neighbours, and the
    # move rule compares neighbours, which the two paths order differently (strict in input order
    # after refusing a step back, salvage by ts). test_moves_agree_* covers the moves.
    good, rejects = split_valid(frame, "1h", plausibility=ANY_MOVE)
    assert len(good) + len(rejects) == len(frame)
    assert rejects.index.is_unique and rejects.index.is_monotonic_increasing
    assert set(rejects.index) <= set(range(len(frame)))
    assert list(rejects.columns) == [*CANDLE_COLUMNS, "reason"]
    assert rejects["reason"].str.len().gt(0).all()
    # The good part is itself a valid candle frame, unchanged by validation.
    pd.testing.assert_frame_equal(validate_candles(good, "1h", plausibility=ANY_MOVE), good)
    try:
        strict = validate_candles(frame, "1h", plausibility=ANY_MOVE)
    except CandleValidationError as error:
        flagged = {p.row for p in error.problems}
        assert flagged and set(rejects.index) <= flagged
    else:
        assert rejects.empty
        pd.testing.assert_frame_equal(strict, good)


# --- Plausibility: what no market prints ----------------------------------------------------------

REAL_CANDLE_FILES = sorted(
    path.name
    for path in shared_data_dir().glob("binance_*_*.csv.gz")
    if not path.name.endswith("_trades.csv.gz")
)


@pytest.mark.parametrize("name", REAL_CANDLE_FILES)
def test_every_real_series_passes_the_default_plausibility(shared_data: Path, name: str) -> None:
    """The defaults accept all the real data, listing wicks (LINK low 0.0001) and DOGE's x1.7 hour
    included, in both paths."""
    frame = read_candle_file(shared_data / name)
    timeframe = name.removesuffix(".csv.gz").rsplit("_", 1)[1]
    assert len(validate_candles(frame, timeframe)) == len(frame)
    assert split_valid(frame, timeframe)[1].empty


def test_the_real_files_are_all_there() -> None:
    assert len(REAL_CANDLE_FILES) == 13  # 10 hourly series, BTC and ETH at 5m and 15m


def test_a_price_of_1e308_is_refused_naming_row_field_and_value(head: pd.DataFrame) -> None:
    head.loc[17, "high"] = 1e308
    error = _refusal(head)
    assert [(p.row, p.field, p.rule) for p in error.problems] == [
        (17, "high", Rule.IMPLAUSIBLE_PRICE)
    ]
    with pytest.raises(
        CandleValidationError,
        match=r"^invalid 1h candles, 1 problem:\n  row 17: high 1e\+308 is outside the plausible "
        r"price range \[1e-12, 1e\+12\] \(validation.min_price, validation.max_price\)$",
    ):
        validate_candles(head, "1h")


def test_prices_alternating_1e308_and_1e_300_are_refused(head: pd.DataFrame) -> None:
    for name in ("open", "high", "low", "close"):
        head[name] = [1e308 if k % 2 else 1e-300 for k in range(len(head))]
    error = _refusal(head)
    assert {p.rule for p in error.problems} == {Rule.IMPLAUSIBLE_PRICE}
    assert len(error.problems) == 4 * len(head)  # every price of every row
    assert str(error.problems[0]) == (
        "row 0: open 1e-300 is outside the plausible price range [1e-12, 1e+12] "
        "(validation.min_price, validation.max_price)"
    )
    # A price range opened up to every float still leaves the move rule: every 1e308 row is named
    # against the 1e-300 row before it, and every 1e-300 row agrees with the accepted one before.
    wide = Plausibility(min_price=1e-320, max_price=1.7e308)
    with pytest.raises(CandleValidationError) as caught:
        validate_candles(head, "1h", plausibility=wide)
    problems = caught.value.problems
    assert [p.row for p in problems] == list(range(1, len(head), 2))
    assert {p.rule for p in problems} == {Rule.IMPLAUSIBLE_MOVE}
    assert str(problems[0]) == (
        "row 1: close 1e+308 is inf times row 0's close 1e-300, a move beyond "
        "validation.max_bar_move 10"
    )


def _spike(frame: pd.DataFrame, row: int, factor: float) -> None:
    """Scale one real candle's prices by ``factor`` (still a self-consistent candle)."""
    for name in ("open", "high", "low", "close"):
        frame.loc[row, name] = frame.loc[row, name] * factor


def test_one_spike_is_one_problem_and_the_row_after_it_is_fine(head: pd.DataFrame) -> None:
    """Row 17 x50: named against row 16; row 18 is judged against row 16 too, not the spike."""
    _spike(head, 17, 50.0)
    with pytest.raises(
        CandleValidationError,
        match=r"^invalid 1h candles, 1 problem:\n  row 17: close 361841.5 is 49.9 times row 16's "
        r"close 7245.37, a move beyond validation.max_bar_move 10$",
    ):
        validate_candles(head, "1h")
    good, rejects = split_valid(head, "1h")
    assert rejects.index.tolist() == [17]
    assert rejects.loc[17, "reason"] == (
        "close 361841.5 is 49.9 times row 16's close 7245.37, a move beyond validation.max_bar_move 10"
    )
    assert len(good) == len(head) - 1


def test_a_bad_first_row_is_the_one_named(head: pd.DataFrame) -> None:
    _spike(head, 0, 0.01)
    error = _refusal(head)
    assert [str(p) for p in error.problems] == [
        "row 0: close 71.7702 is 1/101 of row 1's close 7216.27, a move beyond "
        "validation.max_bar_move 10"
    ]


def test_the_move_limit_is_a_factor_both_ways_and_configurable(head: pd.DataFrame) -> None:
    _spike(head, 20, 9.9)  # within x10 of row 19, and row 21 within x10 of row 20 or 19
    assert len(validate_candles(head, "1h")) == len(head)
    tight = Plausibility(max_bar_move=1.5)
    error = _refusal_with(head, tight)
    assert [p.row for p in error.problems] == [20]
    assert str(error.problems[0]).endswith("a move beyond validation.max_bar_move 1.5")


def _refusal_with(frame: pd.DataFrame, plausibility: Plausibility) -> CandleValidationError:
    with pytest.raises(CandleValidationError) as caught:
        validate_candles(frame, "1h", plausibility=plausibility)
    return caught.value


def test_a_level_shift_names_every_row_after_it(head: pd.DataFrame) -> None:
    """A redenomination (x1000 from row 30 on) is not a spike: every later row is named, so the
    operator raises validation.max_bar_move or splits the file, knowingly."""
    for row in range(30, len(head)):
        _spike(head, row, 1000.0)
    assert [p.row for p in _refusal(head).problems] == list(range(30, len(head)))
    assert split_valid(head, "1h")[1].index.tolist() == list(range(30, len(head)))


@settings(max_examples=100, deadline=None)
@given(
    spikes=st.lists(
        st.tuples(st.integers(0, 39), st.sampled_from([0.001, 0.05, 20.0, 1e4])),
        max_size=4,
        unique_by=lambda spike: spike[0],
    )
)
def test_moves_agree_between_strict_and_salvage(
    btc_1h: pd.DataFrame, spikes: list[tuple[int, float]]
) -> None:
    """On ordered frames the two paths name the same rows, and what salvage keeps is valid."""
    frame = btc_1h.head(40).copy()
    for row, factor in spikes:
        _spike(frame, row, factor)
    good, rejects = split_valid(frame, "1h")
    try:
        validate_candles(frame, "1h")
    except CandleValidationError as error:
        assert [p.row for p in error.problems] == rejects.index.tolist()
    else:
        assert rejects.empty
    assert len(validate_candles(good, "1h")) == len(good)
    isolated = [row for row, _ in spikes if not any(abs(row - r) == 1 for r, _ in spikes)]
    if len(spikes) == len(isolated) and 0 not in rejects.index:
        assert set(rejects.index) == {row for row, _ in spikes}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_bar_move": 1.0}, r"validation.max_bar_move must be > 1 \(a factor\); got 1.0"),
        ({"max_bar_move": float("inf")}, r"validation.max_bar_move must be a finite number > 0"),
        ({"min_price": 0.0}, r"validation.min_price must be a finite number > 0; got 0.0"),
        ({"min_price": 5.0, "max_price": 1.0}, r"min_price must be below validation.max_price"),
    ],
)
def test_plausibility_limits_check_themselves(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Plausibility(**kwargs)


# --- The array path (the serving API's rows) ------------------------------------------------------


def test_the_array_path_accepts_real_candles_and_names_the_same_problems(
    btc_1h: pd.DataFrame,
) -> None:
    values = btc_1h[list(CANDLE_COLUMNS)].to_numpy(dtype=np.float64)
    validate_candle_array(values, "1h")  # 37,216 real candles, none refused
    cases: list[tuple[int, int, float]] = [(17, 2, 1e308), (5, 0, values[5, 0] + 1)]
    for row, column, value in cases:
        bad = values[:40].copy()
        bad[row, column] = value
        frame = pd.DataFrame(bad, columns=list(CANDLE_COLUMNS)).astype({"ts": np.int64})
        with pytest.raises(CandleValidationError) as strict:
            validate_candles(frame, "1h")
        with pytest.raises(CandleValidationError) as array:
            validate_candle_array(bad, "1h")
        assert str(array.value) == str(strict.value)
    with pytest.raises(CandleValidationError, match=r"row 3: close nan is missing|row 3: close"):
        nan = values[:5].copy()
        nan[3, 4] = np.nan
        validate_candle_array(nan, "1h")
    with pytest.raises(ValueError, match=r"candle array must be n x 6; got \(5, 5\)"):
        validate_candle_array(values[:5, :5], "1h")


@st.composite
def _candle_arrays(draw: st.DrawFn) -> np.ndarray:
    """Real candles with a few cells changed the ways a request goes wrong."""
    values = REAL_HEAD.copy()
    for _ in range(draw(st.integers(0, 3))):
        row = draw(st.integers(0, len(values) - 1))
        column = draw(st.integers(0, 5))
        how = draw(st.sampled_from(["scale", "shift", "set"]))
        if how == "scale":
            factor = draw(st.sampled_from([-1.0, 0.0, 0.05, 0.999, 1.001, 20.0]))
            with np.errstate(invalid="ignore"):  # inf x 0 is NaN, one more bad cell
                values[row, column] *= factor
        elif how == "shift":
            values[row, column] += draw(st.sampled_from([-HOUR, -1.0, 1.0, 0.5, HOUR]))
        else:
            values[row, column] = draw(st.sampled_from([np.nan, np.inf, 1e308, 1e-300, 2.0**60]))
    return values


REAL_HEAD = (
    pd.read_csv(shared_data_dir() / "binance_BTC-USDT_1h.csv.gz")
    .head(12)
    .to_numpy(dtype=np.float64)
)


@settings(max_examples=300, deadline=None)
@given(_candle_arrays())
def test_the_vectorized_pass_agrees_with_the_full_checks(values: np.ndarray) -> None:
    frame = pd.DataFrame(values, columns=list(CANDLE_COLUMNS))
    try:
        validate_candles(frame, "1h")
        accepted = True
    except CandleValidationError:
        accepted = False
    assert _all_good(values, HOUR, DEFAULT_PLAUSIBILITY) == accepted
    if accepted:
        validate_candle_array(values, "1h")
    else:
        with pytest.raises(CandleValidationError):
            validate_candle_array(values, "1h")
