"""Walk-forward splits: layout, purge and embargo as properties, errors, and the real BTC series."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.splits import (
    Fold,
    LabelLeakError,
    Segment,
    WalkForward,
    check_labels_safe,
    labels_safe,
)


@st.composite
def walk_forwards(draw: st.DrawFn) -> WalkForward:
    train = draw(st.integers(1, 120))
    test = draw(st.integers(1, 40))
    return WalkForward(
        train=train,
        test=test,
        validation=draw(st.integers(0, 30)),
        step=draw(st.one_of(st.none(), st.integers(test, test + 40))),
        mode=draw(st.sampled_from(["rolling", "expanding"])),
        purge=draw(st.integers(0, 25)),
        embargo=draw(st.integers(0, 25)),
        min_train=draw(st.one_of(st.none(), st.integers(1, train))),
    )


def _folds_or_none(wf: WalkForward, n_bars: int) -> list[Fold] | None:
    try:
        return wf.split(n_bars)
    except ValueError as exc:
        assert "is too short for one fold" in str(exc)
        assert wf.n_folds(n_bars) == 0
        return None


@settings(max_examples=300, deadline=None)
@given(wf=walk_forwards(), n_bars=st.integers(0, 1500))
def test_folds_keep_train_validation_and_test_apart(wf: WalkForward, n_bars: int) -> None:
    folds = _folds_or_none(wf, n_bars)
    if folds is None:
        return
    assert len(folds) == wf.n_folds(n_bars) >= 1
    for k, fold in enumerate(folds):
        train, validation, test = (
            fold.train.indices(),
            fold.validation.indices(),
            fold.test.indices(),
        )
        assert fold.index == k
        # No held-out index is ever trained on.
        assert not np.intersect1d(train, test).size
        assert not np.intersect1d(train, validation).size
        assert not np.intersect1d(validation, test).size
        # Train precedes validation precedes test, all inside the data.
        assert 0 <= fold.train.start < fold.train.stop <= n_bars
        assert fold.test.stop <= n_bars
        assert len(fold.test) == wf.test
        assert len(fold.validation) == wf.validation
        if wf.validation:
            assert train.max() < validation.min() and validation.max() < test.min()
        # The gap before each held-out segment is purge + embargo, so no label overlaps it.
        first_held_out = fold.validation.start if wf.validation else fold.test.start
        assert first_held_out - fold.train.stop == wf.purge + wf.embargo >= wf.purge
        assert train.max() + wf.purge < first_held_out
        assert train.max() + wf.purge < fold.test.start
        if wf.validation:
            assert fold.test.start - fold.validation.stop == wf.purge + wf.embargo
            assert validation.max() + wf.purge < fold.test.start
        # Window sizes per mode.
        if wf.mode == "expanding":
            assert fold.train.start == 0
            assert len(fold.train) == wf.first_train + k * (wf.step or wf.test)
        else:
            assert wf.first_train <= len(fold.train) <= wf.train
    # Test segments are disjoint and increasing, spaced by the step; no room for one more fold.
    for before, after in itertools.pairwise(folds):
        assert before.test.stop <= after.test.start
        assert after.test.start - before.test.start == (wf.step or wf.test)
        assert after.train.stop > before.train.stop
    assert folds[-1].test.start + (wf.step or wf.test) + wf.test > n_bars
    assert folds[0].train.stop == wf.first_train


@settings(max_examples=200, deadline=None)
@given(wf=walk_forwards(), n_bars=st.integers(0, 1500))
def test_label_check_is_tight_at_purge_plus_embargo(wf: WalkForward, n_bars: int) -> None:
    folds = _folds_or_none(wf, n_bars)
    if folds is None:
        return
    for fold in folds:
        # A trainer whose label horizon is the purge is safe; the gap covers purge + embargo bars...
        check_labels_safe(fold, wf.purge)
        assert labels_safe(fold, wf.purge + wf.embargo)
        # ... and one more bar of horizon makes the last training row read a held-out bar.
        assert not labels_safe(fold, wf.purge + wf.embargo + 1)


@settings(max_examples=100, deadline=None)
@given(wf=walk_forwards(), n_bars=st.integers(0, 800), extra=st.integers(0, 400))
def test_appending_bars_only_appends_folds(wf: WalkForward, n_bars: int, extra: int) -> None:
    folds = _folds_or_none(wf, n_bars)
    if folds is None:
        return
    longer = wf.split(n_bars + extra)
    assert longer[: len(folds)] == folds


def test_rolling_layout_by_hand() -> None:
    wf = WalkForward(train=10, validation=3, test=4, purge=2, embargo=1)
    folds = wf.split(40)
    # train [0,10) gap 3 -> validation [13,16) gap 3 -> test [19,23); step = test = 4.
    assert [(f.train.start, f.train.stop) for f in folds] == [
        (0, 10), (4, 14), (8, 18), (12, 22), (16, 26)
    ]  # fmt: skip
    assert (folds[0].validation.start, folds[0].validation.stop) == (13, 16)
    assert [(f.test.start, f.test.stop) for f in folds] == [
        (19, 23), (23, 27), (27, 31), (31, 35), (35, 39)
    ]  # fmt: skip
    assert wf.n_folds(40) == 5  # bar 39 alone is short of a sixth test segment


def test_expanding_with_short_first_windows() -> None:
    wf = WalkForward(train=100, test=5, purge=1, mode="expanding", min_train=20)
    folds = wf.split(60)
    assert [(f.train.start, f.train.stop) for f in folds] == [
        (0, 20),
        (0, 25),
        (0, 30),
        (0, 35),
        (0, 40),
        (0, 45),
        (0, 50),
    ]
    assert folds[0].test == Segment(21, 26)
    assert len(folds[0].validation) == 0 and folds[0].held_out() == (folds[0].test,)


def test_rolling_min_train_grows_then_rolls() -> None:
    folds = WalkForward(train=8, test=2, min_train=4).split(20)
    assert [len(f.train) for f in folds] == [4, 6, 8, 8, 8, 8, 8, 8]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"train": 10, "test": 0}, ValueError, r"test must be at least 1 bar; got 0"),
        ({"train": 0, "test": 5}, ValueError, r"train must be at least 1 bar; got 0"),
        (
            {"train": 10, "test": 5, "purge": -1},
            ValueError,
            r"purge must be at least 0 bars; got -1",
        ),
        (
            {"train": 10, "test": 5, "embargo": -3},
            ValueError,
            r"embargo must be at least 0 bars; got -3",
        ),
        ({"train": 10, "test": 5, "validation": -1}, ValueError, r"validation must be at least 0"),
        (
            {"train": 10, "test": 5, "step": 4},
            ValueError,
            r"step must be at least test \(5\) .*got 4",
        ),
        (
            {"train": 10, "test": 5, "mode": "sliding"},
            ValueError,
            r"mode must be one of rolling, expanding; got 'sliding'",
        ),
        (
            {"train": 10, "test": 5, "min_train": 11},
            ValueError,
            r"min_train must not exceed train \(10\); got 11",
        ),
        (
            {"train": 10.5, "test": 5},
            TypeError,
            r"train must be an integer number of bars; got 10.5",
        ),
        (
            {"train": 10, "test": True},
            TypeError,
            r"test must be an integer number of bars; got True",
        ),
    ],
)
def test_bad_arguments_name_the_argument_and_value(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        WalkForward(**kwargs)


def test_too_short_names_what_one_fold_needs() -> None:
    with pytest.raises(
        ValueError,
        match=r"n_bars 100 is too short for one fold: "
        r"needs train 500 \+ purge 24 \+ test 100 = 624",
    ):
        WalkForward(train=500, test=100, purge=24).split(100)
    with pytest.raises(
        ValueError,
        match=r"needs min_train 50 \+ purge 2 \+ embargo 1 \+ validation 10 "
        r"\+ purge 2 \+ embargo 1 \+ test 5 = 71",
    ):
        WalkForward(train=90, validation=10, test=5, purge=2, embargo=1, min_train=50).split(70)
    assert (
        len(
            WalkForward(train=90, validation=10, test=5, purge=2, embargo=1, min_train=50).split(71)
        )
        == 1
    )


def test_from_durations_uses_the_timeframe() -> None:
    wf = WalkForward.from_durations(
        train="90d",
        validation="7d",
        test="14d",
        step="14d",
        timeframe="1h",
        purge=24,
        embargo="12h",
    )
    assert (wf.train, wf.validation, wf.test, wf.step, wf.purge, wf.embargo) == (
        2160,
        168,
        336,
        336,
        24,
        12,
    )
    assert (
        WalkForward.from_durations(train="2w", test="1d", timeframe="4h", embargo="0d").embargo == 0
    )
    with pytest.raises(
        ValueError, match=r"test: duration must look like '12h', '7d' or '2w'; got '2 weeks'"
    ):
        WalkForward.from_durations(train="90d", test="2 weeks", timeframe="1h")
    with pytest.raises(ValueError, match=r"timeframe must be one of .*; got '7x'"):
        WalkForward.from_durations(train="90d", test="14d", timeframe="7x")


def test_label_leak_messages_name_row_and_segment() -> None:
    fold = WalkForward(train=50, validation=10, test=10, purge=3).split(100)[0]
    # train [0,50), validation [53,63), test [66,76)
    with pytest.raises(
        LabelLeakError,
        match=(
            r"fold 0: row 48 is trained on but has a label \(horizon 5\) that reads bar 53, "
            r"inside the validation segment \[53, 63\) \(2 rows leak\); "
            r"the split.s purge is 3: build the WalkForward with purge >= 5"
        ),
    ):
        check_labels_safe(fold, 5)
    with pytest.raises(
        LabelLeakError, match=r"row 70 is trained on but is inside the test segment \[66, 76\)"
    ):
        check_labels_safe(fold, 0, train_rows=[10, 70])
    embargoed = WalkForward(train=50, test=10, embargo=4).split(100)[0]  # test [54, 64)
    with pytest.raises(
        LabelLeakError,
        match=r"row 65 is trained on but sits in the embargo 4 after the test segment",
    ):
        check_labels_safe(embargoed, 0, train_rows=[65])
    assert labels_safe(embargoed, 0, train_rows=[68, 80])
    # A horizon longer than the purge is safe only if the trainer drops the rows it would leak from.
    assert not labels_safe(fold, 8, train_rows=np.arange(0, 45))  # validation [53, 63) reads test
    assert labels_safe(fold, 8, train_rows=np.arange(0, 45), validation_rows=np.arange(53, 58))
    with pytest.raises(
        ValueError, match=r"train_rows must be a one-dimensional array of row numbers"
    ):
        check_labels_safe(fold, 3, train_rows=[0.5, 1.5])


def test_split_over_real_btc_candles(btc_1h: pd.DataFrame) -> None:
    ts = btc_1h["ts"].to_numpy()
    wf = WalkForward.from_durations(
        train="180d", validation="14d", test="30d", timeframe="1h", purge=24, embargo=24
    )
    folds = wf.split_timestamps(ts)
    assert len(folds) == wf.n_folds(len(ts)) == (len(ts) - (4320 + 48 + 336 + 48) - 720) // 720 + 1
    close = btc_1h["close"].to_numpy()
    horizon = 24
    label = np.full(len(close), np.nan)
    label[:-horizon] = close[horizon:] / close[:-horizon] - 1.0  # forward 24h return: reads i + 24
    for fold in folds:
        check_labels_safe(fold, horizon)
        train_labels = label[fold.train.slice]
        assert np.isfinite(train_labels).all()
        # The newest training label closes strictly before the first validation bar opens.
        last_label_bar = fold.train.stop - 1 + horizon
        assert ts[last_label_bar] < ts[fold.validation.start]
    first = folds[0].describe(ts)
    assert first["train"] == [0, 4320]
    assert first["train_ts"][0] == int(ts[0]) == 1577836800000  # 2020-01-01 00:00 UTC
    assert first["test_ts"] == [int(ts[4752]), int(ts[5471])]
    assert wf.describe()["step"] == 720
    with pytest.raises(
        ValueError, match=r"ts must be strictly increasing; row 3 \(.*\) does not follow row 2"
    ):
        wf.split_timestamps(np.r_[ts[:3], ts[1], ts[4:]])
