"""Serving's feedback repository: the predictions served, the trades bots report on them, and each
trade's attribution to the members that voted.

``TradesStore(database)`` works on a :class:`store.database.Database`, takes and returns the
frozen records of :mod:`store.records.trades`, and keeps the contract of the other repositories (run on
SQLite and PostgreSQL by tests/store/test_trades_contract.py):

- **A request id names one prediction and at most one trade, for good.** ``record_prediction``
  written again with the same content changes nothing; with other content it raises.
- **Feedback is idempotent on the request id.** ``record_feedback`` stores the trade and its
  attributions in one transaction; the same trade reported again (a bot retrying) changes nothing
  and answers ``duplicate=True`` with what was stored; another trade on the same request id raises
  :class:`FeedbackConflictError`. Feedback on a request id no prediction answered raises
  ``NotFoundError``; feedback naming another ``model_version`` than the prediction's raises
  ValueError: a trade is attributed only to the members that really voted for it.
- **What the trade means for each member** is the caller's rule (``attribute``, a pure function:
  ``serving.feedback.attribute``); the store only keeps the rows.

Shares its transactions with every repository on the same database: inside
``with trades.transaction():`` writes through any of them (``store.champions.ChampionStore``
moving a champion's stage on feedback, say) are one transaction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Connection, RowMapping

from store.codec import dumps
from store.errors import NotFoundError
from store.models import Prediction, Trade, TradeAttribution
from store.records.trades import (
    AttributionRecord,
    PredictionMember,
    PredictionRecord,
    TradeRecord,
)
from store.repository import Repository

__all__ = ["FeedbackConflictError", "RecordedFeedback", "TradesStore"]

logger = logging.getLogger(__name__)

_predictions: Table = Prediction.__table__  # type: ignore[assignment]
_trades: Table = Trade.__table__  # type: ignore[assignment]
_attributions: Table = TradeAttribution.__table__  # type: ignore[assignment]

#: ``(request_id, model_version, members, regime)``: one prediction of ``record_predictions``;
#: Serve's adds the series it read: ``(..., regime, exchange, symbol, timeframe, as_of)``.
PredictionRow = (
    tuple[str, str, Sequence[PredictionMember | Mapping[str, Any]], str]
    | tuple[str, str, Sequence[PredictionMember | Mapping[str, Any]], str, str, str, str, int]
)
#: ``attribute(prediction, trade)``: the attribution rows of a stored trade (``trade.id`` is set).
Attribute = Callable[[PredictionRecord, TradeRecord], Sequence[AttributionRecord]]


class FeedbackConflictError(ValueError):
    """A request id that already has another trade: one prediction, one trade."""


@dataclass(frozen=True)
class RecordedFeedback:
    """What ``record_feedback`` stored (or found stored): the trade with its id, whether it was
    there already, the prediction it acted on and the attribution rows."""

    trade: TradeRecord
    duplicate: bool
    prediction: PredictionRecord
    attributions: tuple[AttributionRecord, ...]


class TradesStore(Repository):
    """Predictions, trades and attributions in ``database``. Thread-safe."""

    # -- predictions -----------------------------------------------------------------------------

    def record_prediction(
        self,
        request_id: str,
        model_version: str,
        members: Sequence[PredictionMember | Mapping[str, Any]],
        *,
        regime: str = "",
    ) -> PredictionRecord:
        """Remember what the prediction ``request_id`` answered; returns it as stored.

        ``members`` are :class:`PredictionMember` or mappings of its fields (``regime`` defaults
        to the argument: the live regime). With no live regime (no members) ``regime`` may be
        empty; it is stored as ``"unknown"``. Raises ValueError when ``request_id`` is stored
        with other content.
        """
        return self.record_predictions([(request_id, model_version, members, regime)])[0]

    @staticmethod
    def _records(predictions: Sequence[PredictionRow]) -> list[PredictionRecord]:
        records = []
        for request_id, version, members, regime, *rest in predictions:
            series: Any = rest or (None, None, None, None)
            exchange, symbol, timeframe, as_of = series
            records.append(PredictionRecord(
                request_id, version, regime or "unknown",
                tuple(_member(member, regime) for member in members), exchange=exchange,
                symbol=symbol, timeframe=timeframe, as_of=as_of,
            ))  # fmt: skip
        return records

    def _rows(self, records: Sequence[PredictionRecord]) -> list[dict[str, Any]]:
        now = self._db.now()
        return [
            {"request_id": r.request_id, "model_version": r.model_version, "regime": r.regime,
             "members_json": _members_json(r.members), "created_at": now,
             "exchange": r.exchange, "symbol": r.symbol, "timeframe": r.timeframe,
             "as_of": r.as_of}
            for r in records
        ]  # fmt: skip

    def append_predictions(self, predictions: Sequence[PredictionRow]) -> None:
        """Store predictions whose request ids the caller has just minted (the Serve replica's
        uuid4s): one plain multi-row INSERT, no read-back, a third of ``record_predictions``' cost.
        An id already stored raises the database's IntegrityError and writes none."""
        values = self._rows(self._records(predictions))
        if values:
            with self._db.transaction() as connection:
                connection.execute(self._db.insert(_predictions), values)

    def record_predictions(self, predictions: Sequence[PredictionRow]) -> list[PredictionRecord]:
        """``record_prediction`` of each ``(request_id, model_version, members, regime)``, in one
        transaction and one multi-row insert (a Serve batch's predictions); returns them as stored,
        in order. Raises ValueError, writing none, when a request id is stored with other content.
        """
        records = self._records(predictions)
        if not records:
            return []
        values = self._rows(records)
        ids = [r.request_id for r in records]
        with self._db.transaction() as connection:
            connection.execute(self._db.insert(_predictions).on_conflict_do_nothing(), values)
            query = select(_predictions).where(_predictions.c.request_id.in_(ids))
            stored = {row["request_id"]: _prediction_record(row)
                      for row in connection.execute(query).mappings()}  # fmt: skip
            for record in records:
                found = stored[record.request_id]
                if (found.model_version, found.regime, found.members) != (
                    record.model_version, record.regime, record.members,
                ):  # fmt: skip
                    raise ValueError(
                        f"request_id {record.request_id!r} already names another prediction "
                        f"(model_version {found.model_version!r}); a request id is used once"
                    )
        return [stored[request_id] for request_id in ids]

    def prediction(self, request_id: str) -> PredictionRecord | None:
        """The prediction ``request_id`` answered, or None."""
        with self._db.reading() as connection:
            return self._prediction(connection, request_id)

    def predictions_of(
        self, exchange: str, symbol: str, timeframe: str, after: int | None, upto: int
    ) -> list[PredictionRecord]:
        """The predictions on one series whose last candle opened in ``(after, upto]``, by
        ``as_of`` (what the living loop labels once their horizon has passed)."""
        query = (
            select(_predictions)
            .where(
                _predictions.c.exchange == exchange,
                _predictions.c.symbol == symbol,
                _predictions.c.timeframe == timeframe,
                _predictions.c.as_of <= upto,
            )
            .order_by(_predictions.c.as_of, _predictions.c.request_id)
        )
        if after is not None:
            query = query.where(_predictions.c.as_of > after)
        with self._db.reading() as connection:
            return [_prediction_record(row) for row in connection.execute(query).mappings()]

    @staticmethod
    def _prediction(connection: Connection, request_id: str) -> PredictionRecord | None:
        query = select(_predictions).where(_predictions.c.request_id == request_id)
        row = connection.execute(query).mappings().first()
        return None if row is None else _prediction_record(row)

    # -- trades and their attribution ------------------------------------------------------------

    def record_feedback(self, trade: TradeRecord, attribute: Attribute) -> RecordedFeedback:
        """Store a reported trade and its attribution rows, in one transaction (module docstring).

        ``attribute(prediction, stored_trade)`` gives the rows; it is called only when the trade
        is new. The trade's ``id`` and ``created_at`` are the store's (given ones are ignored).
        """
        with self._db.transaction() as connection:
            prediction = self._prediction(connection, trade.request_id)
            if prediction is None:
                raise NotFoundError(
                    f"request_id {trade.request_id!r} is not a prediction this service answered"
                )
            if prediction.model_version != trade.model_version:
                raise ValueError(
                    f"model_version must be the one request {trade.request_id!r} was answered "
                    f"with ({prediction.model_version!r}); got {trade.model_version!r}"
                )
            values = _trade_values(trade) | {"created_at": self._db.now()}
            statement = (
                self._db.insert(_trades)
                .values(values)
                .on_conflict_do_nothing()
                .returning(_trades.c.id)
            )
            # RETURNING, not rowcount: a conflict returns no row on both backends.
            inserted = connection.execute(statement).first() is not None
            stored = self._trade(connection, trade.request_id)
            assert stored is not None
            if not inserted:
                if not stored.same_trade(trade):
                    raise FeedbackConflictError(
                        f"request_id {trade.request_id!r} already has another trade (id "
                        f"{stored.id}: {stored.side} {stored.symbol} pnl {stored.pnl}); "
                        "report one trade per prediction"
                    )
                assert stored.id is not None
                return RecordedFeedback(
                    stored, True, prediction, tuple(self._attributions(connection, stored.id))
                )
            rows = tuple(attribute(prediction, stored))
            for row in rows:
                if row.trade_id != stored.id:
                    raise ValueError(
                        f"attribute must give rows of trade {stored.id}; got trade_id "
                        f"{row.trade_id} for {row.agent_id!r}"
                    )
            if rows:
                connection.execute(insert(_attributions), [_attribution_values(r) for r in rows])
        logger.info(
            "trade %s on %s: %s %s, net pnl %.6g, attributed to %d members",
            stored.id,
            trade.request_id,
            stored.side,
            stored.symbol,
            stored.net_pnl,
            len(rows),
        )
        return RecordedFeedback(stored, False, prediction, rows)

    def trade(self, request_id: str) -> TradeRecord | None:
        """The trade reported on ``request_id``, or None."""
        with self._db.reading() as connection:
            return self._trade(connection, request_id)

    @staticmethod
    def _trade(connection: Connection, request_id: str) -> TradeRecord | None:
        query = select(_trades).where(_trades.c.request_id == request_id)
        row = connection.execute(query).mappings().first()
        return None if row is None else _trade_record(row)

    def trades(
        self, *, exchange: str | None = None, symbol: str | None = None
    ) -> list[TradeRecord]:
        """Reported trades, oldest first, filtered by the arguments given."""
        query = select(_trades).order_by(_trades.c.id)
        if exchange is not None:
            query = query.where(_trades.c.exchange == exchange)
        if symbol is not None:
            query = query.where(_trades.c.symbol == symbol)
        with self._db.reading() as connection:
            return [_trade_record(row) for row in connection.execute(query).mappings()]

    def attributions(
        self,
        *,
        trade_id: int | None = None,
        run_id: str | None = None,
        agent_id: str | None = None,
        regime: str | None = None,
    ) -> list[AttributionRecord]:
        """Attribution rows by trade (oldest first), then member, filtered by the arguments."""
        with self._db.reading() as connection:
            return self._attributions(
                connection, trade_id, run_id=run_id, agent_id=agent_id, regime=regime
            )

    @staticmethod
    def _attributions(
        connection: Connection,
        trade_id: int | None = None,
        *,
        run_id: str | None = None,
        agent_id: str | None = None,
        regime: str | None = None,
    ) -> list[AttributionRecord]:
        query = select(_attributions).order_by(
            _attributions.c.trade_id, _attributions.c.run_id, _attributions.c.agent_id
        )
        for name, value in (
            ("trade_id", trade_id),
            ("run_id", run_id),
            ("agent_id", agent_id),
            ("regime", regime),
        ):
            if value is not None:
                query = query.where(_attributions.c[name] == value)
        return [AttributionRecord(**row) for row in connection.execute(query).mappings()]


