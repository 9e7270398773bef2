"""Daily sentiment series, and their look-ahead-free join onto intraday candles.

A daily value dated day ``D`` (timestamp ``D 00:00 UTC``) summarises the whole of ``D``, so it is
only known once ``D`` ends. A bar may see it when the bar opens on day ``D + 1`` or later, never a
bar opening on ``D`` itself: the join shifts every value by one day before an as-of match.

``fetch_fear_greed`` reads the crypto Fear & Greed index from alternative.me's API (or the loopback
exchange serving the same answer); ``write_sentiment`` merges days into a file shaped like the
shipped ``feargreed_crypto_1d.csv.gz``, which is how the live service keeps its growing copy.
"""

from __future__ import annotations

import gzip
import http.client
import io
import json
import logging
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from market.errors import FixConfig, RetryLater
from market.retry import check_backoff, with_retries

logger = logging.getLogger(__name__)

__all__ = [
    "DAY_MS",
    "FEAR_GREED_API",
    "fetch_fear_greed",
    "join_daily_lagged",
    "lagged_daily",
    "read_sentiment",
    "write_sentiment",
]

DAY_MS = 86_400_000
FEAR_GREED_API = "https://api.alternative.me"
SENTIMENT_HEADER = ("timestamp", "value", "label")


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


