"""Daily sentiment series, and their look-ahead-free join onto intraday candles.

A daily value dated day ``D`` (timestamp ``D 00:00 UTC``) summarises the whole of ``D``, so it is
only known once ``D`` ends. A bar may see it when the bar opens on day ``D + 1`` or later, never a
bar opening on ``D`` itself: the join shifts every value by one day before an as-of match.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

__all__ = ["DAY_MS", "join_daily_lagged", "lagged_daily", "read_sentiment"]

DAY_MS = 86_400_000


def read_sentiment(path: str | Path, label: str | None = None) -> pd.DataFrame:
    """A daily sentiment file (``timestamp,value,label`` gzip CSV) as ``ts, value``.

    ``ts`` is int64 ms at 00:00 UTC of the value's day, sorted and unique; ``value`` is float64.
    ``label`` keeps only the rows whose ``label`` column equals it: it selects one stream of a
    file that holds several (``social_sentiment_btc_1d.csv.gz``: stocktwits, reddit_submissions,
    reddit_comments) and is then required. In the Fear & Greed file the label is the day's class
    ("Fear", "Greed", ...), one row per day, so ``label=None`` reads the whole index.
    """
    frame = pd.read_csv(path)
    for column in ("timestamp", "value"):
        if column not in frame.columns:
            raise ValueError(f"{path}: sentiment files need a {column!r} column; got {list(frame)}")
    labels = sorted(frame["label"].dropna().unique().tolist()) if "label" in frame.columns else []
    if label is not None:
        if label not in labels:
            raise ValueError(f"label must be one of {', '.join(labels)} in {path}; got {label!r}")
        frame = frame[frame["label"] == label]
    elif frame["timestamp"].duplicated().any():
        raise ValueError(
            f"label is required for {path}: it holds several streams "
            f"({', '.join(labels)}); got None"
        )
    ts = frame["timestamp"].to_numpy(dtype=np.int64)
    off_grid = ts % DAY_MS != 0
    if off_grid.any():
        raise ValueError(
            f"{path}: timestamp must be 00:00 UTC of its day; got {int(ts[off_grid][0])}"
        )
    out = pd.DataFrame({"ts": ts, "value": frame["value"].to_numpy(dtype="float64")})
    out = out.sort_values("ts", kind="stable").reset_index(drop=True)
    logger.debug("read %d daily sentiment values from %s (label %s)", len(out), path, label)
    return out


def join_daily_lagged(
    candles: pd.DataFrame,
    daily: pd.DataFrame,
    column: str = "sentiment",
    *,
    max_age_days: int | None = None,
) -> pd.DataFrame:
    """``candles`` with one more column: the latest daily value already known at each bar's open.

    A value dated ``D`` is visible from ``D + 1 00:00 UTC`` on. When the series has holes or ends,
    the last known value carries forward; ``max_age_days`` (``None``: no limit) caps how many days
    after ``D`` it may still be used (1 means only on ``D + 1``), beyond which the bar reads NaN.
    Bars before the first known value read NaN. The candles' index and row order are kept.
    """
    if "ts" not in candles.columns:
        raise ValueError(f"candles must have a 'ts' column; got {list(candles.columns)}")
    for name in ("ts", "value"):
        if name not in daily.columns:
            raise ValueError(f"daily must have a {name!r} column; got {list(daily.columns)}")
    if column in candles.columns:
        raise ValueError(f"column must not already be a candle column; got {column!r}")
    if max_age_days is not None and (
        isinstance(max_age_days, bool) or not isinstance(max_age_days, int) or max_age_days < 1
    ):
        raise ValueError(f"max_age_days must be an integer >= 1 or None; got {max_age_days!r}")
    values = lagged_daily(
        candles["ts"].to_numpy(dtype=np.int64),
        daily["ts"].to_numpy(dtype=np.int64),
        daily["value"].to_numpy(dtype="float64"),
        max_age_days=max_age_days,
        name=column,
    )
    out = candles.copy()
    out[column] = values
    return out


def lagged_daily(
    bar_ts: np.ndarray,
    day_ts: np.ndarray,
    values: np.ndarray,
    *,
    max_age_days: int | None = None,
    name: str = "value",
) -> np.ndarray:
    """:func:`join_daily_lagged` on arrays: for each bar open time, the value of the latest day
    ``D`` with ``D + 1 day <= bar`` (and ``bar - (D + 1 day) < max_age_days`` days), else NaN.

    ``day_ts`` need not be sorted but must be unique (ValueError naming ``name``). A binary search
    per bar: no frame, no sort of the bars.
    """
    if len(day_ts) == 0:
        return np.full(len(bar_ts), np.nan)
    known_from = np.asarray(day_ts, dtype=np.int64) + DAY_MS  # a day's value is known when it ends
    known = np.asarray(values, dtype=np.float64)
    if not (np.diff(known_from) > 0).all():  # not already in order (read files are): sort
        order = np.argsort(known_from, kind="stable")
        known_from, known = known_from[order], known[order]
        if (np.diff(known_from) == 0).any():
            raise ValueError(f"daily must have one value per day; got duplicated ts in {name!r}")
    bars = np.asarray(bar_ts, dtype=np.int64)
    at = np.searchsorted(known_from, bars, side="right") - 1
    found = at >= 0
    if max_age_days is not None:
        found &= bars - known_from[np.maximum(at, 0)] <= max_age_days * DAY_MS - 1
    return np.where(found, known[np.maximum(at, 0)], np.nan)