def _member(member: PredictionMember | Mapping[str, Any], regime: str) -> PredictionMember:
    if isinstance(member, PredictionMember):
        return member
    if not isinstance(member, Mapping):
        raise ValueError(f"members must be PredictionMember or mappings; got {member!r}")
    values = {"regime": regime} | {
        key: member[key]
        for key in ("run_id", "agent_id", "specialty", "regime", "generation", "vote", "weight")
        if key in member
    }
    try:
        return PredictionMember(**values)
    except TypeError:
        raise ValueError(
            "a member needs run_id, agent_id, specialty, regime, generation, vote and weight; "
            f"got {dict(member)!r}"
        ) from None


def _prediction_record(row: RowMapping) -> PredictionRecord:
    members = tuple(PredictionMember(**item) for item in json.loads(row["members_json"]))
    return PredictionRecord(
        row["request_id"], row["model_version"], row["regime"], members, row["created_at"],
        exchange=row["exchange"], symbol=row["symbol"], timeframe=row["timeframe"],
        as_of=row["as_of"],
    )  # fmt: skip


def _members_json(members: Sequence[PredictionMember]) -> str:
    return dumps([member.to_dict() for member in members])


_TRADE_COLUMNS = (
    "request_id",
    "model_version",
    "exchange",
    "symbol",
    "side",
    "entry_ts",
    "exit_ts",
    "entry_price",
    "exit_price",
    "qty",
    "pnl",
    "fees",
)


def _trade_values(trade: TradeRecord) -> dict[str, Any]:
    return {name: getattr(trade, name) for name in _TRADE_COLUMNS}


def _trade_record(row: RowMapping) -> TradeRecord:
    return TradeRecord(
        **{name: row[name] for name in _TRADE_COLUMNS}, id=row["id"], created_at=row["created_at"]
    )


def _attribution_values(row: AttributionRecord) -> dict[str, Any]:
    return {
        "trade_id": row.trade_id,
        "run_id": row.run_id,
        "agent_id": row.agent_id,
        "specialty": row.specialty,
        "regime": row.regime,
        "vote": row.vote,
        "weight": row.weight,
        "was_correct": row.was_correct,
        "profit_contribution": row.profit_contribution,
    }
