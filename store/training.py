"""Training's repository: Tune experiments' trained configs, their inference backtests and the
training queue.

``TrainingStore(database, runs)`` works on a :class:`store.database.Database`, takes and returns
the frozen records of :mod:`store.records.training`, and keeps ``store.runs.RunStore``'s contract
(run on SQLite and PostgreSQL by tests/store):

- **One row per config, ever.** ``training_runs`` and ``training_queue`` are keyed by the config's
  hash; every write is an upsert, and an unchanged record changes nothing, not even ``updated_at``.
  A DONE training run is final: a later write that is not DONE (a duplicate trial that failed, a
  resumed queue marking it again) leaves it as it is. Its ``stage`` and ``kept`` are written when
  the row is created and then only by ``set_stage``/``set_kept``.
- **A trial ends in one transaction.** ``finish_training_run`` writes the run, replaces its
  inference backtests and sets its queue row's status together, so a SIGKILL leaves the config
  either unfinished (queued again by ``resume_queue``) or finished, never half-written.
- **The queue is the database.** ``enqueue`` skips configs already queued, running, paused or done
  (a config whose training run is DONE counts as done); ``pause_queue``/``resume_queue``/
  ``cancel_queue`` move every row at once; a DONE queue row never changes status again.

A Tune experiment is a ``runs`` row (``ensure_experiment``, through ``RunStore.create_run``), so its
models share ``regime_best_models`` (``store.champions.ChampionStore``) with evolution's: a Tune
model's ``agent_id`` is ``tr-<config_hash[:12]>`` (``TrainingRunRecord.agent_id``).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Table, case, delete, func, insert, select, text, update
from sqlalchemy.engine import Connection

from store.codec import dumps, from_row, regime_sharpes, to_row
from store.database import Database
from store.errors import NotFoundError
from store.models import InferenceBacktest, TrainingQueueItem, TrainingRun
from store.records.champions import Stage
from store.records.population import RunRecord
from store.records.training import (
    InferenceBacktestRecord,
    QueueItemRecord,
    QueueStatus,
    TrainingRunRecord,
    TrainingStatus,
)
from store.repository import Repository
from store.runs import RunStore

__all__ = ["TrainingStore"]

logger = logging.getLogger(__name__)

_training: Table = TrainingRun.__table__  # type: ignore[assignment]
_backtests: Table = InferenceBacktest.__table__  # type: ignore[assignment]
_queue: Table = TrainingQueueItem.__table__  # type: ignore[assignment]

#: Queue rows a trial may still take, and what ``cancel_queue`` cancels.
_OPEN = (QueueStatus.QUEUED, QueueStatus.RUNNING, QueueStatus.PAUSED)
#: Written when a training run is created, then changed only by set_stage / set_kept.
_INSERT_ONLY = ("stage", "kept")
#: Metrics where lower is better (every other metric is sorted highest first).
_LOWER_IS_BETTER = frozenset({"volatility", "max_drawdown_bars", "turnover"})
# Serializes `queue add`s on PostgreSQL (positions, and two adds of one config): "RLQUEUE".
_PG_QUEUE_LOCK_KEY = 0x524C5155455545
# Keeps IN (...) lists well under every backend's limit on bound parameters.
_CHUNK = 500


def _chunks(values: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), _CHUNK):
        yield list(values[start : start + _CHUNK])


class TrainingStore(Repository):
    """Training runs, inference backtests and the queue in ``database``.

    ``runs`` is the repository of the experiments (``runs`` rows) the training runs belong to (a
    :class:`RunStore` on the same database when not given).
    """

    def __init__(self, database: Database, runs: RunStore | None = None) -> None:
        super().__init__(database)
        self._runs = runs if runs is not None else RunStore(database)
        if self._runs.database is not database:
            raise ValueError("runs must work on the same database as the TrainingStore")

    @property
    def runs(self) -> RunStore:
        """The runs (and Tune experiments) repository this store writes beside."""
        return self._runs

    # -- experiments and training runs ---------------------------------------------------------

    def ensure_experiment(
        self,
        run_id: str,
        config: Mapping[str, Any],
        root_seed: int,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        """Create the ``runs`` row of a Tune experiment (no generations); a no-op when it exists
        with the same config. Raises ValueError when ``run_id`` exists with another config.
        ``settings``: what the experiment is judged under (``{"regimes": ...}``), stored with it."""
        record = RunRecord(
            run_id=run_id,
            config=dict(config),
            config_hash=hashlib.sha256(dumps(dict(config)).encode()).hexdigest(),
            root_seed=root_seed,
            generations_planned=0,
            settings=dict(settings or {}),
        )
        self._runs.create_run(record)

    def upsert_training_run(self, record: TrainingRunRecord) -> None:
        """Insert the training run or update it in place (a DONE run only by a DONE record)."""
        with self._db.writing() as connection:
            self._upsert_training(connection, record)

    def _upsert_training(self, connection: Connection, record: TrainingRunRecord) -> None:
        self._check_experiment(connection, record.experiment)
        now = self._db.now()
        values = to_row(record, created_at=now, updated_at=now)
        statement = self._db.upsert(
            _training,
            ("config_hash",),
            [name for name in values if name not in _INSERT_ONLY],
            only_if=lambda new: (
                (_training.c.status != TrainingStatus.DONE)
                | (new.excluded.status == TrainingStatus.DONE)
            ),
        )
        connection.execute(statement, [values])

    def _check_experiment(self, connection: Connection, experiment: str) -> None:
        if self._runs.get_run(experiment) is None:
            raise NotFoundError(
                f"experiment {experiment!r} does not exist; ensure_experiment first"
            )

    def training_run(self, config_hash: str) -> TrainingRunRecord | None:
        """The training run of ``config_hash``, or None."""
        query = select(_training).where(_training.c.config_hash == config_hash)
        with self._db.reading() as connection:
            row = connection.execute(query).mappings().first()
        return None if row is None else from_row(TrainingRunRecord, row)

    def require_training_run(self, config_hash: str) -> TrainingRunRecord:
        """The training run of ``config_hash``; NotFoundError naming it when there is none."""
        found = self.training_run(config_hash)
        if found is None:
            raise NotFoundError(f"config_hash {config_hash!r} has no training run")
        return found

    def training_runs(
        self,
        *,
        specialty: str | None = None,
        status: str | None = None,
        experiment: str | None = None,
    ) -> list[TrainingRunRecord]:
        """Training runs, oldest first (then by config hash), filtered by the arguments given."""
        query = select(_training)
        for name, value in (
            ("specialty", specialty),
            ("status", status),
            ("experiment", experiment),
        ):
            if value is not None:
                query = query.where(_training.c[name] == value)
        query = query.order_by(_training.c.created_at, _training.c.config_hash)
        with self._db.reading() as connection:
            return [
                from_row(TrainingRunRecord, row) for row in connection.execute(query).mappings()
            ]

    def finish_training_run(
        self, record: TrainingRunRecord, backtests: Sequence[InferenceBacktestRecord]
    ) -> None:
        """A trial's result, in one transaction: the training run (DONE or FAILED), its inference
        backtests (exactly ``backtests`` afterwards) and its queue row's status (if queued).

        Idempotent: written twice, the second changes nothing. A FAILED result for a config whose
        run is already DONE (a duplicate trial) keeps the DONE run and its backtests.
        """
        if record.status not in (TrainingStatus.DONE, TrainingStatus.FAILED):
            raise ValueError(
                f"finish_training_run of {record.config_hash!r}: status must be DONE or FAILED; "
                f"got {record.status.value!r}"
            )
        seen: set[str] = set()
        for backtest in backtests:
            if backtest.config_hash != record.config_hash:
                raise ValueError(
                    f"finish_training_run of {record.config_hash!r}: the backtest "
                    f"{backtest.inference_hash!r} has config_hash {backtest.config_hash!r}"
                )
            if backtest.inference_hash in seen:
                raise ValueError(
                    f"finish_training_run of {record.config_hash!r}: inference_hash "
                    f"{backtest.inference_hash!r} is listed twice"
                )
            seen.add(backtest.inference_hash)
        now = self._db.now()
        with self._db.transaction() as connection:
            stored = connection.execute(
                select(_training.c.status).where(_training.c.config_hash == record.config_hash)
            ).scalar_one_or_none()
            final = record.status
            if stored == TrainingStatus.DONE and record.status != TrainingStatus.DONE:
                logger.warning(
                    "training run %s is DONE: its %s result is not stored (%s)",
                    record.config_hash,
                    record.status,
                    record.reason,
                )
                final = TrainingStatus.DONE
            else:
                self._upsert_training(connection, record)
                self._replace_backtests(connection, record.config_hash, backtests, now)
            reason = record.reason if final == record.status else ""
            connection.execute(
                update(_queue)
                .where(
                    _queue.c.config_hash == record.config_hash,
                    _queue.c.status != QueueStatus.DONE,
                    (_queue.c.status != final) | (_queue.c.reason != reason),
                )
                .values(status=final, reason=reason, updated_at=now)
            )

    def _replace_backtests(
        self,
        connection: Connection,
        config_hash: str,
        backtests: Sequence[InferenceBacktestRecord],
        now: datetime,
    ) -> None:
        stale = delete(_backtests).where(_backtests.c.config_hash == config_hash)
        if backtests:
            keep = [backtest.inference_hash for backtest in backtests]
            stale = stale.where(_backtests.c.inference_hash.not_in(keep))
        connection.execute(stale)
        if not backtests:
            return
        rows = [to_row(backtest, created_at=backtest.created_at or now) for backtest in backtests]
        statement = self._db.upsert(_backtests, ("config_hash", "inference_hash"), rows[0])
        connection.execute(statement, rows)

    def backtests(self, config_hash: str) -> list[InferenceBacktestRecord]:
        """The inference backtests of one trained config, best Sharpe first (None last)."""
        query = select(_backtests).where(_backtests.c.config_hash == config_hash)
        with self._db.reading() as connection:
            found = [
                from_row(InferenceBacktestRecord, row)
                for row in connection.execute(query).mappings()
            ]
        return sorted(found, key=lambda b: (b.sharpe is None, -(b.sharpe or 0.0), b.inference_hash))

    def set_stage(self, config_hash: str, stage: str) -> None:
        """Move a trained model to a lifecycle stage (a ``Stage``)."""
        try:
            wanted = Stage(stage)
        except ValueError:
            raise ValueError(f"stage must be one of {', '.join(Stage)}; got {stage!r}") from None
        self._set(config_hash, "stage", wanted)

    def set_kept(self, config_hash: str, kept: bool) -> None:
        """Mark a trained model's file as kept (``redline models keep``: prune never deletes it)."""
        if not isinstance(kept, bool):
            raise ValueError(f"kept must be True or False; got {kept!r}")
        self._set(config_hash, "kept", kept)

    def _set(self, config_hash: str, name: str, value: Any) -> None:
        column = _training.c[name]
        with self._db.writing() as connection:
            stored = connection.execute(
                select(column).where(_training.c.config_hash == config_hash)
            ).first()
            if stored is None:
                raise NotFoundError(f"config_hash {config_hash!r} has no training run")
            if stored[0] != value:
                connection.execute(
                    update(_training)
                    .where(_training.c.config_hash == config_hash)
                    .values({name: value, "updated_at": self._db.now()})
                )

    def delete_training_run(self, config_hash: str) -> bool:
        """Delete a training run and its backtests (not its queue row); False if there was none."""
        with self._db.writing() as connection:
            deleted = connection.execute(
                delete(_training).where(_training.c.config_hash == config_hash)
            ).rowcount
        return bool(deleted)

    # -- history -------------------------------------------------------------------------------

    def search(
        self,
        *,
        specialty: str | None = None,
        regime: str | None = None,
        sort: str = "sharpe",
        limit: int = 20,
    ) -> list[tuple[TrainingRunRecord, InferenceBacktestRecord | None]]:
        """Trained configs with their best inference backtest, best first.

        The key is the backtest's ``metrics[sort]``, or with ``regime`` its
        ``per_regime[regime][sort]``; highest first, except for metrics where lower is better
        (volatility, max_drawdown_bars, turnover). A run's best backtest is the one with the best
        key; runs with no backtest scoring the key (NaN counts as none) come last, by age.
        """
        if not isinstance(sort, str) or not sort:
            raise ValueError(f"sort must be a metric name; got {sort!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer; got {limit!r}")
        sign = 1.0 if sort in _LOWER_IS_BETTER else -1.0

        def key(backtest: InferenceBacktestRecord) -> float | None:
            values = backtest.metrics if regime is None else backtest.per_regime.get(regime, {})
            value = values.get(sort)
            return sign * value if value is not None and not math.isnan(value) else None

        runs = self.training_runs(specialty=specialty)
        query = select(_backtests)
        if specialty is not None:
            query = query.join(
                _training, _training.c.config_hash == _backtests.c.config_hash
            ).where(_training.c.specialty == specialty)
        best: dict[str, tuple[float, InferenceBacktestRecord]] = {}
        with self._db.reading() as connection:
            for row in connection.execute(query).mappings():
                backtest = from_row(InferenceBacktestRecord, row)
                value = key(backtest)
                if value is None:
                    continue
                held = best.get(backtest.config_hash)
                if held is None or (value, backtest.inference_hash) < (
                    held[0],
                    held[1].inference_hash,
                ):
                    best[backtest.config_hash] = (value, backtest)
        order = {run.config_hash: index for index, run in enumerate(runs)}
        ranked = sorted(
            runs,
            key=lambda run: (
                (0, best[run.config_hash][0], order[run.config_hash])
                if run.config_hash in best
                else (1, 0.0, order[run.config_hash])
            ),
        )
        return [
            (run, best[run.config_hash][1] if run.config_hash in best else None)
            for run in ranked[:limit]
        ]

    def regime_trial_sharpes(self, specialty: str, regime: str) -> list[float]:
        """The Sharpe in ``regime`` of every config tried for ``specialty``: each inference
        backtest's ``per_regime[regime]["sharpe"]`` and each scored (OK) evolution agent's, finite
        values only. Its length is the number of trials the Deflated Sharpe Ratio deflates by."""
        tune = (
            select(_backtests.c.per_regime_json)
            .join(_training, _training.c.config_hash == _backtests.c.config_hash)
            .where(_training.c.specialty == specialty)
            .order_by(_backtests.c.config_hash, _backtests.c.inference_hash)
        )
        with self._db.reading() as connection:
            sharpes = regime_sharpes(connection.execute(tune).scalars(), regime)
        return sharpes + self._runs.regime_sharpes(specialty, regime)

    # -- the queue -------------------------------------------------------------------------------

    def enqueue(self, items: Sequence[QueueItemRecord]) -> tuple[int, int]:
        """Add configs to the end of the queue, in order; returns (added, already there).

        Already there: a config queued, running, paused or done in the queue, or whose training
        run is DONE; an item listed twice counts once, then as already there. A config the queue
        holds as FAILED or CANCELLED is queued again (at the end; its attempts kept). The store
        numbers ``position``; an item's status must be QUEUED or PAUSED (adding to a paused queue).
        """
        for item in items:
            if item.status not in (QueueStatus.QUEUED, QueueStatus.PAUSED):
                raise ValueError(
                    f"enqueue: QueueItemRecord.status of {item.config_hash!r} must be QUEUED or "
                    f"PAUSED; got {item.status.value!r}"
                )
        unique: dict[str, QueueItemRecord] = {}
        for item in items:
            unique.setdefault(item.config_hash, item)
        hashes = list(unique)
        now = self._db.now()
        added = 0
        with self._db.transaction() as connection:
            if self.dialect == "postgresql":  # SQLite's BEGIN IMMEDIATE already serializes adds
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_QUEUE_LOCK_KEY}
                )
            queued: dict[str, str] = {}
            done: set[str] = set()
            for chunk in _chunks(hashes):
                queued.update(
                    connection.execute(
                        select(_queue.c.config_hash, _queue.c.status).where(
                            _queue.c.config_hash.in_(chunk)
                        )
                    ).all()
                )
                done.update(
                    connection.execute(
                        select(_training.c.config_hash).where(
                            _training.c.config_hash.in_(chunk),
                            _training.c.status == TrainingStatus.DONE,
                        )
                    ).scalars()
                )
            last = connection.execute(select(func.max(_queue.c.position))).scalar_one()
            position = -1 if last is None else int(last)
            fresh: list[dict[str, Any]] = []
            for config_hash, item in unique.items():
                status = queued.get(config_hash)
                if config_hash in done or status in (*_OPEN, QueueStatus.DONE):
                    continue
                position += 1
                added += 1
                values = to_row(
                    replace(item, position=position, attempts=0, reason=""),
                    created_at=now,
                    updated_at=now,
                )
                if status is None:
                    fresh.append(values)
                    continue
                del values["attempts"], values["created_at"]
                connection.execute(
                    update(_queue).where(_queue.c.config_hash == config_hash).values(values)
                )
            if fresh:
                connection.execute(insert(_queue), fresh)
        return added, len(items) - added

    def queue_items(self, *, status: str | Sequence[str] | None = None) -> list[QueueItemRecord]:
        """The queue in order (by position), with the given status(es) only if ``status``."""
        query = select(_queue).order_by(_queue.c.position, _queue.c.config_hash)
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            for value in statuses:
                _check_queue_status(value)
            query = query.where(_queue.c.status.in_(statuses))
        with self._db.reading() as connection:
            return [from_row(QueueItemRecord, row) for row in connection.execute(query).mappings()]

    def set_queue_status(self, config_hashes: Sequence[str], status: str, reason: str = "") -> int:
        """Set the status (and reason) of queue rows; returns how many changed.

        A DONE row never changes, and a CANCELLED one only back to QUEUED. Moving a row to
        RUNNING counts an attempt.
        """
        _check_queue_status(status)
        if isinstance(config_hashes, str):
            raise ValueError(f"config_hashes must be a sequence of hashes; got {config_hashes!r}")
        values: dict[str, Any] = {"status": status, "reason": reason, "updated_at": self._db.now()}
        if status == QueueStatus.RUNNING:
            values["attempts"] = case(
                (_queue.c.status != QueueStatus.RUNNING, _queue.c.attempts + 1),
                else_=_queue.c.attempts,
            )
        changed = 0
        with self._db.transaction() as connection:
            for chunk in _chunks(list(config_hashes)):
                statement = (
                    update(_queue)
                    .where(
                        _queue.c.config_hash.in_(chunk),
                        _queue.c.status != QueueStatus.DONE,
                        (_queue.c.status != status) | (_queue.c.reason != reason),
                    )
                    .values(values)
                )
                if status != QueueStatus.QUEUED:
                    statement = statement.where(_queue.c.status != QueueStatus.CANCELLED)
                changed += connection.execute(statement).rowcount
        return changed

    def _move(self, connection: Connection, sources: Sequence[str], status: str) -> int:
        statement = (
            update(_queue)
            .where(_queue.c.status.in_(list(sources)))
            .values(status=status, updated_at=self._db.now())
        )
        return int(connection.execute(statement).rowcount)

    def pause_queue(self) -> int:
        """QUEUED -> PAUSED; returns how many. Running trials finish (or are stopped by the
        runner, which polls the queue)."""
        with self._db.writing() as connection:
            return self._move(connection, (QueueStatus.QUEUED,), QueueStatus.PAUSED)

    def resume_queue(self) -> int:
        """PAUSED -> QUEUED, and RUNNING -> QUEUED (a ``queue start`` killed mid-trial left them);
        returns how many. Call it when no ``queue start`` is running."""
        with self._db.writing() as connection:
            return self._move(
                connection, (QueueStatus.PAUSED, QueueStatus.RUNNING), QueueStatus.QUEUED
            )

    def cancel_queue(self) -> list[str]:
        """QUEUED, PAUSED and RUNNING -> CANCELLED, and their training runs deleted unless DONE
        (no half-written rows), in one transaction; returns the cancelled hashes in queue order."""
        with self._db.transaction() as connection:
            hashes = list(
                connection.execute(
                    select(_queue.c.config_hash)
                    .where(_queue.c.status.in_(_OPEN))
                    .order_by(_queue.c.position, _queue.c.config_hash)
                ).scalars()
            )
            self._move(connection, _OPEN, QueueStatus.CANCELLED)
            for chunk in _chunks(hashes):
                connection.execute(
                    delete(_training).where(
                        _training.c.config_hash.in_(chunk),
                        _training.c.status != TrainingStatus.DONE,
                    )
                )
        return hashes

    def queue_counts(self) -> dict[str, int]:
        """The number of queue rows in each status (every status, zeros included)."""
        query = select(_queue.c.status, func.count()).group_by(_queue.c.status)
        with self._db.reading() as connection:
            found = {status: int(count) for status, count in connection.execute(query).all()}
        return {status.value: found.get(status, 0) for status in QueueStatus}


def _check_queue_status(status: str) -> None:
    if status not in tuple(QueueStatus):
        raise ValueError(f"status must be one of {', '.join(QueueStatus)}; got {status!r}")
