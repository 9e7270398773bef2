"""Timeframes: the candle lengths Redline knows, as milliseconds.

Timestamps everywhere in Redline are integer milliseconds since the Unix epoch, UTC, and a candle's
timestamp is its open time. A timeframe's grid is every multiple of its length since the epoch.
"""

from __future__ import annotations

_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}

#: The timeframes ccxt's binance and kraken clients accept, in the order users expect.
TIMEFRAMES: tuple[str, ...] = (
    "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w",
)  # fmt: skip

HOURS_PER_YEAR = 24 * 365


def timeframe_ms(timeframe: str) -> int:
    """Length of one candle of ``timeframe`` in milliseconds.

    >>> timeframe_ms("15m")
    900000
    """
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"timeframe must be one of {', '.join(TIMEFRAMES)}; got {timeframe!r}")
    return int(timeframe[:-1]) * _UNIT_MS[timeframe[-1]]


def bars_per_year(timeframe: str) -> float:
    """How many candles of ``timeframe`` a year holds (crypto trades around the clock)."""
    return HOURS_PER_YEAR * 3_600_000 / timeframe_ms(timeframe)


def bars_in(duration: str, timeframe: str) -> int:
    """Number of whole ``timeframe`` candles in ``duration`` (same units, e.g. ``"7d"``), at least 1."""
    if not duration or duration[-1] not in _UNIT_MS or not duration[:-1].isdigit():
        raise ValueError(f"duration must look like '12h', '7d' or '2w'; got {duration!r}")
    return max(1, int(duration[:-1]) * _UNIT_MS[duration[-1]] // timeframe_ms(timeframe))
