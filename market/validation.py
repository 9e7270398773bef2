"""Candle validation: a frame is either a clean candle frame or a list of named problems.

Two entry points share one set of vectorized checks:

- :func:`validate_candles` is strict. Any problem refuses the whole frame with a
  :class:`CandleValidationError` whose message names the row (0-based position in the input, not
  the index label), the field and the value, e.g.
  ``row 17: high 101.0 is below max(open, close) 102.5``. Nothing is reordered or dropped except
  columns outside ``CANDLE_COLUMNS``.
- :func:`split_valid` salvages (the CLI's ``--skip-invalid``): it returns the good candles and the
  rejected input rows with a ``reason``. It decides three things the strict path never has to:

  * Every row is first judged on its own cells (types, NaN/inf, signs, high/low bounds, grid).
  * Order is fixed, not punished: a candle row is self-describing (its ``ts`` is its key), so the
    good rows are sorted by ``ts`` (stable) instead of rejecting rows that arrive out of order.
    This keeps every valid candle of, say, two downloads concatenated in the wrong order.
  * Among rows that passed their own checks, the first occurrence (input order) of a ``ts`` is
    kept and later ones are rejected, whether identical (the reason says so) or conflicting.
    Judging rows first means a corrupt first copy does not shadow a good later one.

  Missing or duplicated columns cannot be salvaged row by row, so split_valid raises for them too.

- :func:`validate_candle_array` is the strict check on an ``n x 6`` float array (the serving API's
  request rows): the same rules and messages as validate_candles, with one vectorized pass that
  builds no DataFrame when every row is good (the common case; serving is latency-bound).

Beyond the contract (types, signs, high/low bounds, the timeframe grid, order), a
:class:`Plausibility` rule refuses what no market prints, so that one corrupt value cannot be stored
for good (writes are first-write-wins) or steer a prediction: every price inside
``[min_price, max_price]``, and each close within a factor ``max_bar_move`` of the close before it.
The move is judged against the nearest earlier *accepted* close, so one spike is one problem (the
row after it is judged against the row before it, not against the spike); the first rows are judged
against the first close that agrees with its successor, so a bad first row is the one named. The
limits come from ``validation:`` in configs/defaults.yaml (``cluster.config.ValidationConfig``);
:data:`DEFAULT_PLAUSIBILITY` holds the same numbers for code that has no config (a test keeps the
two equal). Spacing needs no rule of its own: on the grid and strictly increasing, candles are at
least one timeframe apart (candles 1 ms apart are off the grid); gaps of any length are allowed.

Zero-volume flat candles (open = high = low = close, volume 0) are valid: exchanges emit them during
trading halts, and the real Binance BTC/USDT 1h history has two.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from market.series import CANDLE_COLUMNS
from market.timeframes import timeframe_ms

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PLAUSIBILITY",
    "CandleProblem",
    "CandleValidationError",
    "Plausibility",
    "Rule",
    "split_valid",
    "validate_candle_array",
    "validate_candles",
]

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
_SHOWN = 5  # problems spelled out in an error message; the rest are counted


class Rule(StrEnum):
    """What a candle problem broke. Members are plain strings (``Rule.OFF_GRID == "off_grid"``)."""

    MISSING_COLUMN = "missing_column"
    DUPLICATE_COLUMN = "duplicate_column"
    MISSING_VALUE = "missing_value"
    NOT_A_NUMBER = "not_a_number"
    NOT_AN_INTEGER = "not_an_integer"
    NOT_FINITE = "not_finite"
    NOT_POSITIVE = "not_positive"
    NEGATIVE_VOLUME = "negative_volume"
    HIGH_BELOW_OPEN_CLOSE = "high_below_open_close"
    LOW_ABOVE_OPEN_CLOSE = "low_above_open_close"
    HIGH_BELOW_LOW = "high_below_low"
    OFF_GRID = "off_grid"
    DUPLICATE_TS = "duplicate_ts"
    DECREASING_TS = "decreasing_ts"
    IMPLAUSIBLE_PRICE = "implausible_price"
    IMPLAUSIBLE_MOVE = "implausible_move"


@dataclass(frozen=True, slots=True)
class Plausibility:
    """What a real price can be: inside ``[min_price, max_price]``, and each close within a factor
    ``max_bar_move`` of the previous accepted close (10 allows x10 or /10 in one candle).

    The defaults accept every real series in ../shared/data with a wide margin (the largest real
    close-to-close move is DOGE/USDT 1h, x1.70; prices span 0.0001 to 73,777) and refuse the
    1e308 and 1e-300 a corrupt feed or a hostile request carries. Only closes take part in the move
    rule: a real listing wick (LINK/USDT 1h, low 0.0001 under a high of 3.08) is not a corrupt row.
    """

    min_price: float = 1e-12
    max_price: float = 1e12
    max_bar_move: float = 10.0

    def __post_init__(self) -> None:
        for name in ("min_price", "max_price", "max_bar_move"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"validation.{name} must be a number; got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"validation.{name} must be a finite number > 0; got {value!r}")
        if self.min_price >= self.max_price:
            raise ValueError(
                f"validation.min_price must be below validation.max_price; got {self.min_price!r} "
                f">= {self.max_price!r}"
            )
        if self.max_bar_move <= 1:
            raise ValueError(
                f"validation.max_bar_move must be > 1 (a factor); got {self.max_bar_move!r}"
            )


#: The limits code without a config uses; the same numbers as configs/defaults.yaml ``validation:``.
DEFAULT_PLAUSIBILITY = Plausibility()


@dataclass(frozen=True, slots=True)
class CandleProblem:
    """One broken rule.

    ``row`` is the 0-based position in the input (None for a column problem); ``value`` is the
    input's own value (before coercion); ``context`` holds what the value was compared with (the
    bound, the earlier row, the timeframe) and only feeds the message.
    """

    row: int | None
    field: str
    value: object
    rule: str
    context: object = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def detail(self) -> str:
        """The message without its ``row N:`` prefix (the rejects file keeps the row elsewhere)."""
        return _describe(self)

    def __str__(self) -> str:
        return self.detail if self.row is None else f"row {self.row}: {self.detail}"


class CandleValidationError(ValueError):
    """A candle frame that breaks the contract; ``problems`` lists every problem, in row order."""

    def __init__(self, problems: list[CandleProblem], timeframe: str) -> None:
        self.problems = problems
        self.timeframe = timeframe
        shown = "\n".join(f"  {problem}" for problem in problems[:_SHOWN])
        more = len(problems) - _SHOWN
        tail = f"\n  ... and {more} more" if more > 0 else ""
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"invalid {timeframe} candles, {len(problems)} {noun}:\n{shown}{tail}")


def validate_candles(
    frame: pd.DataFrame, timeframe: str, *, plausibility: Plausibility = DEFAULT_PLAUSIBILITY
) -> pd.DataFrame:
    """The clean candle frame for ``frame``, or CandleValidationError naming every problem.

    Accepts numeric strings and integral floats (coerced), datetime ``ts`` columns (converted to
    ms) and extra columns (dropped). Returns exactly ``CANDLE_COLUMNS`` with ``ts`` int64, float64
    prices and volume, in the input's order (which must be strictly increasing), RangeIndex.
    """
    checked = _Checks(frame, timeframe, plausibility)
    checked.strict()
    problems = checked.problems()
    if problems:
        raise CandleValidationError(problems, timeframe)
    return checked.candles()


def validate_candle_array(
    values: np.ndarray, timeframe: str, *, plausibility: Plausibility = DEFAULT_PLAUSIBILITY
) -> None:
    """Raise CandleValidationError unless every row of ``values`` (``n x 6`` floats, the columns
    of ``CANDLE_COLUMNS``, ts in ms) is a valid candle: validate_candles' rules and messages.

    Good rows (the common case: serving checks every request) cost one vectorized pass over the
    array, :func:`_all_good`, and no DataFrame; only a refusal goes through validate_candles, for
    its messages.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(CANDLE_COLUMNS):
        raise ValueError(f"candle array must be n x {len(CANDLE_COLUMNS)}; got {values.shape}")
    tf_ms = timeframe_ms(timeframe)  # raises naming the valid timeframes
    if _all_good(values, tf_ms, plausibility):
        return
    frame = pd.DataFrame(values, columns=list(CANDLE_COLUMNS))
    ts = values[:, 0]
    if (np.isfinite(ts) & (np.floor(ts) == ts) & (np.abs(ts) < 2.0**53)).all():
        frame["ts"] = ts.astype(np.int64)  # messages show 1704067200001, not 1704067200001.0
    # The full checks decide (the vectorized pass may refuse what they accept: a ts >= 2**53).
    validate_candles(frame, timeframe, plausibility=plausibility)


