"""Candle files: read what users already have, write what Redline exports.

:func:`read_candle_file` reads, by extension:

- ``.csv`` / ``.csv.gz``: a header row naming a time column (``timestamp``, ``ts``, ``date``,
  ``datetime``, ``time`` or ``open_time``) and ``open, high, low, close, volume``, as in
  ``../shared/data``. Times are integer ms or ISO 8601 strings (naive ones are UTC).
- ``.json`` / ``.json.gz``: freqtrade's JSON candles, a list of ``[ms, open, high, low, close,
  volume]`` rows (``freqtrade download-data --data-format-ohlcv json|jsongz``).
- ``.feather``: freqtrade's default format, columns ``date`` (datetime64, UTC) and OHLCV.
- ``.parquet``: Redline's own export (``CANDLE_COLUMNS``); freqtrade's parquet layout also works.

The result is a *raw* candle frame: ``CANDLE_COLUMNS`` first (times converted to int ms, cells
otherwise as read) then any other columns; it is not validated, so a bad cell reaches
``market.validation`` with its row and value intact. Structural problems (unknown extension, no time
column, a JSON row of the wrong length) raise ValueError naming the file.

A file that cannot be read at all (a truncated or corrupt gzip, a damaged Parquet or feather file, a
CSV that does not tokenize, an empty file, a directory, a permission problem) raises
:class:`CandleFileError`, translated here, at the one place files are opened, so every caller
reports ``<path>: <cause> (<the library's own words>)`` instead of a bare library error (click
turns gzip's EOFError into a bare ``Aborted.``).
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pandas.api import types as ptypes

from market.series import CANDLE_COLUMNS

logger = logging.getLogger(__name__)

__all__ = [
    "CANDLE_SUFFIXES",
    "TIME_COLUMNS",
    "CandleFileError",
    "read_candle_file",
    "to_epoch_ms",
    "write_candle_csv",
    "write_parquet",
    "write_rejects",
]

#: Time column names accepted, most specific first (a file with several keeps the others as extras).
TIME_COLUMNS: tuple[str, ...] = ("ts", "timestamp", "open_time", "date", "datetime", "time")

PARQUET_SCHEMA = pa.schema(
    [("ts", pa.int64())] + [(name, pa.float64()) for name in CANDLE_COLUMNS[1:]]
)

PathLike = str | os.PathLike[str]


class CandleFileError(ValueError):
    """A candle file that cannot be read; the message is ``<path>: <cause>``.

    A ValueError: for the CLI it is bad input (``error: ...``, exit 2), like a bad row.
    """

    def __init__(self, path: Path, cause: str) -> None:
        self.path = path
        self.cause = cause
        super().__init__(f"{path}: {cause}")


def _read_csv(path: Path) -> pd.DataFrame:
    # low_memory=False: one dtype per column even when a bad cell sits deep in a big file.
    return pd.read_csv(path, low_memory=False)


def _read_freqtrade_json(path: Path) -> pd.DataFrame:
    try:
        # precise_float: the default parser may round the last digit of a price.
        raw = pd.read_json(path, orient="values", dtype=False, precise_float=True)
    except ValueError as exc:
        raise ValueError(f"{path}: not freqtrade JSON candles ({exc})") from exc
    if raw.empty:
        return pd.DataFrame(columns=list(CANDLE_COLUMNS))
    if raw.shape[1] != len(CANDLE_COLUMNS):
        raise ValueError(
            f"{path}: freqtrade JSON candles are [ms, open, high, low, close, volume] rows; "
            f"got rows of {raw.shape[1]} values (a trades file?)"
        )
    raw.columns = pd.Index(CANDLE_COLUMNS)
    return raw


def _read_feather(path: Path) -> pd.DataFrame:
    return pd.read_feather(path)


def _read_parquet(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


#: Readers by file-name ending (checked longest first, case-insensitive).
CANDLE_SUFFIXES: dict[str, Callable[[Path], pd.DataFrame]] = {
    ".csv.gz": _read_csv,
    ".csv": _read_csv,
    ".json.gz": _read_freqtrade_json,
    ".json": _read_freqtrade_json,
    ".feather": _read_feather,
    ".parquet": _read_parquet,
}


def read_candle_file(path: PathLike) -> pd.DataFrame:
    """The raw candle frame in ``path`` (CSV, CSV.gz, freqtrade JSON/JSON.gz/feather, Parquet)."""
    path = Path(path)
    name = path.name.lower()
    endings = sorted(CANDLE_SUFFIXES, key=len, reverse=True)
    suffix = next((ending for ending in endings if name.endswith(ending)), "")
    if not suffix:
        known = ", ".join(CANDLE_SUFFIXES)
        raise ValueError(
            f"cannot read candles from {path}: unknown file type {''.join(path.suffixes)!r}; "
            f"expected one of {known}"
        )
    if path.is_dir():
        raise CandleFileError(path, "is a directory, not a candle file")
    if not path.is_file():
        raise FileNotFoundError(f"candle file not found: {path}")
    try:
        frame = CANDLE_SUFFIXES[suffix](path)
    except _UNREADABLE as exc:
        raise CandleFileError(path, _read_failure(exc, suffix)) from exc
    logger.debug("read %d rows from %s", len(frame), path)
    return _normalize(frame, path)


#: What the readers raise for a file they cannot read at all (not for a bad cell: that is validation's).
_UNREADABLE: tuple[type[BaseException], ...] = (
    EOFError,  # a truncated gzip
    OSError,  # a corrupt gzip header, permissions, I/O errors
    zlib.error,  # a damaged deflate stream
    pa.ArrowException,  # a damaged Parquet or feather file
    pd.errors.ParserError,
    pd.errors.EmptyDataError,
    UnicodeDecodeError,
)


def _read_failure(exc: BaseException, suffix: str) -> str:
    """Why a file could not be read, in words, with the library's own message in brackets."""
    said = " ".join(str(exc).split())  # pandas' tokenizer messages end in a newline
    kind = suffix.lstrip(".").removesuffix(".gz")
    if isinstance(exc, EOFError):
        return f"truncated gzip file ({said})" if suffix.endswith(".gz") else f"truncated ({said})"
    if isinstance(exc, gzip.BadGzipFile):
        return f"not a gzip file, although its name ends in .gz ({said})"
    if isinstance(exc, zlib.error):
        return f"corrupt gzip data ({said})"
    if isinstance(exc, pa.ArrowException):
        return f"not a readable {kind} file, damaged or truncated ({said})"
    if isinstance(exc, pd.errors.EmptyDataError):
        return f"empty file, no header row ({said})"
    if isinstance(exc, pd.errors.ParserError):
        return f"not a well-formed {kind.upper()} file ({said})"
    if isinstance(exc, UnicodeDecodeError):
        return f"not a text {kind.upper()} file ({said})"
    if isinstance(exc, PermissionError):
        return f"permission denied ({exc.strerror or said})"
    if isinstance(exc, OSError):
        return f"cannot be read ({exc.strerror or said})"
    return said


