"""Bringing candles into the store: files on disk, and the shipped sample.

Each file is one series (exchange, symbol, timeframe from flags, else from its name). A file is one
batch: by default any bad row refuses the whole file, naming row, field and value, and nothing of it is
stored; with ``skip_invalid`` the good rows are stored and the rejects written beside the data root.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from market.files import read_candle_file, write_rejects
from market.series import SeriesKey, parse_series_file_name
from market.validation import split_valid
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
) -> ImportResult:
    key = series_for_file(path, exchange=exchange, symbol=symbol, timeframe=timeframe)
    raw = read_candle_file(path)
    rejects_file = None
    if skip_invalid:
        good, rejects = split_valid(raw, key.timeframe)
        if len(rejects):
            rejects_file = (rejects_dir or path.parent) / f"{key.file_stem}.rejects.csv"
            write_rejects(rejects, rejects_file)
            log.warning("%s: %d bad rows written to %s", path, len(rejects), rejects_file)
    else:
        good, rejects = raw, raw.iloc[:0]
    inserted = store.write_candles(key, good)
    return ImportResult(path, key, len(raw), inserted, len(rejects), rejects_file)


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
        info = store.series_info(key)
        if info is None or info.rows == 0:
            results.append(import_file(store, path))
    return results