def _all_good(values: np.ndarray, tf_ms: int, plausibility: Plausibility) -> bool:
    """Whether validate_candles would accept ``values`` (finite float rows), as one conjunction.

    Every rule of :class:`_Checks` folded into whole-array reductions: the grid check on float
    ts also refuses fractions and (being below 2**53) stays exact; the price range implies
    positive prices; open and close inside [low, high] imply high >= low; strictly increasing
    ts rules out duplicates. A property test keeps this equal to the full checks.
    """
    if len(values) == 0:
        return True
    if not np.isfinite(values).all():
        return False
    ts, o, h, lo, c, v = values.T
    prices = values[:, 1:5]
    limit = math.log(plausibility.max_bar_move)
    return bool(
        np.abs(ts).max() < 2.0**53 and not (ts % tf_ms).any() and (np.diff(ts) > 0).all()
        and prices.min() >= plausibility.min_price and prices.max() <= plausibility.max_price
        and v.min() >= 0 and (h >= o).all() and (h >= c).all() and (lo <= o).all()
        and (lo <= c).all() and (np.abs(np.diff(np.log(c))) <= limit).all()
    )  # fmt: skip


def split_valid(
    frame: pd.DataFrame, timeframe: str, *, plausibility: Plausibility = DEFAULT_PLAUSIBILITY
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(good, rejects)``: the valid candles sorted by ts, and the rejected input rows.

    ``rejects`` has the input's columns (original values) plus ``reason`` (every problem of the
    row, ``"; "``-joined); its index, named ``row``, is each row's 0-based position in the input.
    Every input row lands in exactly one of the two. See the module docstring for duplicates and
    ordering.
    Raises CandleValidationError for missing or duplicated columns.
    """
    checked = _Checks(frame, timeframe, plausibility)
    if checked.column_problems:
        raise CandleValidationError(checked.column_problems, timeframe)
    # Rows are judged on their own first, so a corrupt first copy of a ts cannot shadow a good one;
    # then the moves, between the rows that survive, in time order.
    kept = checked.moves(checked.add_duplicates(np.flatnonzero(~checked.bad_rows())))
    good = checked.candles().iloc[kept].reset_index(drop=True)

    rows, texts = checked.reasons()
    rejects = frame.iloc[rows].copy()
    rejects.index = pd.Index(rows, name="row")
    rejects["reason"] = pd.Series(texts, index=rejects.index, dtype="str")
    if len(rejects):
        logger.info("rejected %d of %d %s candles", len(rejects), len(frame), timeframe)
    return good, rejects


# -------------------------------------------------------------------------------------------------
# The checks. Every rule yields a boolean row mask (and its context values), so the cost per row is
# a few numpy operations whatever the frame's size; Python objects are built only for problems.


@dataclass
class _Finding:
    rule: Rule
    field: str
    rows: np.ndarray
    context: tuple[np.ndarray, ...] = ()  # one array per context item, aligned with rows


class _Checks:
    """Coerces ``frame`` to candle dtypes and records every row-level finding."""

    def __init__(self, frame: pd.DataFrame, timeframe: str, plausibility: Plausibility) -> None:
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"candles must be a pandas DataFrame; got {type(frame).__name__}")
        if not isinstance(plausibility, Plausibility):
            raise TypeError(f"plausibility must be a Plausibility; got {plausibility!r}")
        self.frame = frame
        self.timeframe = timeframe
        self.tf_ms = timeframe_ms(timeframe)  # raises naming the valid timeframes
        self.plausibility = plausibility
        self.n = len(frame)
        self.findings: list[_Finding] = []
        self.column_problems = _column_problems(frame)
        self.ts = np.zeros(self.n, dtype=np.int64)
        self.ts_ok = np.zeros(self.n, dtype=bool)
        self.values: dict[str, np.ndarray] = {}
        if self.column_problems:
            return
        self._check_ts()
        for name in (*PRICE_COLUMNS, "volume"):
            self._check_number(name)
        self._check_bounds()
        self._check_range()

    def _add(self, rule: Rule, name: str, mask: np.ndarray, *context: np.ndarray) -> None:
        if mask.any():
            rows = np.flatnonzero(mask)
            self.findings.append(_Finding(rule, name, rows, tuple(c[rows] for c in context)))

    def _check_ts(self) -> None:
        ts, missing, not_integer, not_finite = _coerce_ts(self.frame["ts"])
        self._add(Rule.MISSING_VALUE, "ts", missing)
        self._add(Rule.NOT_AN_INTEGER, "ts", not_integer)
        self._add(Rule.NOT_FINITE, "ts", not_finite)
        self.ts_ok = ~(missing | not_integer | not_finite)
        self.ts = np.where(self.ts_ok, ts, 0)
        self._add(Rule.OFF_GRID, "ts", self.ts_ok & (self.ts % self.tf_ms != 0), self.ts)

    def _check_number(self, name: str) -> None:
        values, missing, not_number = _coerce_float(self.frame[name])
        self.values[name] = values
        self._add(Rule.MISSING_VALUE, name, missing)
        self._add(Rule.NOT_A_NUMBER, name, not_number)
        self._add(Rule.NOT_FINITE, name, np.isinf(values))
        finite = np.isfinite(values)
        if name == "volume":
            self._add(Rule.NEGATIVE_VOLUME, name, finite & (values < 0))
        else:
            self._add(Rule.NOT_POSITIVE, name, finite & (values <= 0))

    def _check_bounds(self) -> None:
        o, h, lo, c = (self.values[name] for name in PRICE_COLUMNS)
        # A row with a missing, infinite or non-positive price already has its problem; comparing
        # the others with it would only echo that problem under another name.
        usable = np.ones(len(o), dtype=bool)
        for price in (o, h, lo, c):
            usable &= np.isfinite(price) & (price > 0)
        top = np.maximum(o, c)
        bottom = np.minimum(o, c)
        self._add(Rule.HIGH_BELOW_OPEN_CLOSE, "high", usable & (h < top), top)
        self._add(Rule.LOW_ABOVE_OPEN_CLOSE, "low", usable & (lo > bottom), bottom)
        self._add(Rule.HIGH_BELOW_LOW, "high", usable & (h < lo), lo)

    def _check_range(self) -> None:
        low, high = self.plausibility.min_price, self.plausibility.max_price
        for name in PRICE_COLUMNS:
            values = self.values[name]
            # NaN, inf and non-positive prices already have their problem: compare the rest.
            outside = (values > 0) & np.isfinite(values) & ((values < low) | (values > high))
            if outside.any():
                self._add(Rule.IMPLAUSIBLE_PRICE, name, outside)

    def strict(self) -> None:
        """The whole-frame rules of the strict paths: order, then moves in input order."""
        if self.column_problems:
            return
        self.ts_order()
        self.moves(np.flatnonzero(~self.bad_rows()))

    def ts_order(self) -> None:
        """Duplicates (a later row repeating an earlier ts) and rows whose ts is below the previous
        row's (only rows with a usable ts take part).

        No spacing rule of its own: on the grid and strictly increasing, candles are at least one
        timeframe apart, and a row closer than that is off the grid, named once as such (a wrong
        --timeframe or seconds for milliseconds keeps one problem per row)."""
        rows = np.flatnonzero(self.ts_ok)
        ts = self.ts[rows]
        if len(ts) < 2:
            return
        step = np.diff(ts)
        if bool(np.all(step > 0)):
            return  # the common case: already strictly increasing
        self.add_duplicates(rows)
        down = np.flatnonzero(step < 0) + 1
        if len(down):
            finding = _Finding(
                Rule.DECREASING_TS, "ts", rows[down], (ts[down], rows[down - 1], ts[down - 1])
            )
            self.findings.append(finding)

    def moves(self, rows: np.ndarray) -> np.ndarray:
        """Record each of ``rows`` (in the order given) whose close is more than ``max_bar_move``
        away from the previous accepted close; return ``rows`` without them."""
        if len(rows) < 2:
            return rows
        logs = np.log(self.values["close"][rows])
        limit = math.log(self.plausibility.max_bar_move)
        if bool((np.abs(np.diff(logs)) <= limit).all()):
            return rows  # the common case: one vectorized pass
        bad, refs = _implausible_moves(logs.tolist(), limit)
        if not bad:
            return rows
        flagged, against = rows[bad], rows[refs]
        closes = self.values["close"]
        with np.errstate(over="ignore"):  # 1e308 / 1e-300 is inf, and the message says so
            ratios = closes[flagged] / closes[against]
        context = (ratios, against, closes[against])
        self.findings.append(_Finding(Rule.IMPLAUSIBLE_MOVE, "close", flagged, context))
        keep = np.ones(len(rows), dtype=bool)
        keep[bad] = False
        return rows[keep]

    def add_duplicates(self, rows: np.ndarray) -> np.ndarray:
        """Record each of ``rows`` whose ts an earlier one of ``rows`` already has (the context says
        which row and whether all values match); return ``rows`` sorted by ts, first copies only."""
        order = rows[np.argsort(self.ts[rows], kind="stable")]
        ts = self.ts[order]
        repeat = np.zeros(len(order), dtype=bool)
        repeat[1:] = ts[1:] == ts[:-1]
        if repeat.any():
            later = order[repeat]
            first = order[_group_starts(repeat)][repeat]
            same = np.ones(len(later), dtype=bool)
            for name in (*PRICE_COLUMNS, "volume"):
                same &= self.values[name][later] == self.values[name][first]
            self.findings.append(
                _Finding(Rule.DUPLICATE_TS, "ts", later, (self.ts[later], first, same))
            )
        return order[~repeat]

    def bad_rows(self) -> np.ndarray:
        """Rows with at least one finding so far."""
        bad = np.zeros(self.n, dtype=bool)
        for finding in self.findings:
            bad[finding.rows] = True
        return bad

    def problems(self) -> list[CandleProblem]:
        """Every problem, by row, then in the order the checks ran (ts, prices, volume, bounds)."""
        if self.column_problems:
            return list(self.column_problems)
        made: list[CandleProblem] = []
        for finding, rows, values, contexts in self._unpacked():
            made.extend(
                CandleProblem(row, finding.field, value, finding.rule, context)
                for row, value, context in zip(rows, values, contexts, strict=True)
            )
        return [made[k] for k in self._row_order().tolist()]

    def reasons(self) -> tuple[np.ndarray, list[str]]:
        """(rows with problems, ascending; each row's problems as one ``"; "``-joined text).

        The salvage path can reject a million rows (a file read with the wrong timeframe), so this
        formats straight from the finding arrays instead of going through CandleProblem objects.
        """
        details: list[str] = []
        for finding, _, values, contexts in self._unpacked():
            describe = _DESCRIBE[finding.rule]
            pairs = zip(values, contexts, strict=True)
            details.extend(describe(finding.field, v, c) for v, c in pairs)
        order = self._row_order()
        rows = np.concatenate([f.rows for f in self.findings])[order] if self.findings else order
        ordered = [details[k] for k in order.tolist()]
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if len(rows) else order
        if len(starts) == len(rows):
            return rows, ordered  # one problem per row: the usual case
        bounds = [*starts.tolist(), len(rows)]
        texts = ["; ".join(ordered[lo:hi]) for lo, hi in itertools.pairwise(bounds)]
        return rows[starts], texts

    def _row_order(self) -> np.ndarray:
        """Positions in the concatenated findings that sort them by row, then by check order."""
        if not self.findings:
            return np.zeros(0, dtype=np.int64)
        rows = np.concatenate([finding.rows for finding in self.findings])
        which = np.repeat(np.arange(len(self.findings)), [len(f.rows) for f in self.findings])
        return np.lexsort((which, rows))

    def _unpacked(
        self,
    ) -> Iterator[tuple[_Finding, list[int], list[object], Iterable[tuple[object, ...] | None]]]:
        """Each finding with its rows, the input's values and its contexts as Python objects."""
        originals: dict[str, np.ndarray] = {}
        for finding in self.findings:
            if finding.field not in originals:
                originals[finding.field] = self.frame[finding.field].to_numpy(dtype=object)
            values = [_plain(v) for v in originals[finding.field][finding.rows].tolist()]
            rows = finding.rows.tolist()
            contexts: Iterable[tuple[object, ...] | None]
            if finding.rule in _TIMED:
                # Dates are formatted in one vectorized call: a wrong timeframe can put a million
                # rows off the grid, and datetime.strftime per row would dominate.
                columns: list[list[Any]] = [c.tolist() for c in finding.context]
                columns.insert(1, _whens(finding.context[0]))
                if finding.rule is Rule.DECREASING_TS:
                    columns.append(_whens(finding.context[2]))
                if finding.rule is Rule.OFF_GRID:
                    columns += [[self.timeframe] * len(rows), [self.tf_ms] * len(rows)]
                contexts = zip(*columns, strict=True)
            elif finding.rule is Rule.IMPLAUSIBLE_PRICE or finding.rule is Rule.IMPLAUSIBLE_MOVE:
                limits = self.plausibility
                columns = [c.tolist() for c in finding.context] + [[limits] * len(rows)]
                contexts = zip(*columns, strict=True)
            elif finding.context:
                contexts = zip(*(c.tolist() for c in finding.context), strict=True)
            else:
                contexts = itertools.repeat(None, len(rows))
            yield finding, rows, values, contexts

    def candles(self) -> pd.DataFrame:
        data: dict[str, np.ndarray] = {"ts": self.ts}
        data.update({name: self.values[name] for name in CANDLE_COLUMNS[1:]})
        return pd.DataFrame(data, columns=list(CANDLE_COLUMNS))


def _implausible_moves(logs: list[float], limit: float) -> tuple[list[int], list[int]]:
    """(positions whose log close is more than ``limit`` from the reference, each one's reference).

    The reference is the nearest accepted position before it (after it, for positions before the
    seed): the first position that agrees with its successor, or 0 when none does. A plain loop:
    it runs only for a frame that has at least one implausible move.
    """
    seed = next((k for k in range(len(logs) - 1) if abs(logs[k + 1] - logs[k]) <= limit), 0)
    bad: list[int] = []
    refs: list[int] = []
    for order in (range(seed + 1, len(logs)), range(seed - 1, -1, -1)):
        ref = seed
        for k in order:
            if abs(logs[k] - logs[ref]) > limit:
                bad.append(k)
                refs.append(ref)
            else:
                ref = k
    pairs = sorted(zip(bad, refs, strict=True))
    return [k for k, _ in pairs], [r for _, r in pairs]


def _column_problems(frame: pd.DataFrame) -> list[CandleProblem]:
    problems = []
    names = [str(name) for name in frame.columns]
    for name in CANDLE_COLUMNS:
        count = names.count(name)
        if count == 0:
            problems.append(CandleProblem(None, name, None, Rule.MISSING_COLUMN, tuple(names)))
        elif count > 1:
            problems.append(CandleProblem(None, name, count, Rule.DUPLICATE_COLUMN))
    return problems


def _coerce_float(series: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float64 values with NaN where unusable, missing mask, not-a-number mask)."""
    missing = series.isna().to_numpy(dtype=bool)
    if ptypes.is_bool_dtype(series.dtype) or not (
        ptypes.is_numeric_dtype(series.dtype)
        or ptypes.is_object_dtype(series.dtype)
        or ptypes.is_string_dtype(series.dtype)
    ):
        # True/False or datetimes in a price column are a wrong type, not numbers to reinterpret.
        return np.full(len(series), np.nan), missing, ~missing
    if ptypes.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, missing, np.zeros(len(series), dtype=bool)
    numbers = pd.to_numeric(series, errors="coerce")
    values = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    return values, missing, np.isnan(values) & ~missing


def _coerce_ts(series: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(int64 ms, missing, not an integer, not finite) for a ts column of any reasonable dtype."""
    n = len(series)
    missing = series.isna().to_numpy(dtype=bool)
    no = np.zeros(n, dtype=bool)
    if ptypes.is_datetime64_any_dtype(series.dtype):
        # tz-aware values come out in UTC; naive ones are taken as UTC.
        ns = series.to_numpy(dtype="datetime64[ns]").view(np.int64)
        whole = ns % 1_000_000 == 0
        return np.where(missing, 0, ns // 1_000_000), missing, ~missing & ~whole, no
    if ptypes.is_bool_dtype(series.dtype):
        return np.zeros(n, dtype=np.int64), missing, ~missing, no
    if ptypes.is_integer_dtype(series.dtype):
        return series.to_numpy(dtype=np.int64, na_value=0), missing, no, no
    if ptypes.is_float_dtype(series.dtype):
        floats = series.to_numpy(dtype=np.float64, na_value=np.nan)
    elif ptypes.is_object_dtype(series.dtype) or ptypes.is_string_dtype(series.dtype):
        numbers = pd.to_numeric(series, errors="coerce")
        if ptypes.is_integer_dtype(numbers.dtype):
            return numbers.to_numpy(dtype=np.int64), missing, no, no
        floats = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        return np.zeros(n, dtype=np.int64), missing, ~missing, no
    not_finite = np.isinf(floats)
    # 2**62 keeps the cast in range; real ms timestamps are ~1.7e12.
    whole = np.isfinite(floats) & (np.floor(floats) == floats) & (np.abs(floats) < 2.0**62)
    not_integer = ~missing & ~not_finite & ~whole
    ints = np.where(whole, floats, 0).astype(np.int64)
    return ints, missing, not_integer, not_finite


def _group_starts(repeat: np.ndarray) -> np.ndarray:
    """For a sorted run flag (True = same as previous), the index of each element's run start."""
    starts = np.where(~repeat, np.arange(len(repeat)), 0)
    return np.maximum.accumulate(starts)


# -------------------------------------------------------------------------------------------------
# Messages.


def _plain(value: object) -> object:
    """numpy scalars as Python ones: messages read ``101.0``, not ``np.float64(101.0)``."""
    return value.item() if isinstance(value, np.generic) else value


def _show(value: object) -> str:
    value = _plain(value)
    return repr(value) if isinstance(value, str | float) else str(value)


def _whens(ts: np.ndarray) -> list[str]:
    """``2020-01-01 05:00:00 UTC`` for each ms timestamp (milliseconds shown only when nonzero)."""
    moments = ts.astype(np.int64).astype("datetime64[ms]")
    seconds = np.datetime_as_string(moments, unit="s").tolist()
    millis = np.datetime_as_string(moments, unit="ms").tolist()
    whole = (ts % 1000 == 0).tolist()
    return [
        f"{(s if w else m).replace('T', ' ')} UTC"
        for s, m, w in zip(seconds, millis, whole, strict=True)
    ]


def _describe(problem: CandleProblem) -> str:
    context = problem.context if isinstance(problem.context, tuple) else None
    try:
        return _DESCRIBE[Rule(problem.rule)](problem.field, problem.value, context)
    except (KeyError, ValueError, TypeError, IndexError):
        # A hand-made problem with an unknown rule or context: still name the field and value.
        return f"{problem.field} {_show(problem.value)} breaks rule {problem.rule!r}"


# The formatters below unpack the contexts _Checks builds; they run once per bad row, so they
# stay lean (a wrong --timeframe can make every row of a big file a problem).


def _off_grid(name: str, value: object, context: Context) -> str:
    ts, when, timeframe, tf_ms = context  # type: ignore[misc]
    # A 10-digit epoch is seconds: the commonest way to land off every grid.
    hint = " (seconds? Redline timestamps are milliseconds)" if abs(ts) < 10**11 else ""
    return f"ts {ts} ({when}) is not on the {timeframe} grid ({ts} % {tf_ms} = {ts % tf_ms}){hint}"


def _duplicate(name: str, value: object, context: Context) -> str:
    ts, when, first, same = context  # type: ignore[misc]
    how = "identical values" if same else "different values"
    return f"ts {ts} ({when}) duplicates row {first} ({how})"


def _decreasing(name: str, value: object, context: Context) -> str:
    ts, when, prev_row, prev_ts, prev_when = context  # type: ignore[misc]
    return f"ts {ts} ({when}) is before row {prev_row}'s ts {prev_ts} ({prev_when})"


def _implausible_price(name: str, value: object, context: Context) -> str:
    (limits,) = context  # type: ignore[misc]
    return (
        f"{name} {_show(value)} is outside the plausible price range [{limits.min_price:g}, "
        f"{limits.max_price:g}] (validation.min_price, validation.max_price)"
    )


def _implausible_move(name: str, value: object, context: Context) -> str:
    ratio, ref_row, ref_close, limits = context  # type: ignore[misc]
    how = f"{ratio:.3g} times" if ratio >= 1 else f"1/{1 / ratio:.3g} of"
    return (
        f"{name} {_show(value)} is {how} row {ref_row}'s close {_show(ref_close)}, a move beyond "
        f"validation.max_bar_move {limits.max_bar_move:g}"
    )


def _bound(context: Context) -> str:
    return _show(context[0]) if context else "?"


Context = tuple[Any, ...] | None

_TIMED = frozenset({Rule.OFF_GRID, Rule.DUPLICATE_TS, Rule.DECREASING_TS})

#: One formatter per rule: (field, the input's value, context) -> the message after "row N: ".
_DESCRIBE: dict[Rule, Callable[[str, object, Context], str]] = {
    Rule.MISSING_COLUMN: lambda name, value, context: (
        f"missing column {name!r} (columns: {', '.join(map(str, context or ())) or 'none'})"
    ),
    Rule.DUPLICATE_COLUMN: lambda name, value, context: f"column {name!r} appears {value} times",
    Rule.MISSING_VALUE: lambda name, value, context: f"{name} is missing (got {_show(value)})",
    Rule.NOT_A_NUMBER: lambda name, value, context: f"{name} {_show(value)} is not a number",
    Rule.NOT_AN_INTEGER: lambda name, value, context: (
        f"{name} {_show(value)} is not an integer millisecond timestamp"
    ),
    Rule.NOT_FINITE: lambda name, value, context: f"{name} {_show(value)} is not finite",
    Rule.NOT_POSITIVE: lambda name, value, context: f"{name} {_show(value)} is not positive",
    Rule.NEGATIVE_VOLUME: lambda name, value, context: f"{name} {_show(value)} is negative",
    Rule.HIGH_BELOW_OPEN_CLOSE: lambda name, value, context: (
        f"high {_show(value)} is below max(open, close) {_bound(context)}"
    ),
    Rule.LOW_ABOVE_OPEN_CLOSE: lambda name, value, context: (
        f"low {_show(value)} is above min(open, close) {_bound(context)}"
    ),
    Rule.HIGH_BELOW_LOW: lambda name, value, context: (
        f"high {_show(value)} is below low {_bound(context)}"
    ),
    Rule.OFF_GRID: _off_grid,
    Rule.DUPLICATE_TS: _duplicate,
    Rule.DECREASING_TS: _decreasing,
    Rule.IMPLAUSIBLE_PRICE: _implausible_price,
    Rule.IMPLAUSIBLE_MOVE: _implausible_move,
}
