"""Which series a batch of candles belongs to, and how file names spell it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from market.timeframes import timeframe_ms

if TYPE_CHECKING:
    import pandas as pd

CANDLE_COLUMNS: tuple[str, ...] = ("ts", "open", "high", "low", "close", "volume")
"""A candle frame: ``ts`` int64 open time in ms UTC, then float64 prices and base-asset volume."""

#: Candles as the series builders read them: a candle frame, or a mapping of its column names to
#: numpy arrays (what the live service builds from a request, with no DataFrame in between).
Candles: TypeAlias = "pd.DataFrame | Mapping[str, np.ndarray]"


def candle_arrays(candles: Candles) -> dict[str, np.ndarray]:
    """The ``CANDLE_COLUMNS`` of ``candles`` as arrays (``ts`` int64, the rest float64)."""
    return {
        column: np.asarray(candles[column], dtype=np.int64 if column == "ts" else np.float64)
        for column in CANDLE_COLUMNS
    }


_SYMBOL = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$")
_FILE_NAME = re.compile(
    r"^(?P<exchange>[a-z0-9]+)_(?P<base>[A-Za-z0-9]+)[-_/](?P<quote>[A-Za-z0-9]+)"
    r"[-_](?P<timeframe>\d+[mhdw])(?:[-_].*)?$"
)


def normalize_symbol(symbol: str) -> str:
    """``btc-usdt``, ``BTC_USDT`` and ``BTC/USDT`` all become ccxt's unified ``BTC/USDT``."""
    unified = symbol.strip().upper().replace("-", "/").replace("_", "/")
    if not _SYMBOL.match(unified):
        raise ValueError(f"symbol must look like 'BTC/USDT'; got {symbol!r}")
    return unified


@dataclass(frozen=True, order=True)
class SeriesKey:
    """One candle series: the unit of storage, cursors and gap bookkeeping."""

    exchange: str
    symbol: str
    timeframe: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9]+", self.exchange):
            raise ValueError(
                f"exchange must be a lower-case ccxt id like 'binance'; got {self.exchange!r}"
            )
        object.__setattr__(self, "symbol", normalize_symbol(self.symbol))
        timeframe_ms(self.timeframe)  # raises with the list of valid timeframes

    @property
    def timeframe_ms(self) -> int:
        return timeframe_ms(self.timeframe)

    @property
    def file_stem(self) -> str:
        """``binance_BTC-USDT_1h``: the name ../shared/data and ``raw_data/`` use."""
        return f"{self.exchange}_{self.symbol.replace('/', '-')}_{self.timeframe}"

    def __str__(self) -> str:
        return f"{self.exchange}:{self.symbol}:{self.timeframe}"


def parse_series_file_name(path: str | Path) -> SeriesKey | None:
    """The series a file name like ``binance_BTC-USDT_1h.csv.gz`` names, or None when it names none."""
    name = Path(path).name
    stem = name.split(".", 1)[0]
    match = _FILE_NAME.match(stem)
    if match is None:
        return None
    try:
        return SeriesKey(
            exchange=match["exchange"],
            symbol=f"{match['base']}/{match['quote']}",
            timeframe=match["timeframe"],
        )
    except ValueError:
        return None
