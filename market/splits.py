"""Walk-forward splits: the one train / validation / test layout every Redline trainer uses.

A split counts **rows** of a candle frame (bars), oldest first. Each fold is laid out as::

    [ train ][ purge ][ embargo ][ validation ][ purge ][ embargo ][ test ]

and the next fold's test starts ``step`` bars after this one's (``step`` defaults to ``test``,
so the test segments tile the data without overlapping).

Purge (the label horizon)
    A training row ``i`` carries a label read from the bars up to ``i + horizon`` (for example
    the forward return from the close of ``i`` to the close of ``i + horizon``). ``purge`` bars
    are dropped at the end of the training segment (and of the validation segment) so that no
    label there reads a bar of the next segment: every trained row satisfies
    ``i + purge < first bar of the next segment``.

Embargo, and how it applies in walk-forward
    López de Prado's embargo drops the training rows that come right *after* a held-out
    segment, because their features (rolling windows) are computed from held-out bars. Inside a
    walk-forward fold no training row ever comes after a held-out row, so that rule cannot bite.
    What walk-forward does have is the mirror case: the last rows before a held-out segment have
    features and regimes serially correlated with its first rows, so a model that memorises
    recent rows looks better on the first test bars than it is. Redline therefore applies the
    embargo on the way *into* every held-out segment: ``embargo`` more bars are skipped after
    the purge, so the first validation bar is ``purge + embargo`` bars after the training
    segment ends, and the first test bar ``purge + embargo`` bars after the validation segment
    ends (after training when there is no validation segment). Later folds do train on earlier
    folds' held-out bars; that is allowed because a fold is only scored on bars after everything
    it trained on. :func:`check_labels_safe` enforces the classic rule as well: a row inside
    ``[end of a held-out segment, end + embargo)`` may not be trained on.

Modes
    ``rolling``: the training window holds the most recent ``train`` bars. ``expanding``: it
    starts at bar 0 and grows by ``step`` each fold. In both modes the first fold's training
    window holds ``min_train`` bars (default ``train``); in rolling mode a smaller ``min_train``
    lets the early folds start with shorter windows that grow until they reach ``train``.

Folds are anchored at the first bar, so appending bars to a series only appends folds: the folds
a run already finished stay identical when the data grows, which keeps a killed run resumable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from market.timeframes import bars_in

logger = logging.getLogger(__name__)

Mode = Literal["rolling", "expanding"]
MODES: tuple[str, ...] = ("rolling", "expanding")


class LabelLeakError(ValueError):
    """A row trained (or validated) on reads a held-out bar through its label or its features."""


@dataclass(frozen=True)
class Segment:
    """A contiguous run of rows ``[start, stop)``; empty when ``start == stop``."""

    start: int
    stop: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.stop:
            raise ValueError(
                f"segment must satisfy 0 <= start <= stop; got [{self.start}, {self.stop})"
            )

    def __len__(self) -> int:
        return self.stop - self.start

    def __contains__(self, row: object) -> bool:
        return isinstance(row, int | np.integer) and self.start <= int(row) < self.stop

    @property
    def slice(self) -> slice:
        """For ``frame.iloc[segment.slice]`` and ``array[segment.slice]``."""
        return slice(self.start, self.stop)

    def indices(self) -> npt.NDArray[np.int64]:
        """The row numbers, as an int64 array."""
        return np.arange(self.start, self.stop, dtype=np.int64)

    def time_bounds(self, ts: npt.ArrayLike) -> tuple[int, int] | None:
        """``(first, last)`` open time (ms) of the segment's bars in ``ts``; None when empty."""
        times = np.asarray(ts)
        if len(self) == 0:
            return None
        if self.stop > len(times):
            raise ValueError(
                f"segment [{self.start}, {self.stop}) reaches past the {len(times)} timestamps"
            )
        return int(times[self.start]), int(times[self.stop - 1])


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: train, then validation (possibly empty), then test.

    ``purge`` and ``embargo`` are the split's, kept so a fold can check a trainer's label horizon
    (:func:`check_labels_safe`) without the split at hand.
    """

    index: int
    train: Segment
    validation: Segment
    test: Segment
    purge: int
    embargo: int

    def held_out(self) -> tuple[Segment, ...]:
        """The segments the model must not train on: validation (when non-empty), then test."""
        return (self.validation, self.test) if len(self.validation) else (self.test,)

    def describe(self, ts: npt.ArrayLike | None = None) -> dict[str, Any]:
        """A JSON-ready summary (row ranges, and open-time bounds in ms when ``ts`` is given)."""
        out: dict[str, Any] = {"index": self.index, "purge": self.purge, "embargo": self.embargo}
        for name in ("train", "validation", "test"):
            segment: Segment = getattr(self, name)
            out[name] = [segment.start, segment.stop]
            if ts is not None:
                bounds = segment.time_bounds(ts)
                out[f"{name}_ts"] = list(bounds) if bounds is not None else None
        return out


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer number of bars; got {value!r}")
    if value < minimum:
        unit = "bar" if minimum == 1 else "bars"
        raise ValueError(f"{name} must be at least {minimum} {unit}; got {value}")
    return int(value)


@dataclass(frozen=True)
class WalkForward:
    """Rolling or expanding walk-forward folds with a purge and an embargo (see the module doc).

    All lengths are in bars (rows). Build from durations with :meth:`from_durations`.
    """

    train: int
    test: int
    validation: int = 0
    step: int | None = None
    mode: Mode = "rolling"
    purge: int = 0
    embargo: int = 0
    min_train: int | None = None

    def __post_init__(self) -> None:
        _check_int("train", self.train, 1)
        _check_int("test", self.test, 1)
        _check_int("validation", self.validation, 0)
        _check_int("purge", self.purge, 0)
        _check_int("embargo", self.embargo, 0)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if self.step is not None:
            _check_int("step", self.step, 1)
            if self.step < self.test:
                raise ValueError(
                    f"step must be at least test ({self.test}) so test segments do not overlap; "
                    f"got {self.step}"
                )
        if self.min_train is not None:
            _check_int("min_train", self.min_train, 1)
            if self.min_train > self.train:
                raise ValueError(
                    f"min_train must not exceed train ({self.train}); got {self.min_train}"
                )

    @classmethod
    def from_durations(
        cls,
        *,
        train: str,
        test: str,
        timeframe: str,
        validation: str | None = None,
        step: str | None = None,
        mode: Mode = "rolling",
        purge: int | str = 0,
        embargo: int | str = 0,
        min_train: str | None = None,
    ) -> WalkForward:
        """Lengths as durations (``train="90d"``, ``test="14d"``) on ``timeframe`` bars.

        ``purge`` and ``embargo`` take bars (an int, as label horizons are usually stated) or a
        duration; ``"0d"`` means zero bars.
        """
        return cls(
            train=_duration_bars("train", train, timeframe),
            test=_duration_bars("test", test, timeframe),
            validation=_duration_bars("validation", validation, timeframe),
            step=None if step is None else _duration_bars("step", step, timeframe),
            mode=mode,
            purge=_duration_bars("purge", purge, timeframe),
            embargo=_duration_bars("embargo", embargo, timeframe),
            min_train=None
            if min_train is None
            else _duration_bars("min_train", min_train, timeframe),
        )

    @property
    def gap(self) -> int:
        """Bars skipped before each held-out segment: the purge, then the embargo."""
        return self.purge + self.embargo

    @property
    def first_train(self) -> int:
        """Bars in the first fold's training window."""
        return self.train if self.min_train is None else self.min_train

    def _first_test_start(self) -> int:
        start = self.first_train + self.gap
        if self.validation:
            start += self.validation + self.gap
        return start

    def _needs(self) -> str:
        parts = [
            f"min_train {self.first_train}" if self.min_train is not None else f"train {self.train}"
        ]
        for name, value in (("purge", self.purge), ("embargo", self.embargo)):
            if value:
                parts.append(f"{name} {value}")
        if self.validation:
            parts.append(f"validation {self.validation}")
            for name, value in (("purge", self.purge), ("embargo", self.embargo)):
                if value:
                    parts.append(f"{name} {value}")
        parts.append(f"test {self.test}")
        return f"{' + '.join(parts)} = {self._first_test_start() + self.test}"

    def n_folds(self, n_bars: int) -> int:
        """How many folds ``n_bars`` rows hold (0 when too short for one)."""
        n_bars = _check_int("n_bars", n_bars, 0)
        room = n_bars - self._first_test_start() - self.test
        return 0 if room < 0 else room // (self.step or self.test) + 1

    def split(self, n_bars: int) -> list[Fold]:
        """The folds over ``n_bars`` rows, oldest first.

        Trailing bars short of a full test segment are left unused until more data arrives.
        """
        count = self.n_folds(n_bars)
        if count == 0:
            raise ValueError(f"n_bars {n_bars} is too short for one fold: needs {self._needs()}")
        step = self.step or self.test
        first_test = self._first_test_start()
        folds = []
        for k in range(count):
            test_start = first_test + k * step
            if self.validation:
                val_start = test_start - self.gap - self.validation
                validation = Segment(val_start, val_start + self.validation)
                train_stop = val_start - self.gap
            else:
                validation = Segment(test_start, test_start)
                train_stop = test_start - self.gap
            train_start = 0 if self.mode == "expanding" else max(0, train_stop - self.train)
            folds.append(
                Fold(
                    index=k,
                    train=Segment(train_start, train_stop),
                    validation=validation,
                    test=Segment(test_start, test_start + self.test),
                    purge=self.purge,
                    embargo=self.embargo,
                )
            )
        logger.debug("walk-forward %s over %d bars: %d folds", self.mode, n_bars, count)
        return folds

    def split_timestamps(self, ts: npt.ArrayLike) -> list[Fold]:
        """:meth:`split` over a candle frame's ``ts`` column, checked to be strictly increasing.

        Folds count rows, not clock time: across a gap in the candles a segment spans more time
        than its bar count says, while a label built by shifting rows still reads exactly
        ``horizon`` rows ahead, which is what the purge guards.
        """
        times = np.asarray(ts)
        if times.ndim != 1:
            raise ValueError(f"ts must be one-dimensional; got shape {times.shape}")
        if len(times) > 1:
            steps = np.diff(times)
            bad = np.flatnonzero(steps <= 0)
            if bad.size:
                row = int(bad[0]) + 1
                raise ValueError(
                    f"ts must be strictly increasing; row {row} ({times[row]}) does not follow "
                    f"row {row - 1} ({times[row - 1]})"
                )
        return self.split(len(times))

    def describe(self) -> dict[str, Any]:
        """The parameters, JSON-ready (for run records and config hashes)."""
        return {
            "train": self.train,
            "validation": self.validation,
            "test": self.test,
            "step": self.step or self.test,
            "mode": self.mode,
            "purge": self.purge,
            "embargo": self.embargo,
            "min_train": self.first_train,
        }


