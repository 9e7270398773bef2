"""Gaps: the open times of a timeframe's grid that a series does not have.

A series' timestamps are taken as a set of grid points (ms since the epoch, each a multiple of the
timeframe's length), so order and repeats do not matter; a timestamp off the grid is refused, since
it points at a bug upstream (validation refuses such candles before they are stored).

- :func:`find_gaps` lists the holes strictly inside a series (between its first and last candle):
  what ``store.list_series`` counts and ``redline`` reports.
- :func:`missing_ranges` lists what a window ``[start_ms, end_ms)`` lacks, including before the
  first and after the last candle: what the fetcher has to download.

Both cost O(n log n) in the number of timestamps (O(n) when already sorted), never in the window's
length, so asking for ten years of 1m candles does not allocate a ten-year grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Gap", "find_gaps", "missing_ranges"]


@dataclass(frozen=True)
class Gap:
    """A run of missing candles: ``start_ts`` and ``end_ts`` are the first and last missing open
    times (inclusive, both on the grid) and ``missing`` is the number of bars in between."""

    start_ts: int
    end_ts: int
    missing: int

    def __post_init__(self) -> None:
        if self.missing < 1:
            raise ValueError(f"Gap.missing must be at least 1; got {self.missing}")
        if self.end_ts < self.start_ts:
            raise ValueError(
                f"Gap.end_ts must not be before start_ts ({self.start_ts}); got {self.end_ts}"
            )


def find_gaps(ts: npt.ArrayLike, timeframe_ms: int) -> list[Gap]:
    """The gaps between the first and last of ``ts`` (integer ms open times on the grid).

    >>> find_gaps(np.array([0, 60_000, 240_000]), 60_000)
    [Gap(start_ts=120000, end_ts=180000, missing=2)]
    """
    points = _grid_points(ts, timeframe_ms)
    if len(points) < 2:
        return []
    starts, ends = _holes(points, timeframe_ms)
    missing = (ends - starts) // timeframe_ms
    return [
        Gap(start_ts=start, end_ts=end - timeframe_ms, missing=count)
        for start, end, count in zip(starts.tolist(), ends.tolist(), missing.tolist(), strict=True)
    ]


def missing_ranges(
    ts: npt.ArrayLike, start_ms: int, end_ms: int, timeframe_ms: int
) -> list[tuple[int, int]]:
    """Half-open ranges ``[a, b)`` of the grid in ``[start_ms, end_ms)`` that ``ts`` does not cover.

    ``start_ms`` and ``end_ms`` need not be on the grid: the window holds the open times ``g`` with
    ``start_ms <= g < end_ms``. Both ends of every range are on the grid, so ``(b - a) //
    timeframe_ms`` is the number of missing bars and ``b`` may pass ``end_ms`` by less than a bar.
    Ranges are sorted and never touch (adjacent holes are one range). An empty window gives ``[]``;
    timestamps outside the window are ignored.

    >>> missing_ranges(np.array([120_000]), 0, 300_000, 60_000)
    [(0, 120000), (180000, 300000)]
    """
    points = _grid_points(ts, timeframe_ms)
    first = -(-int(start_ms) // timeframe_ms) * timeframe_ms  # first grid point >= start_ms
    stop = -(-int(end_ms) // timeframe_ms) * timeframe_ms  # first grid point >= end_ms
    if first >= stop:
        return []
    inside = points[(points >= first) & (points < stop)]
    # Sentinels one bar before the window and at its end turn the edges into ordinary holes.
    bounded = np.concatenate(([first - timeframe_ms], inside, [stop]))
    starts, ends = _holes(bounded, timeframe_ms)
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _holes(points: np.ndarray, timeframe_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Half-open ``[start, end)`` of every hole between consecutive sorted, unique grid points."""
    steps = np.diff(points)
    at = np.flatnonzero(steps > timeframe_ms)
    return points[at] + timeframe_ms, points[at + 1]


def _grid_points(ts: npt.ArrayLike, timeframe_ms: int) -> np.ndarray:
    """``ts`` as sorted, unique int64 grid points; ValueError naming the first bad value."""
    if isinstance(timeframe_ms, bool) or not isinstance(timeframe_ms, int | np.integer):
        raise TypeError(f"timeframe_ms must be an int; got {timeframe_ms!r}")
    if timeframe_ms <= 0:
        raise ValueError(f"timeframe_ms must be positive; got {timeframe_ms}")
    values = np.asarray(ts)
    if values.ndim != 1:
        raise ValueError(f"ts must be one-dimensional; got shape {values.shape}")
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"ts must be integer milliseconds; got dtype {values.dtype}")
    points = values.astype(np.int64, copy=False)
    off = np.flatnonzero(points % timeframe_ms)
    if len(off):
        bad = int(points[off[0]])
        raise ValueError(
            f"ts must be on the {timeframe_ms} ms grid; got {bad} at position {int(off[0])} "
            f"({bad} % {timeframe_ms} = {bad % timeframe_ms})"
        )
    if bool(np.all(points[1:] > points[:-1])):
        return points  # already sorted and unique: the usual case, no copy
    return np.unique(points)