def fetch_fear_greed(
    base_url: str = FEAR_GREED_API,
    *,
    limit: int = 0,
    timeout_s: float = 10.0,
    max_retries: int = 4,
    backoff_initial_s: float = 0.5,
    backoff_max_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> pd.DataFrame:
    """The crypto Fear & Greed index from ``GET {base_url}/fng/?limit=N&format=json``.

    Returns ``ts, value, label``: ``ts`` and ``value`` as :func:`read_sentiment` returns them
    (int64 ms at 00:00 UTC of the day, float64), ``label`` the day's class ("Fear", ...), sorted
    by ``ts``. ``limit``: the newest N days, 0 for every day the API has.

    HTTP 429 and 5xx, timeouts, dropped connections and truncated or garbled JSON are retried up to
    ``max_retries`` times, waiting ``backoff_initial_s`` doubled per try up to ``backoff_max_s``, or
    longer when the server sends ``Retry-After``; after the last try ``RetryLater`` names the URL
    and the last failure. Another HTTP error (a 404: a wrong ``base_url``) raises ``FixConfig`` at
    once. A row that is not a day of the index (a value not a number from 0 to 100, a timestamp
    not at 00:00 UTC, a day twice) raises ValueError naming the field and the value.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"limit must be an integer >= 0 (0: every day); got {limit!r}")
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive; got {timeout_s}")
    check_backoff(max_retries, backoff_initial_s, backoff_max_s)
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must look like {FEAR_GREED_API!r}; got {base_url!r}")
    url = f"{base_url.rstrip('/')}/fng/?limit={limit}&format=json"
    payload = with_retries(
        partial(_get_json, url, timeout_s),
        what=f"GET {url}",
        max_retries=max_retries,
        backoff=(backoff_initial_s, backoff_max_s),
        sleep=sleep,
        log=logger,
    )
    frame = _fear_greed_frame(url, payload)
    logger.debug("fetched %d Fear & Greed days from %s", len(frame), url)
    return frame


def _get_json(url: str, timeout_s: float) -> Any:
    """One GET; transient failures raise RetryLater, a refusal FixConfig."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body: bytes = response.read()
    except urllib.error.HTTPError as error:
        detail = _error_detail(error)
        if error.code == 429 or error.code >= 500:
            retry_after = _seconds(error.headers.get("Retry-After")) if error.headers else None
            raise RetryLater(
                f"GET {url}: HTTP {error.code} {error.reason}{detail}", retry_after_s=retry_after
            ) from error
        raise FixConfig(
            f"GET {url}: HTTP {error.code} {error.reason}{detail}; check the Fear & Greed URL"
        ) from error
    except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise RetryLater(f"GET {url}: {type(error).__name__}: {error}") from error
    try:
        payload = json.loads(body)
    except ValueError:
        preview = body[:60].decode("utf-8", "replace")
        raise RetryLater(
            f"GET {url}: truncated or garbled JSON ({len(body)} bytes: {preview!r})"
        ) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise RetryLater(f"GET {url}: the answer has no 'data' list")
    error_text = (payload.get("metadata") or {}).get("error")
    if error_text:
        raise FixConfig(f"GET {url}: the API answered error {error_text!r}")
    return payload


def _error_detail(error: urllib.error.HTTPError) -> str:
    """The API's own words from an error answer's JSON (``metadata.error``), if it sent any."""
    try:
        payload = json.loads(error.read())
    except (OSError, ValueError, http.client.HTTPException):
        return ""
    finally:
        error.close()
    said = (payload.get("metadata") or {}).get("error") if isinstance(payload, dict) else None
    return f" ({said})" if said else ""


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: our own backoff applies


def _fear_greed_frame(url: str, payload: dict[str, Any]) -> pd.DataFrame:
    ts: list[int] = []
    values: list[float] = []
    labels: list[str] = []
    for i, row in enumerate(payload["data"]):
        where = f"{url}: data[{i}]"
        if not isinstance(row, dict):
            raise ValueError(f"{where} must be an object; got {row!r}")
        for name in ("timestamp", "value", "value_classification"):
            if name not in row:
                raise ValueError(f"{where} has no {name!r}; got keys {sorted(row)}")
        try:
            seconds = int(row["timestamp"])
        except (TypeError, ValueError):
            raise ValueError(
                f"{where}.timestamp must be whole epoch seconds; got {row['timestamp']!r}"
            ) from None
        if seconds * 1000 % DAY_MS != 0:
            raise ValueError(
                f"{where}.timestamp must be 00:00 UTC of its day; got {row['timestamp']!r}"
            )
        try:
            value = float(row["value"])
        except (TypeError, ValueError):
            value = math.nan
        if not 0 <= value <= 100:  # NaN fails too
            raise ValueError(f"{where}.value must be a number from 0 to 100; got {row['value']!r}")
        ts.append(seconds * 1000)
        values.append(value)
        labels.append(str(row["value_classification"]))
    frame = pd.DataFrame(
        {
            "ts": np.asarray(ts, dtype=np.int64),
            "value": np.asarray(values, dtype="float64"),
            "label": pd.Series(labels, dtype=object),
        }
    )
    duplicated = frame["ts"].duplicated()
    if duplicated.any():
        raise ValueError(
            f"{url}: timestamp must be one per day; got {int(frame['ts'][duplicated].iloc[0]) // 1000} "
            "twice"
        )
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def write_sentiment(frame: pd.DataFrame, path: str | Path) -> int:
    """Merge the days of ``frame`` (``ts, value, label``) into the file at ``path``; returns how
    many days were new.

    The file is the shipped ``feargreed_crypto_1d.csv.gz`` shape: gzip CSV ``timestamp,value,label``,
    ms at 00:00 UTC, one row per day, sorted. It is created when missing. The merge is by day and
    first-write-wins, like candles: a day already stored keeps its stored value and label (a
    different value is logged as a warning, never overwritten: a published day does not change,
    so a difference is the source's error and replaying must not rewrite history). Writing days
    already stored changes nothing, the file is not even rewritten; otherwise the new file
    replaces the old one atomically (a crash leaves the old or the new file, never half of one).
    """
    path = Path(path)
    missing = [name for name in ("ts", "value", "label") if name not in frame.columns]
    if missing:
        raise ValueError(f"frame must have columns ts, value, label; missing {missing}")
    new = pd.DataFrame(
        {
            "timestamp": frame["ts"].to_numpy(dtype=np.int64),
            "value": frame["value"].to_numpy(dtype="float64"),
            "label": frame["label"].astype(str).to_numpy(),
        }
    )
    off_grid = new["timestamp"] % DAY_MS != 0
    if off_grid.any():
        raise ValueError(
            f"ts must be 00:00 UTC of its day; got {int(new['timestamp'][off_grid].iloc[0])}"
        )
    if not np.isfinite(new["value"]).all():
        raise ValueError(
            f"value must be finite; got {new['value'][~np.isfinite(new['value'])].iloc[0]}"
        )
    if new["timestamp"].duplicated().any():
        raise ValueError(
            f"ts must be one per day; got {int(new['timestamp'][new['timestamp'].duplicated()].iloc[0])} twice"
        )
    stored = _read_raw(path)
    known = dict(zip(stored["timestamp"].tolist(), stored["value"].tolist(), strict=True))
    fresh = ~new["timestamp"].isin(known)
    for ts, value in zip(new["timestamp"][~fresh], new["value"][~fresh], strict=True):
        if known[ts] != value:
            logger.warning(
                "%s: day %d is stored with value %g; kept it, ignored the new value %g",
                path,
                ts,
                known[ts],
                value,
            )
    added = new[fresh]
    if added.empty:
        return 0
    merged = pd.concat([stored, added], ignore_index=True).sort_values("timestamp", kind="stable")
    _write_raw(merged, path)
    logger.info("%s: %d new days (now %d)", path, len(added), len(merged))
    return len(added)


def _read_raw(path: Path) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame(
            {
                "timestamp": np.array([], dtype=np.int64),
                "value": np.array([], dtype="float64"),
                "label": np.array([], dtype=object),
            }
        )
    stored = pd.read_csv(path, dtype={"label": str}, keep_default_na=False)
    if tuple(stored.columns[:3]) != SENTIMENT_HEADER:
        raise ValueError(f"{path}: header must be {','.join(SENTIMENT_HEADER)}; got {list(stored)}")
    return stored.astype({"timestamp": "int64", "value": "float64"})[list(SENTIMENT_HEADER)]


def _write_raw(frame: pd.DataFrame, path: Path) -> None:
    # Whole values are written as the shipped file writes them ("30", not "30.0").
    text = io.StringIO()
    text.write(",".join(SENTIMENT_HEADER) + "\n")
    for ts, value, label in frame.itertuples(index=False):
        shown = str(int(value)) if float(value).is_integer() else repr(float(value))
        text.write(f"{int(ts)},{shown},{label}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as packed:
        packed.write(text.getvalue().encode("utf-8"))
    os.replace(partial, path)
