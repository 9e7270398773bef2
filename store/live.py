"""The living loop's repository: the watch list, the schedules' bookkeeping, the loop's events,
the answers it recorded, the labels of served votes and the champions' re-validations.

Writes are idempotent where the loop may repeat them after a crash: a series watched twice, an
answer or a vote label stored twice (same key) change nothing. Run on SQLite and PostgreSQL by
tests/store/test_live_contract.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.engine import Connection, RowMapping

from market.series import SeriesKey
from store.models import (
    ChampionValidation,
    LiveAnswer,
    LiveEvent,
    LiveJob,
    LiveSeries,
    VoteLabel,
)
from store.records.live import (
    JobRecord,
    LiveAnswerRecord,
    LiveEventRecord,
    LiveSeriesRecord,
    ValidationRecord,
    VoteLabelRecord,
)
from store.repository import Repository

__all__ = ["LiveStore"]

_series: Table = LiveSeries.__table__  # type: ignore[assignment]
_jobs: Table = LiveJob.__table__  # type: ignore[assignment]
_events: Table = LiveEvent.__table__  # type: ignore[assignment]
_answers: Table = LiveAnswer.__table__  # type: ignore[assignment]
_labels: Table = VoteLabel.__table__  # type: ignore[assignment]
_validations: Table = ChampionValidation.__table__  # type: ignore[assignment]


def _key_values(key: SeriesKey) -> dict[str, str]:
    return {"exchange": key.exchange, "symbol": key.symbol, "timeframe": key.timeframe}


def _of(table: Table, key: SeriesKey) -> Any:
    return (
        (table.c.exchange == key.exchange)
        & (table.c.symbol == key.symbol)
        & (table.c.timeframe == key.timeframe)
    )


class LiveStore(Repository):
    """The ``live_*``, ``vote_labels`` and ``champion_validations`` tables. Thread-safe."""

    # -- the watch list ----------------------------------------------------------------------

    def watch(self, key: SeriesKey, now_ms: int) -> LiveSeriesRecord:
        """Add ``key`` to the watch list at ``now_ms`` (a series already watched is kept as it
        is); returns its record."""
        with self._db.transaction() as connection:
            statement = self._db.insert(_series).on_conflict_do_nothing()
            connection.execute(statement, [_key_values(key) | {"added_ms": now_ms, "labelled": 0}])
        found = self.series(key)
        assert found is not None
        return found

    def series(self, key: SeriesKey) -> LiveSeriesRecord | None:
        with self._db.reading() as connection:
            row = connection.execute(select(_series).where(_of(_series, key))).mappings().first()
        return None if row is None else _series_record(row)

    def watched(self) -> list[LiveSeriesRecord]:
        """Every watched series, in (exchange, symbol, timeframe) order."""
        with self._db.reading() as connection:
            rows = connection.execute(
                select(_series).order_by(_series.c.exchange, _series.c.symbol, _series.c.timeframe)
            ).mappings()
            return [_series_record(row) for row in rows]

    def set_labelled(self, key: SeriesKey, labelled: int, enabled_ms: int | None) -> None:
        with self._db.transaction() as connection:
            connection.execute(
                update(_series)
                .where(_of(_series, key))
                .values(labelled=labelled, enabled_ms=enabled_ms)
            )

    def set_label_cursor(self, key: SeriesKey, as_of: int) -> None:
        with self._db.transaction() as connection:
            connection.execute(update(_series).where(_of(_series, key)).values(label_cursor=as_of))

    # -- schedules ---------------------------------------------------------------------------

    def job(self, name: str) -> JobRecord | None:
        with self._db.reading() as connection:
            row = connection.execute(select(_jobs).where(_jobs.c.name == name)).mappings().first()
        return None if row is None else JobRecord(**dict(row))

    def jobs(self) -> list[JobRecord]:
        with self._db.reading() as connection:
            rows = connection.execute(select(_jobs).order_by(_jobs.c.name)).mappings()
            return [JobRecord(**dict(row)) for row in rows]

    def job_registered(self, name: str, slot_ms: int) -> None:
        """First sight of a job that waits for its next slot: its last slot is ``slot_ms`` (the
        latest before the service first started), unless it has a record already."""
        values = {"name": name, "last_slot_ms": slot_ms, "started_ms": None, "finished_ms": None,
                  "outcome": "waiting", "detail": "", "runs": 0}  # fmt: skip
        with self._db.transaction() as connection:
            connection.execute(self._db.insert(_jobs).on_conflict_do_nothing(), [values])

    def job_started(self, name: str, slot_ms: int, now_ms: int) -> None:
        """``name`` starts its run for ``slot_ms``: outcome ``running`` until :meth:`job_finished`
        (a run that never finishes, killed, stays ``running`` and is run again on restart)."""
        values = {"name": name, "last_slot_ms": slot_ms, "started_ms": now_ms,
                  "finished_ms": None, "outcome": "running", "detail": "", "runs": 0}  # fmt: skip
        with self._db.transaction() as connection:
            found = connection.execute(select(_jobs.c.runs).where(_jobs.c.name == name)).first()
            if found is None:
                connection.execute(self._db.insert(_jobs), [values])
            else:
                values.pop("runs")
                connection.execute(update(_jobs).where(_jobs.c.name == name).values(**values))

    def job_finished(self, name: str, now_ms: int, outcome: str, detail: str) -> None:
        with self._db.transaction() as connection:
            connection.execute(
                update(_jobs)
                .where(_jobs.c.name == name)
                .values(finished_ms=now_ms, outcome=outcome, detail=detail, runs=_jobs.c.runs + 1)
            )

    # -- events ------------------------------------------------------------------------------

    def event(self, at_ms: int, kind: str, subject: str, **detail: Any) -> LiveEventRecord:
        """Log what the loop did or decided; ``detail`` must be JSON (numbers, strings)."""
        record = LiveEventRecord(at_ms, kind, subject[:160], detail)
        with self._db.transaction() as connection:
            connection.execute(
                self._db.insert(_events),
                [{"at_ms": at_ms, "kind": kind, "subject": record.subject,
                  "detail": record.detail_json()}],
            )  # fmt: skip
        return record

    def events(
        self, *, since_ms: int | None = None, kinds: Sequence[str] | None = None
    ) -> list[LiveEventRecord]:
        """Events at or after ``since_ms`` (of ``kinds``), oldest first."""
        statement = select(_events).order_by(_events.c.at_ms, _events.c.id)
        if since_ms is not None:
            statement = statement.where(_events.c.at_ms >= since_ms)
        if kinds is not None:
            statement = statement.where(_events.c.kind.in_(list(kinds)))
        with self._db.reading() as connection:
            return [
                LiveEventRecord(r["at_ms"], r["kind"], r["subject"], json.loads(r["detail"]),
                                r["id"])
                for r in connection.execute(statement).mappings()
            ]  # fmt: skip

    # -- answers -----------------------------------------------------------------------------

    def record_answers(self, answers: Sequence[LiveAnswerRecord]) -> int:
        """Store answers; one already stored for the same candle is kept. Returns rows added."""
        if not answers:
            return 0
        values: list[dict[str, Any]] = [
            {**_key_values(a.key), "ts": a.ts, "direction": a.direction, "size": a.size,
             "score": a.score, "regime": a.regime, "model_version": a.model_version,
             "request_id": a.request_id}
            for a in answers
        ]  # fmt: skip
        with self._db.transaction() as connection:
            return _insert_new(self._db.insert(_answers), connection, values, _answers.c.ts)

    def answers(
        self, key: SeriesKey, since_ms: int | None = None, until_ms: int | None = None
    ) -> pd.DataFrame:
        """``ts, direction, size, score, regime, model_version`` of ``key``'s answers in
        ``[since, until)``, by ts."""
        statement = select(
            _answers.c.ts, _answers.c.direction, _answers.c.size, _answers.c.score,
            _answers.c.regime, _answers.c.model_version,
        ).where(_of(_answers, key)).order_by(_answers.c.ts)  # fmt: skip
        if since_ms is not None:
            statement = statement.where(_answers.c.ts >= since_ms)
        if until_ms is not None:
            statement = statement.where(_answers.c.ts < until_ms)
        with self._db.reading() as connection:
            rows = connection.execute(statement).all()
        columns = ["ts", "direction", "size", "score", "regime", "model_version"]
        return pd.DataFrame(rows, columns=columns)

    def last_answer(self, key: SeriesKey) -> int | None:
        with self._db.reading() as connection:
            return connection.execute(
                select(func.max(_answers.c.ts)).where(_of(_answers, key))
            ).scalar()

    def last_version(self) -> str | None:
        """The ensemble version of the newest answer stored (any series), or None."""
        statement = select(_answers.c.model_version).order_by(_answers.c.ts.desc()).limit(1)
        with self._db.reading() as connection:
            return connection.execute(statement).scalar()

    # -- vote labels -------------------------------------------------------------------------

    def add_labels(self, labels: Sequence[VoteLabelRecord]) -> int:
        """Store vote labels; a vote already labelled is kept. Returns rows added."""
        if not labels:
            return 0
        values = [label.__dict__.copy() for label in labels]
        with self._db.transaction() as connection:
            return _insert_new(self._db.insert(_labels), connection, values, _labels.c.as_of)

    def labels(self, run_id: str, agent_id: str) -> list[VoteLabelRecord]:
        """A member's labelled votes, oldest first."""
        statement = (
            select(_labels)
            .where((_labels.c.run_id == run_id) & (_labels.c.agent_id == agent_id))
            .order_by(_labels.c.as_of, _labels.c.request_id)
        )
        with self._db.reading() as connection:
            return [VoteLabelRecord(**dict(r)) for r in connection.execute(statement).mappings()]

    def label_count(self) -> int:
        with self._db.reading() as connection:
            return int(connection.execute(select(func.count()).select_from(_labels)).scalar() or 0)

    # -- re-validations ----------------------------------------------------------------------

    def add_validation(self, record: ValidationRecord) -> None:
        with self._db.transaction() as connection:
            connection.execute(self._db.insert(_validations), [record.__dict__.copy()])

    def validations(
        self, run_id: str | None = None, agent_id: str | None = None
    ) -> list[ValidationRecord]:
        """Re-validations (of one model), oldest first."""
        statement = select(_validations).order_by(_validations.c.at_ms, _validations.c.id)
        if run_id is not None:
            statement = statement.where(_validations.c.run_id == run_id)
        if agent_id is not None:
            statement = statement.where(_validations.c.agent_id == agent_id)
        with self._db.reading() as connection:
            rows = connection.execute(statement).mappings()
            return [
                ValidationRecord(**{k: v for k, v in dict(r).items() if k != "id"}) for r in rows
            ]

    # -- retention ---------------------------------------------------------------------------

    def forget_before(self, key: SeriesKey, ts: int) -> int:
        """Drop ``key``'s answers of candles before ``ts`` (retention); returns rows dropped."""
        with self._db.transaction() as connection:
            result = connection.execute(
                delete(_answers).where(_of(_answers, key) & (_answers.c.ts < ts))
            )
            return max(int(result.rowcount or 0), 0)


def _insert_new(
    insert: Any, connection: Connection, values: list[dict[str, Any]], column: Any
) -> int:
    """INSERT .. ON CONFLICT DO NOTHING of ``values`` in chunks (SQLite's bound-parameter
    limit); RETURNING counts the rows added on both backends (psycopg's rowcount is -1)."""
    added = 0
    for start in range(0, len(values), 500):
        statement = insert.values(values[start : start + 500]).on_conflict_do_nothing()
        added += len(connection.execute(statement.returning(column)).all())
    return added


def _series_record(row: RowMapping) -> LiveSeriesRecord:
    return LiveSeriesRecord(
        key=SeriesKey(row["exchange"], row["symbol"], row["timeframe"]),
        added_ms=row["added_ms"],
        labelled=row["labelled"],
        enabled_ms=row["enabled_ms"],
        label_cursor=row["label_cursor"],
    )
