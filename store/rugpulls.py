"""The rug-pull detector's feedback repository: the answers ``/v1/rugpull`` gave with a champion,
and what the tokens turned out to be.

``RugpullStore(database)`` takes and returns the frozen records of :mod:`store.records.rugpulls`
and keeps the contract of the other repositories (run on SQLite and PostgreSQL by
tests/store/test_rugpulls_contract.py):

- **A request id names one answer and at most one outcome, for good.** ``append_answers`` stores
  answers whose request ids the caller has just minted (the Serve replica's writer,
  ``serving.writer``); an id already stored raises the database's IntegrityError, writing none.
- **Outcomes are idempotent on the request id.** ``record_outcome`` stores an outcome; the same
  outcome reported again changes nothing and answers ``duplicate=True``; another outcome on the
  same request id raises :class:`OutcomeConflictError`; an outcome on a request id no answer
  carried raises ``NotFoundError``.
- ``labelled(run_id, agent_id)``: a champion's answers that have an outcome, oldest first: what
  its live record is computed from (``evolution.champions.classifier_live_record``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.engine import Connection, RowMapping

from store.errors import NotFoundError
from store.models import RugpullAnswer, RugpullOutcome
from store.records.rugpulls import RugpullAnswerRecord, RugpullOutcomeRecord
from store.repository import Repository

__all__ = ["OutcomeConflictError", "RecordedOutcome", "RugpullStore"]

logger = logging.getLogger(__name__)

_answers: Table = RugpullAnswer.__table__  # type: ignore[assignment]
_outcomes: Table = RugpullOutcome.__table__  # type: ignore[assignment]
_ANSWER_COLUMNS = ("request_id", "model_version", "run_id", "agent_id", "probability",
                   "is_rugpull", "threshold")  # fmt: skip


class OutcomeConflictError(ValueError):
    """A request id that already has another outcome: one answer, one outcome."""


@dataclass(frozen=True)
class RecordedOutcome:
    """What ``record_outcome`` stored (or found stored), whether it was there already, and the
    answer it labels."""

    outcome: RugpullOutcomeRecord
    duplicate: bool
    answer: RugpullAnswerRecord


class RugpullStore(Repository):
    """``rugpull_answers`` and ``rugpull_outcomes`` in ``database``. Thread-safe."""

    def append_answers(self, answers: Sequence[RugpullAnswerRecord]) -> None:
        """Store answers whose request ids were just minted: one multi-row INSERT, no read-back.
        An id already stored raises the database's IntegrityError and writes none."""
        if not answers:
            return
        now = self._db.now()
        values = [{name: getattr(a, name) for name in _ANSWER_COLUMNS} | {"created_at": now}
                  for a in answers]  # fmt: skip
        with self._db.transaction() as connection:
            connection.execute(self._db.insert(_answers), values)

    def answer(self, request_id: str) -> RugpullAnswerRecord | None:
        """The answer ``request_id`` carried, or None."""
        with self._db.reading() as connection:
            return _answer(connection, request_id)

    def outcome(self, request_id: str) -> RugpullOutcomeRecord | None:
        """The outcome reported on ``request_id``, or None."""
        with self._db.reading() as connection:
            return _outcome(connection, request_id)

    def record_outcome(self, outcome: RugpullOutcomeRecord) -> RecordedOutcome:
        """Store ``outcome`` on its answer, idempotently (module docstring)."""
        with self._db.transaction() as connection:
            answer = _answer(connection, outcome.request_id)
            if answer is None:
                raise NotFoundError(
                    f"request_id {outcome.request_id!r} is not a rug-pull answer this service "
                    "gave (only answers with a champion's probability are remembered)"
                )
            values = {"request_id": outcome.request_id, "is_rugpull": outcome.is_rugpull,
                      "note": outcome.note, "created_at": self._db.now()}  # fmt: skip
            statement = (
                self._db.insert(_outcomes)
                .values(values)
                .on_conflict_do_nothing()
                .returning(_outcomes.c.request_id)
            )
            inserted = connection.execute(statement).first() is not None
            stored = _outcome(connection, outcome.request_id)
            assert stored is not None
            if not inserted and not stored.same_outcome(outcome):
                said = "a rug pull" if stored.is_rugpull else "not a rug pull"
                raise OutcomeConflictError(
                    f"request_id {outcome.request_id!r} already has another outcome ({said}"
                    f"{f', note {stored.note!r}' if stored.note else ''}); report one outcome "
                    "per answer"
                )
        if inserted:
            logger.info("rug-pull outcome on %s: %s (answered %.3f by %s/%s)", outcome.request_id,
                        outcome.is_rugpull, answer.probability, answer.run_id,
                        answer.agent_id)  # fmt: skip
        return RecordedOutcome(stored, not inserted, answer)

    def labelled(self, run_id: str, agent_id: str) -> list[tuple[RugpullAnswerRecord, bool]]:
        """The answers of the champion ``run_id``/``agent_id`` that have an outcome, each with
        it (True: a rug pull), in the order the outcomes were stored."""
        query = (
            select(_answers, _outcomes.c.is_rugpull.label("outcome"))
            .join(_outcomes, _outcomes.c.request_id == _answers.c.request_id)
            .where(_answers.c.run_id == run_id, _answers.c.agent_id == agent_id)
            .order_by(_outcomes.c.created_at, _outcomes.c.request_id)
        )
        with self._db.reading() as connection:
            return [(_answer_record(row), bool(row["outcome"]))
                    for row in connection.execute(query).mappings()]  # fmt: skip


def _answer(connection: Connection, request_id: str) -> RugpullAnswerRecord | None:
    query = select(_answers).where(_answers.c.request_id == request_id)
    row = connection.execute(query).mappings().first()
    return None if row is None else _answer_record(row)


def _answer_record(row: RowMapping) -> RugpullAnswerRecord:
    values: dict[str, Any] = {name: row[name] for name in _ANSWER_COLUMNS}
    values["is_rugpull"] = bool(values["is_rugpull"])
    return RugpullAnswerRecord(**values, created_at=row["created_at"])


def _outcome(connection: Connection, request_id: str) -> RugpullOutcomeRecord | None:
    query = select(_outcomes).where(_outcomes.c.request_id == request_id)
    row = connection.execute(query).mappings().first()
    if row is None:
        return None
    return RugpullOutcomeRecord(row["request_id"], bool(row["is_rugpull"]), row["note"],
                                row["created_at"])  # fmt: skip
