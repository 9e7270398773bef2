"""Serving's feedback rows (``predictions``, ``trades``, ``trade_attributions``) as frozen records:
what ``store.trades.TradesStore`` takes and gives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from store.records import checks as check

__all__ = ["AttributionRecord", "PredictionMember", "PredictionRecord", "TradeRecord", "TradeSide"]


class TradeSide(StrEnum):
    """The side of a reported trade: long profits when the price rises, short when it falls."""

    LONG = "long"
    SHORT = "short"


@dataclass(frozen=True)
class PredictionMember:
    """One ensemble member as a prediction used it: the model (``run_id``/``agent_id``: agent ids
    are unique within a run only), its specialty and generation, the regime it is champion of,
    its vote (-1, 0, 1) and its weight in the combination."""

    run_id: str
    agent_id: str
    specialty: str
    regime: str
    generation: int
    vote: int
    weight: float

    def __post_init__(self) -> None:
        for name in ("run_id", "agent_id"):
            check.key(self, name)
        for name in ("specialty", "regime"):
            check.key(self, name, length=32)
        check.count(self, "generation")
        check.vote(self, "vote")
        check.finite(self, "weight", minimum=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "agent_id": self.agent_id,
            "specialty": self.specialty,
            "regime": self.regime,
            "generation": self.generation,
            "vote": self.vote,
            "weight": self.weight,
        }


@dataclass(frozen=True)
class PredictionRecord:
    """What one ``/v1/predict`` answered, remembered for the feedback on it: its request id, the
    ensemble version, the live regime and the members that voted (empty when none could), and the
    series it read: ``exchange``, ``symbol``, ``timeframe`` and ``as_of`` (the open time, ms UTC,
    of its last candle), which feedback is checked against (None on predictions stored before
    they were remembered)."""

    request_id: str
    model_version: str
    regime: str
    members: tuple[PredictionMember, ...] = ()
    created_at: datetime | None = None
    exchange: str | None = None
    symbol: str | None = None
    timeframe: str | None = None
    as_of: int | None = None

    def __post_init__(self) -> None:
        check.key(self, "request_id")
        check.key(self, "model_version")
        check.key(self, "regime", length=32)
        for name, length in (("exchange", 32), ("symbol", check.KEY_LENGTH), ("timeframe", 8)):
            if getattr(self, name) is not None:
                check.key(self, name, length=length)
        check.count(self, "as_of", optional=True)
        members = self.members
        if isinstance(members, str | Mapping) or not all(
            isinstance(member, PredictionMember) for member in members
        ):
            raise ValueError(
                f"PredictionRecord.members must be a sequence of PredictionMember; got {members!r}"
            )
        check.assign(self, "members", tuple(members))
        check.stamp(self, "created_at")


@dataclass(frozen=True)
class TradeRecord:
    """One trade a bot reported on the prediction ``request_id`` (at most one per request id).

    Times are ms UTC (``exit_ts >= entry_ts``); prices are positive; ``pnl`` is the trade's profit
    before ``fees`` (both in the quote currency); ``qty`` is optional. ``id`` and ``created_at``
    are the store's.
    """

    request_id: str
    model_version: str
    exchange: str
    symbol: str
    side: TradeSide
    entry_ts: int
    exit_ts: int
    entry_price: float
    exit_price: float
    pnl: float
    fees: float
    qty: float | None = None
    id: int | None = None
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        check.key(self, "request_id")
        check.key(self, "model_version")
        check.key(self, "exchange", length=32)
        check.key(self, "symbol")
        check.member(self, "side", TradeSide)
        check.count(self, "entry_ts")
        check.count(self, "exit_ts")
        if self.exit_ts < self.entry_ts:
            raise ValueError(
                f"TradeRecord.exit_ts must not be before entry_ts ({self.entry_ts}); "
                f"got {self.exit_ts}"
            )
        check.finite(self, "entry_price", minimum=0.0, above=True)
        check.finite(self, "exit_price", minimum=0.0, above=True)
        check.finite(self, "pnl")
        check.finite(self, "fees", minimum=0.0)
        if self.qty is not None:
            check.finite(self, "qty", minimum=0.0, above=True)
        check.count(self, "id", optional=True)
        check.stamp(self, "created_at")

    @property
    def net_pnl(self) -> float:
        """Profit after fees."""
        return self.pnl - self.fees

    @property
    def direction(self) -> int:
        """+1 for a long trade, -1 for a short one."""
        return 1 if self.side == TradeSide.LONG else -1

    def same_trade(self, other: TradeRecord) -> bool:
        """Equal as reported (the store's ``id`` and ``created_at`` aside)."""
        return replace(self, id=None, created_at=None) == replace(other, id=None, created_at=None)


@dataclass(frozen=True)
class AttributionRecord:
    """One member's share of a trade: whether its vote was right and the profit it contributed
    (``serving.feedback`` says how both are computed)."""

    trade_id: int
    run_id: str
    agent_id: str
    specialty: str
    regime: str
    vote: int
    weight: float
    was_correct: bool
    profit_contribution: float

    def __post_init__(self) -> None:
        check.count(self, "trade_id")
        for name in ("run_id", "agent_id"):
            check.key(self, name)
        for name in ("specialty", "regime"):
            check.key(self, name, length=32)
        check.vote(self, "vote")
        check.finite(self, "weight", minimum=0.0)
        check.flag(self, "was_correct")
        check.finite(self, "profit_contribution")