def _normalize(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Rename to ``CANDLE_COLUMNS`` (case-insensitive), times to int ms, canonical columns first."""
    lower = {str(column).strip().lower(): column for column in reversed(frame.columns)}
    time_name = next((name for name in TIME_COLUMNS if name in lower), None)
    missing = [name for name in CANDLE_COLUMNS[1:] if name not in lower]
    if time_name is None or missing:
        lacks = []
        if time_name is None:
            lacks.append(f"a time column (one of {', '.join(TIME_COLUMNS)})")
        if missing:
            noun = "columns" if len(missing) > 1 else "column"
            lacks.append(f"{noun} {', '.join(map(repr, missing))}")
        have = ", ".join(str(column) for column in frame.columns) or "none"
        raise ValueError(f"{path}: missing {' and '.join(lacks)}; the file's columns: {have}")
    originals = [lower[time_name]] + [lower[name] for name in CANDLE_COLUMNS[1:]]
    out = frame[originals].copy()
    out.columns = pd.Index(CANDLE_COLUMNS)
    out["ts"] = to_epoch_ms(out["ts"])
    extras = frame.drop(columns=originals)
    return pd.concat([out, extras], axis=1).reset_index(drop=True)


def to_epoch_ms(series: pd.Series) -> pd.Series:
    """Times as int64 ms since the epoch: datetimes (naive = UTC), ISO 8601 strings, numbers.

    Numbers are taken as ms already. Values that are none of these are left as they are (and a
    missing one stays missing), so validation can name the row and the value.
    """
    if ptypes.is_datetime64_any_dtype(series.dtype):
        return _datetimes_to_ms(series)
    if not (ptypes.is_object_dtype(series.dtype) or ptypes.is_string_dtype(series.dtype)):
        return series
    numbers = pd.to_numeric(series, errors="coerce")
    unparsed = (numbers.isna() & series.notna()).to_numpy(dtype=bool)
    if not unparsed.any():
        return numbers
    dates = pd.to_datetime(series.where(unparsed), format="ISO8601", utc=True, errors="coerce")
    ms = np.where(
        unparsed,
        _datetimes_to_ms(dates).to_numpy(dtype=np.float64, na_value=np.nan),
        numbers.to_numpy(dtype=np.float64, na_value=np.nan),
    )
    garbage = unparsed & dates.isna().to_numpy(dtype=bool)
    if garbage.any():
        mixed = pd.Series(ms, index=series.index, dtype=object)
        mixed[garbage] = series[garbage]
        return mixed
    if np.isnan(ms).any() or not np.all(np.floor(ms) == ms):
        return pd.Series(ms, index=series.index)
    return pd.Series(ms.astype(np.int64), index=series.index)


def _datetimes_to_ms(series: pd.Series) -> pd.Series:
    ns = series.to_numpy(dtype="datetime64[ns]").view(np.int64)
    missing = series.isna().to_numpy(dtype=bool)
    whole = ns % 1_000_000 == 0
    if missing.any() or not whole.all():
        # Keep missing as NaN and sub-millisecond times as fractions: validation names both.
        return pd.Series(np.where(missing, np.nan, ns / 1_000_000), index=series.index)
    return pd.Series(ns // 1_000_000, index=series.index)


def write_parquet(frame: pd.DataFrame, path: PathLike) -> Path:
    """Write a (validated) candle frame as Redline's Parquet export; return the path.

    Only ``CANDLE_COLUMNS`` are written, with ts int64 and float64 prices and volume. The file is
    written beside its final name and renamed into place, so a killed run never leaves half a file.
    """
    path = Path(path)
    missing = [name for name in CANDLE_COLUMNS if name not in frame.columns]
    if missing:
        raise ValueError(f"cannot write {path}: candle frame has no column {', '.join(missing)}")
    if not ptypes.is_integer_dtype(frame["ts"].dtype):
        raise ValueError(
            f"cannot write {path}: ts must be integer ms; got dtype {frame['ts'].dtype} "
            "(validate with market.validation.validate_candles first)"
        )
    table = pa.Table.from_pandas(
        frame[list(CANDLE_COLUMNS)], schema=PARQUET_SCHEMA, preserve_index=False
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    pq.write_table(table, partial, compression="zstd")
    os.replace(partial, path)
    return path


def write_rejects(rejects: pd.DataFrame, path: PathLike) -> Path:
    """Write split_valid's rejects as CSV (gzip when the name ends in .gz); return the path.

    The first column, ``row``, is each row's 0-based position in the input; then the input's
    columns as read and ``reason``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    gzip = path.name.lower().endswith(".gz")
    rejects.to_csv(partial, index=True, index_label="row", compression="gzip" if gzip else None)
    os.replace(partial, path)
    return path


def write_candle_csv(frame: pd.DataFrame, path: PathLike) -> Path:
    """Write a candle frame as CSV (``CANDLE_COLUMNS``, ts in ms), readable by read_candle_file.

    Used for the rows ``data import --replace`` removes; written beside its final name and renamed
    into place, so the file is whole or absent.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    frame[list(CANDLE_COLUMNS)].to_csv(partial, index=False)
    os.replace(partial, path)
    return path
