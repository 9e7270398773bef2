"""The tests' name for the product's loopback exchange (``live.loopback``): the same server, whose
messages say FakeBinance, as the tests written against it expect."""

from __future__ import annotations

from live.loopback import (
    DEFAULT_LIMIT,
    EXCHANGE_INFO,
    FEAR_GREED,
    KLINES,
    MAX_LIMIT,
    Fault,
    LoopbackExchange,
    Served,
)

__all__ = [
    "DEFAULT_LIMIT",
    "EXCHANGE_INFO",
    "FEAR_GREED",
    "KLINES",
    "MAX_LIMIT",
    "FakeBinance",
    "Fault",
    "LoopbackExchange",
    "Served",
]


class FakeBinance(LoopbackExchange):
    """:class:`live.loopback.LoopbackExchange` under the name the tests' messages expect."""

    NAME = "FakeBinance"
