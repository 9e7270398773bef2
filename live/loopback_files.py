"""What the loopback exchange serves: a data folder's files, found by name and read as text.

``scan`` lists a folder shaped like ../shared/data: ``binance_<BASE>-<QUOTE>_<tf>.csv.gz`` candle
files and ``binance_<BASE>-<QUOTE>_trades.csv.gz`` trade files (``timestamp,price,amount,side``).
The loaders keep each value as the file's own text, so a client parses exactly what the file holds.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path

from market.series import parse_series_file_name

__all__ = [
    "Candles",
    "Days",
    "Listing",
    "Trades",
    "load_candles",
    "load_days",
    "load_trades",
    "scan",
]

_TRADES_FILE = re.compile(r"^binance_([A-Z0-9]+)-([A-Z0-9]+)_trades\.csv\.gz$")


@dataclass
class Candles:
    ts: list[int]  # open times, ascending
    fields: list[tuple[str, str, str, str, str]]  # open, high, low, close, volume


@dataclass
class Days:
    ts: list[int]  # ms at 00:00 UTC, ascending
    values: list[str]
    labels: list[str]


@dataclass
class Trades:
    ts: list[int]  # ms, ascending; a trade's id is its row number
    prices: list[str]
    amounts: list[str]
    sells: list[bool]  # the taker sold: Binance's "buyer is the maker"


@dataclass
class Listing:
    series: dict[tuple[str, str], Path] = field(default_factory=dict)  # (BTCUSDT, 1h) -> file
    trades: dict[str, Path] = field(default_factory=dict)  # XRPETH -> file
    markets: dict[str, tuple[str, str]] = field(default_factory=dict)  # BTCUSDT -> (BTC, USDT)


def scan(data_dir: Path) -> Listing:
    """The Binance candle and trade files of ``data_dir`` and the markets they make."""
    listing = Listing()
    for path in sorted(data_dir.glob("binance_*.csv.gz")):
        key = parse_series_file_name(path)
        if key is not None and key.exchange == "binance":
            base, quote = key.symbol.split("/")
            listing.series[(base + quote, key.timeframe)] = path
        elif match := _TRADES_FILE.match(path.name):
            base, quote = match.groups()
            listing.trades[base + quote] = path
        else:
            continue
        listing.markets[base + quote] = (base, quote)
    return listing


def _rows(path: Path, header: list[str], width: int) -> list[list[str]]:
    """The data lines of a gzip CSV whose header starts with ``header``, split, short ones skipped."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        found = handle.readline().strip().split(",")
        if found[: len(header)] != header:
            raise ValueError(f"{path.name}: header must start {','.join(header)}; got {found}")
        return [parts for line in handle if len(parts := line.strip().split(",")) >= width]


def load_candles(path: Path) -> Candles:
    rows = _rows(path, ["timestamp", "open", "high", "low", "close", "volume"], 6)
    return Candles([int(p[0]) for p in rows], [(p[1], p[2], p[3], p[4], p[5]) for p in rows])


def load_days(path: Path) -> Days:
    rows = sorted(_rows(path, ["timestamp", "value", "label"], 3), key=lambda p: int(p[0]))
    return Days([int(p[0]) for p in rows], [p[1] for p in rows], [p[2] for p in rows])


def load_trades(path: Path) -> Trades:
    rows = _rows(path, ["timestamp", "price", "amount", "side"], 4)
    rows.sort(key=lambda p: int(p[0]))  # stable: same-millisecond trades keep the file's order
    for number, parts in enumerate(rows):
        if parts[3] not in ("buy", "sell"):
            raise ValueError(
                f"{path.name}: row {number}: side must be buy or sell; got {parts[3]!r}"
            )
    return Trades(
        [int(p[0]) for p in rows],
        [p[1] for p in rows],
        [p[2] for p in rows],
        [p[3] == "sell" for p in rows],
    )
