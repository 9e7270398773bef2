"""Bringing candles into the store: files on disk, and the shipped sample.

Each file is one series (exchange, symbol, timeframe from flags, else from its name). A file is one
batch: by default any bad row refuses the whole file, naming row, field and value, and nothing of it is
stored; with ``skip_invalid`` the good rows are stored and the rejects written beside the data root.
The ``validation.*`` plausibility limits apply to both.

Stored candles are never overwritten by an import (first write wins), except by ``replace``: the
file's candles in a range (``start_ms <= ts < end_ms``, by default the file's own span, never beyond
it) replace the stored ones of that range, in one transaction; the rows removed are written first to
``<series>.replaced.<UTC time>.csv`` beside where rejects go. A replace takes the whole file or
nothing (any bad row refuses it, so it cannot be combined with ``skip_invalid``); the file's rows
outside the range are left out, and nothing stored outside the range changes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pandas as pd

from market.files import read_candle_file, write_candle_csv, write_rejects
from market.series import SeriesKey, parse_series_file_name
from market.validation import DEFAULT_PLAUSIBILITY, Plausibility, split_valid, validate_candles
from store.db import Store

log = logging.getLogger(__name__)

SAMPLE_PACKAGE = "market.sample"


@dataclass(frozen=True)
class ImportResult:
    path: Path
    key: SeriesKey
    rows_read: int
    rows_inserted: int
    rows_rejected: int
    rejects_file: Path | None
    rows_replaced: int = 0  # stored rows a replace removed (kept in replaced_file)
    replaced_file: Path | None = None
    rows_outside: int = 0  # the file's rows outside a replace's range, left out


def series_for_file(
    path: Path, *, exchange: str | None, symbol: str | None, timeframe: str | None
) -> SeriesKey:
    """The series a file holds: flags win over what the file name says."""
    named = parse_series_file_name(path)
    exchange = exchange or (named.exchange if named else None)
    symbol = symbol or (named.symbol if named else None)
    timeframe = timeframe or (named.timeframe if named else None)
    missing = [
        flag
        for flag, value in (
            ("--exchange", exchange),
            ("--symbol", symbol),
            ("--timeframe", timeframe),
        )
        if value is None
    ]
    if missing:
        raise ValueError(
            f"cannot tell {', '.join(missing)} for {str(path)!r}: pass the flags or name the file "
            "like binance_BTC-USDT_1h.csv.gz"
        )
    assert exchange and symbol and timeframe  # for mypy: checked just above
    return SeriesKey(exchange, symbol, timeframe)


def import_file(
    store: Store,
    path: Path,
    *,
    exchange: str | None = None,
    symbol: str | None = None,
    timeframe: str | None = None,
    skip_invalid: bool = False,
    rejects_dir: Path | None = None,
    plausibility: Plausibility = DEFAULT_PLAUSIBILITY,
    replace: bool = False,
    start_ms: int | None = None,
    end_ms: int | None = None,
    now: datetime | None = None,
) -> ImportResult:
    """Import one file (see the module docstring); ``now`` (UTC) names a replace's old-rows file."""
    if not replace and (start_ms is not None or end_ms is not None):
        raise ValueError("--from/--to choose the range --replace replaces; pass --replace")
    if replace and skip_invalid:
        raise ValueError(
            "--replace takes the whole file or nothing; it cannot be combined with --skip-invalid"
        )
    key = series_for_file(path, exchange=exchange, symbol=symbol, timeframe=timeframe)
    raw = read_candle_file(path)
    if replace:
        return _replace(store, path, key, raw, rejects_dir, plausibility, start_ms, end_ms, now)
    rejects_file = None
    if skip_invalid:
        good, rejects = split_valid(raw, key.timeframe, plausibility=plausibility)
        if len(rejects):
            rejects_file = (rejects_dir or path.parent) / f"{key.file_stem}.rejects.csv"
            write_rejects(rejects, rejects_file)
            log.warning("%s: %d bad rows written to %s", path, len(rejects), rejects_file)
    else:
        good, rejects = raw, raw.iloc[:0]
    inserted = store.candles.write_candles(key, good, plausibility=plausibility)
    return ImportResult(path, key, len(raw), inserted, len(rejects), rejects_file)


def _replace(
    store: Store,
    path: Path,
    key: SeriesKey,
    raw: pd.DataFrame,
    rejects_dir: Path | None,
    plausibility: Plausibility,
    start_ms: int | None,
    end_ms: int | None,
    now: datetime | None,
) -> ImportResult:
    for flag, value in (("--from", start_ms), ("--to", end_ms)):
        if value is not None and value % key.timeframe_ms:
            raise ValueError(
                f"{flag} must be a candle open time on the {key.timeframe} grid (a multiple of "
                f"{key.timeframe_ms} ms); got {value}"
            )
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        raise ValueError(f"--to must be after --from; got --from {start_ms}, --to {end_ms}")
    clean = validate_candles(raw, key.timeframe, plausibility=plausibility)  # all or nothing
    if clean.empty:
        raise ValueError("the file has no candles to replace stored ones with")
    first, after = int(clean["ts"].iloc[0]), int(clean["ts"].iloc[-1]) + key.timeframe_ms
    start = start_ms if start_ms is not None else first
    end = end_ms if end_ms is not None else after
    if start < first or end > after:
        # Stored candles there would be deleted with nothing in their place: surely a typo.
        raise ValueError(
            f"--from/--to [{start}, {end}) reach beyond the file's candles [{first}, {after}); "
            "a replace would delete stored candles the file has no replacement for"
        )
    inside = clean[(clean["ts"] >= start) & (clean["ts"] < end)]
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    kept = (rejects_dir or path.parent) / f"{key.file_stem}.replaced.{stamp}.csv"
    done = store.candles.replace_candles(
        key,
        inside,
        start,
        end,
        plausibility=plausibility,
        keep_old=lambda old: write_candle_csv(old, kept),  # before the old rows are deleted
    )
    if len(done.old):
        log.warning(
            "%s: %d stored candles replaced; the old rows are in %s", path, len(done.old), kept
        )
    return ImportResult(
        path,
        key,
        len(raw),
        done.written,
        0,
        None,
        rows_replaced=len(done.old),
        replaced_file=kept if len(done.old) else None,
        rows_outside=len(clean) - len(inside),
    )


def import_files(store: Store, paths: Iterable[Path], **options: object) -> list[ImportResult]:
    """Import every file; the first file that cannot be imported stops the run with its error."""
    results = []
    for path in paths:
        try:
            results.append(import_file(store, Path(path), **options))  # type: ignore[arg-type]
        except ValueError as exc:
            if str(exc).startswith(str(path)):
                raise  # the message already names the file (market.files' errors do)
            raise ValueError(f"{path}: {exc}") from exc
    return results


def sample_files() -> list[Path]:
    """The candle files of the sample shipped in the package (see market/sample/README.md)."""
    folder = resources.files(SAMPLE_PACKAGE)
    return sorted(
        Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith(".csv.gz") and parse_series_file_name(entry.name) is not None
    )


def ensure_sample(store: Store) -> list[ImportResult]:
    """Import the shipped sample's candles unless the store already has each series in full."""
    results = []
    for path in sample_files():
        key = series_for_file(path, exchange=None, symbol=None, timeframe=None)
        info = store.candles.series_info(key)
        if info is None or info.rows == 0:
            results.append(import_file(store, path))
    return results