def _duration_bars(name: str, value: int | str | None, timeframe: str) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a duration like '14d' or a number of bars; got {value!r}")
    try:
        if value[:-1].isdigit() and int(value[:-1]) == 0:
            bars_in(f"1{value[-1]}", timeframe)  # still validates the unit and the timeframe
            return 0
        return bars_in(value, timeframe)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _rows(name: str, rows: npt.ArrayLike | None, default: Segment) -> npt.NDArray[np.int64]:
    if rows is None:
        return default.indices()
    array = np.asarray(rows)
    if array.ndim != 1 or not (array.size == 0 or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(
            f"{name} must be a one-dimensional array of row numbers; got {array.dtype} "
            f"of shape {array.shape}"
        )
    return array.astype(np.int64)


def _label_leaks(
    rows: npt.NDArray[np.int64], held_out: Segment, horizon: int, embargo: int
) -> npt.NDArray[np.int64]:
    """Rows whose label window ``[i, i + horizon]`` reaches ``held_out``, or that sit inside it
    or in the ``embargo`` bars after it (their features read held-out bars)."""
    bad = (rows + horizon >= held_out.start) & (rows < held_out.stop + embargo)
    return rows[bad]


def check_labels_safe(
    fold: Fold,
    horizon: int,
    *,
    train_rows: npt.ArrayLike | None = None,
    validation_rows: npt.ArrayLike | None = None,
) -> None:
    """Raise :class:`LabelLeakError` unless no trained row's label reads a held-out bar.

    ``horizon`` is the trainer's label horizon in bars (the label of row ``i`` reads bars up to
    ``i + horizon``). ``train_rows`` are the rows actually trained on (default: the whole training
    segment; pass the subset left after dropping rows, e.g. those whose label is not known yet).
    They are checked against the validation and test segments, and ``validation_rows`` (default:
    the whole validation segment; used for early stopping and selection) against the test segment.
    Rows inside ``[end, end + embargo)`` of a held-out segment are leaks too.
    """
    horizon = _check_int("horizon", horizon, 0)
    rows = _rows("train_rows", train_rows, fold.train)
    checks: list[tuple[str, npt.NDArray[np.int64], str, Segment]] = [
        ("trained on", rows, name, segment)
        for name, segment in (("validation", fold.validation), ("test", fold.test))
        if len(segment)
    ]
    if len(fold.validation):
        validated = _rows("validation_rows", validation_rows, fold.validation)
        checks.append(("validated on", validated, "test", fold.test))
    for role, candidates, name, segment in checks:
        leaks = _label_leaks(candidates, segment, horizon, fold.embargo)
        if leaks.size == 0:
            continue
        row = int(leaks[0])
        if row >= segment.stop:
            where = (
                f"sits in the embargo {fold.embargo} after the {name} segment "
                f"[{segment.start}, {segment.stop})"
            )
        elif row >= segment.start:
            where = f"is inside the {name} segment [{segment.start}, {segment.stop})"
        else:
            where = (
                f"has a label (horizon {horizon}) that reads bar {row + horizon}, "
                f"inside the {name} segment [{segment.start}, {segment.stop})"
            )
        hint = (
            f"; the split's purge is {fold.purge}: build the WalkForward with purge >= {horizon}"
            if horizon > fold.purge
            else ""
        )
        raise LabelLeakError(
            f"fold {fold.index}: row {row} is {role} but {where} ({leaks.size} rows leak){hint}"
        )


def labels_safe(
    fold: Fold,
    horizon: int,
    *,
    train_rows: npt.ArrayLike | None = None,
    validation_rows: npt.ArrayLike | None = None,
) -> bool:
    """:func:`check_labels_safe` as a predicate."""
    try:
        check_labels_safe(fold, horizon, train_rows=train_rows, validation_rows=validation_rows)
    except LabelLeakError:
        return False
    return True
