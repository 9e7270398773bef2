"""The population's repository: runs, agents, generations, kills and the best model per regime.

``RunStore(store)`` works on the database of a :class:`store.db.Store` and takes and returns the
frozen records of :mod:`store.records`, never ORM objects. The contract, which tests/store runs on
SQLite and on PostgreSQL:

- **Idempotent writes.** Every write is an upsert on the table's natural key: writing a record again
  (a Mother resuming after a crash) leaves one row, and an unchanged record changes nothing, not even
  ``updated_at``. A changed record is updated in place. Two guards keep a resume from undoing work:
  a PENDING agent never overwrites an agent already OK or FAILED, and an agent's identity (specialty,
  generation, genome, seed, parents, operators) never changes once written: a different one raises.
- **Atomic generations.** ``with runs.transaction():`` makes every write inside one transaction
  (committed at the end, rolled back by any exception), and ``record_generation_outcome`` writes a
  generation's agents, births, kills, summaries and best models per regime together, so a SIGKILL
  never leaves half a generation.
- **Runs are keyed by config.** ``create_run`` with an existing run id and the same config hash is a
  no-op returning the stored run (a resume); another config hash raises.
- **A champion is promoted, never overwritten.** ``set_regime_best`` (the Mother's best model per
  regime, also through ``record_generation_outcome``) leaves a row flagged ``is_champion`` as the
  promotion wrote it: its model, stage, Deflated Sharpe and flag change only through
  ``store.training.TrainingStore`` (``promote``), which logs why.
- **Agent ids are unique within a run** (``ta-g002-003``: the same seed gives the same ids in every
  run). Lookups by agent id alone search every run and raise when the id is in several: pass
  ``run_id``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields, replace
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    Table,
    and_,
    bindparam,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.sql.elements import ColumnElement

from store.db import Store, _utcnow
from store.engine import write_transaction
from store.models import Agent, Generation, Kill, RegimeBestModel, Run
from store.records import (
    AgentRecord,
    GenerationRecord,
    InferenceBacktestRecord,
    KillRecord,
    PromotionRecord,
    QueueItemRecord,
    RegimeBestRecord,
    RunRecord,
    TrainingRunRecord,
)

__all__ = ["NotFoundError", "RunStore"]

logger = logging.getLogger(__name__)

_runs: Table = Run.__table__  # type: ignore[assignment]
_agents: Table = Agent.__table__  # type: ignore[assignment]
_generations: Table = Generation.__table__  # type: ignore[assignment]
_kills: Table = Kill.__table__  # type: ignore[assignment]
_regime_best: Table = RegimeBestModel.__table__  # type: ignore[assignment]

# What makes an agent the agent it is: fixed at birth, checked on every later write.
_IDENTITY = ("specialty", "generation", "genome_digest", "seed", "parents", "operators")
# Stamps that record when a row last changed: never a reason to update it.
_STAMPS = frozenset({"created_at", "updated_at", "killed_at", "finished_at"})
# Record fields kept as JSON text, and their columns.
_JSON_COLUMNS = {
    "config": "config_json",
    "dataset_digests": "dataset_digests",
    "settings": "settings_json",
    "parents": "parents",
    "operators": "operators",
    "objectives": "objectives",
    "metrics": "metrics_json",
    "per_regime": "per_regime_json",
    "hall_of_fame": "hall_of_fame",
    "inference": "inference_json",
    "before": "before_json",
    "after": "after_json",
}

_R = TypeVar(
    "_R",
    RunRecord,
    AgentRecord,
    GenerationRecord,
    KillRecord,
    RegimeBestRecord,
    TrainingRunRecord,
    InferenceBacktestRecord,
    QueueItemRecord,
    PromotionRecord,
)


def _dumps(value: Any) -> str:
    """Canonical JSON text: equal values give equal text, so an unchanged row compares equal."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class NotFoundError(LookupError):
    """A run or an agent that the store does not hold; the message names the id."""


class RunStore:
    """Runs and their population in the database of ``store``. Safe to share between threads."""

    def __init__(self, store: Store, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._engine: Engine = store.engine
        self._clock = clock
        self._local = threading.local()  # the open transaction's connection, per thread

    @property
    def dialect(self) -> str:
        return str(self._engine.dialect.name)

    # -- transactions ----------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[RunStore]:
        """Every write and read of this thread inside the block is one transaction.

        Committed when the block ends, rolled back when it raises: nothing of it is stored. A
        nested ``transaction()`` joins the outer one.
        """
        if self._active() is not None:
            yield self
            return
        with write_transaction(self._engine) as connection:
            self._local.connection = connection
            try:
                yield self
            finally:
                self._local.connection = None

    def _active(self) -> Connection | None:
        return getattr(self._local, "connection", None)

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        active = self._active()
        if active is not None:
            yield active
            return
        with write_transaction(self._engine) as connection:
            yield connection

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        active = self._active()
        if active is not None:
            yield active  # sees the open transaction's own writes
            return
        with self._engine.connect() as connection:
            yield connection

    def _upsert(
        self,
        table: Table,
        keys: Sequence[str],
        columns: Iterable[str],
        *,
        only_if: Callable[[Any], ColumnElement[bool]] | None = None,
    ) -> Insert:
        """INSERT .. ON CONFLICT (keys) DO UPDATE, updating only rows whose content differs.

        ``only_if(statement)`` adds a condition on the stored row and ``statement.excluded``.
        """
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        statement = dialect_insert(table)
        updated = [name for name in columns if name not in keys and name != "created_at"]
        changed = or_(
            *(
                table.c[name].is_distinct_from(statement.excluded[name])
                for name in updated
                if name not in _STAMPS
            )
        )
        where = changed if only_if is None else and_(changed, only_if(statement))
        set_ = {name: statement.excluded[name] for name in updated}
        return statement.on_conflict_do_update(index_elements=list(keys), set_=set_, where=where)

    # -- runs ------------------------------------------------------------------------------------

    def create_run(self, record: RunRecord) -> RunRecord:
        """Store a new run; the stored run when ``run_id`` exists with the same config hash.

        Raises ValueError when ``run_id`` exists with another config hash: a run id names one
        config for good (resume with the same config, or start a new run id).
        """
        now = self._clock()
        values = _values(record, created_at=now, updated_at=now)
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        # DO NOTHING then read back: a concurrent creator of the same run id cannot make us fail.
        statement = dialect_insert(_runs).values(values).on_conflict_do_nothing()
        with self._writing() as connection:
            inserted = connection.execute(statement).rowcount
            stored = self._run_row(connection, record.run_id)
        assert stored is not None
        if stored.config_hash != record.config_hash:
            raise ValueError(
                f"run_id {record.run_id!r} already exists with config_hash "
                f"{stored.config_hash!r}; got {record.config_hash!r}: resume it with the same "
                "config or choose another run_id"
            )
        if inserted:
            logger.info("run %s created (seed %d)", record.run_id, record.root_seed)
        return stored

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run called ``run_id``, or None."""
        with self._reading() as connection:
            return self._run_row(connection, run_id)

    def require_run(self, run_id: str) -> RunRecord:
        """The run called ``run_id``; NotFoundError naming it when there is none."""
        found = self.get_run(run_id)
        if found is None:
            raise NotFoundError(f"run_id {run_id!r} does not exist")
        return found

    def list_runs(self) -> list[RunRecord]:
        """Every run, newest first."""
        query = select(_runs).order_by(_runs.c.created_at.desc(), _runs.c.run_id.desc())
        with self._reading() as connection:
            return [_record(RunRecord, row) for row in connection.execute(query).mappings()]

    def update_run(
        self,
        run_id: str,
        *,
        status: str | None = None,
        generations_done: int | None = None,
        dataset_digests: Mapping[str, str] | None = None,
    ) -> RunRecord:
        """Change a run's status, progress or dataset digests; returns the run as stored."""
        current = self.require_run(run_id)
        changes: dict[str, Any] = {}
        if status is not None:
            changes["status"] = status
        if generations_done is not None:
            changes["generations_done"] = generations_done
        if dataset_digests is not None:
            changes["dataset_digests"] = dict(dataset_digests)
        wanted = replace(current, **changes)  # the record checks the values
        if wanted == current:
            return current
        values = _values(wanted, updated_at=self._clock())
        with self._writing() as connection:
            connection.execute(update(_runs).where(_runs.c.run_id == run_id).values(values))
            stored = self._run_row(connection, run_id)
        assert stored is not None
        return stored

    @staticmethod
    def _run_row(connection: Connection, run_id: str) -> RunRecord | None:
        row = connection.execute(select(_runs).where(_runs.c.run_id == run_id)).mappings().first()
        return None if row is None else _record(RunRecord, row)

    # -- agents ----------------------------------------------------------------------------------

    def upsert_agent(self, record: AgentRecord) -> None:
        """Insert the agent or update it in place (see the module docstring for the guards)."""
        self.upsert_agents([record])

    def add_agents(self, records: Sequence[AgentRecord]) -> None:
        """A generation's births: ``upsert_agents`` (a birth written again changes nothing)."""
        self.upsert_agents(records)

    def upsert_agents(self, records: Sequence[AgentRecord]) -> None:
        """``upsert_agent`` for many agents, in one transaction."""
        if not records:
            return
        _check_unique("agent_id", [(r.run_id, r.agent_id) for r in records])
        now = self._clock()
        rows = [_values(record, created_at=now, updated_at=now) for record in records]
        for row in rows:
            del row["killed_generation"]  # record_kill's to write: an upsert never clears it
        statement = self._upsert(
            _agents,
            ("run_id", "agent_id"),
            rows[0],
            # A birth rewritten on resume must not wipe out a result already stored.
            only_if=lambda new: or_(
                _agents.c.status == "PENDING", new.excluded.status != "PENDING"
            ),
        )
        with self._writing() as connection:
            self._check_runs(connection, {record.run_id for record in records})
            self._check_identity(connection, records)
            connection.execute(statement, rows)

    def _check_runs(self, connection: Connection, run_ids: set[str]) -> None:
        query = select(_runs.c.run_id).where(_runs.c.run_id.in_(sorted(run_ids)))
        missing = run_ids - set(connection.execute(query).scalars())
        if missing:
            raise NotFoundError(f"run_id {sorted(missing)[0]!r} does not exist; create_run first")

    def _check_identity(self, connection: Connection, records: Sequence[AgentRecord]) -> None:
        by_run: dict[str, list[AgentRecord]] = {}
        for record in records:
            by_run.setdefault(record.run_id, []).append(record)
        for run_id, batch in by_run.items():
            query = select(_agents.c.agent_id, *(_agents.c[name] for name in _IDENTITY)).where(
                _agents.c.run_id == run_id,
                _agents.c.agent_id.in_([record.agent_id for record in batch]),
            )
            stored = {row["agent_id"]: row for row in connection.execute(query).mappings()}
            for record in batch:
                row = stored.get(record.agent_id)
                if row is None:
                    continue
                new = _values(record)
                for name in _IDENTITY:
                    if row[name] != new[name]:
                        raise ValueError(
                            f"agent {record.agent_id!r} of run {run_id!r} was born with "
                            f"{name} {row[name]!r}; got {new[name]!r}: an agent's birth never "
                            "changes"
                        )

    def agent(self, agent_id: str, *, run_id: str | None = None) -> AgentRecord | None:
        """The agent, or None. Without ``run_id``, from whichever run holds it (one at most)."""
        query = select(_agents).where(_agents.c.agent_id == agent_id)
        if run_id is not None:
            query = query.where(_agents.c.run_id == run_id)
        with self._reading() as connection:
            rows = connection.execute(query.order_by(_agents.c.run_id)).mappings().all()
        if len(rows) > 1:
            runs = ", ".join(repr(row["run_id"]) for row in rows)
            raise ValueError(f"agent_id {agent_id!r} is in several runs ({runs}); pass run_id")
        return _record(AgentRecord, rows[0]) if rows else None

    def require_agent(self, agent_id: str, *, run_id: str | None = None) -> AgentRecord:
        """The agent; NotFoundError naming the id (and the run) when there is none."""
        found = self.agent(agent_id, run_id=run_id)
        if found is None:
            where = "any run" if run_id is None else f"run {run_id!r}"
            raise NotFoundError(f"agent_id {agent_id!r} is not in {where}")
        return found

    def agents(
        self,
        run_id: str,
        *,
        generation: int | None = None,
        specialty: str | None = None,
        alive_at: int | None = None,
    ) -> list[AgentRecord]:
        """A run's agents by (generation, specialty, agent_id).

        ``generation``: born in it. ``alive_at=g``: born at or before ``g`` and not killed at or
        before ``g`` (a child killed on generation ``g``'s scores is not alive at ``g``).
        """
        query = select(_agents).where(_agents.c.run_id == run_id)
        if generation is not None:
            query = query.where(_agents.c.generation == generation)
        if specialty is not None:
            query = query.where(_agents.c.specialty == specialty)
        if alive_at is not None:
            killed = _agents.c.killed_generation
            query = query.where(
                _agents.c.generation <= alive_at, or_(killed.is_(None), killed > alive_at)
            )
        query = query.order_by(_agents.c.generation, _agents.c.specialty, _agents.c.agent_id)
        with self._reading() as connection:
            return [_record(AgentRecord, row) for row in connection.execute(query).mappings()]

    def ancestors(self, agent_id: str, *, run_id: str | None = None) -> list[AgentRecord]:
        """The agent's ancestors back to generation 0, each once, nearest first.

        Nearest first: by generation, latest first (an elite that outlived its generation can
        parent a much younger child), then in order of discovery walking parents breadth first in
        the order they are listed. One recursive query finds them; a parent id the run does not
        hold ends its branch (logged).
        """
        head = self.require_agent(agent_id, run_id=run_id)
        statement = text(_ancestors_sql(self.dialect)).columns(*_agents.c)
        params = {"run_id": head.run_id, "agent_id": head.agent_id}
        with self._reading() as connection:
            rows = connection.execute(statement, params).mappings().all()
        by_id = {row["agent_id"]: _record(AgentRecord, row) for row in rows}
        by_id.pop(head.agent_id, None)  # only on a (corrupt) cycle back to the agent
        order: list[AgentRecord] = []
        seen = {head.agent_id}
        queue = [head]
        while queue:
            current = queue.pop(0)
            for parent in current.parents:
                if parent in seen:
                    continue
                seen.add(parent)
                found = by_id.get(parent)
                if found is None:
                    logger.warning(
                        "lineage of %s: run %s has no agent %s", agent_id, head.run_id, parent
                    )
                    continue
                order.append(found)
                queue.append(found)
        discovery = {record.agent_id: index for index, record in enumerate(order)}
        return sorted(order, key=lambda record: (-record.generation, discovery[record.agent_id]))

    # -- generations and kills ------------------------------------------------------------------

    def record_generation(self, record: GenerationRecord) -> None:
        """Store one generation's summary of one specialty (an upsert)."""
        values = _values(record, finished_at=record.finished_at or self._clock())
        statement = self._upsert(_generations, ("run_id", "generation", "specialty"), values)
        with self._writing() as connection:
            self._check_runs(connection, {record.run_id})
            connection.execute(statement, [values])

    def generations(self, run_id: str) -> list[GenerationRecord]:
        """A run's generation summaries by (generation, specialty)."""
        query = (
            select(_generations)
            .where(_generations.c.run_id == run_id)
            .order_by(_generations.c.generation, _generations.c.specialty)
        )
        with self._reading() as connection:
            return [_record(GenerationRecord, row) for row in connection.execute(query).mappings()]

    def record_kill(self, record: KillRecord) -> None:
        """Store a kill and set the agent's ``killed_generation``, in one transaction."""
        self.record_kills([record])

    def record_kills(self, records: Sequence[KillRecord]) -> None:
        """``record_kill`` for many kills, in one transaction."""
        if not records:
            return
        _check_unique("kill of agent_id", [(r.run_id, r.agent_id) for r in records])
        now = self._clock()
        rows = [_values(record, killed_at=record.killed_at or now) for record in records]
        statement = self._upsert(_kills, ("run_id", "agent_id"), rows[0])
        killed = _agents.c.killed_generation
        mark = (
            update(_agents)
            .where(
                _agents.c.run_id == bindparam("k_run_id"),
                _agents.c.agent_id == bindparam("k_agent_id"),
                killed.is_distinct_from(bindparam("k_generation")),
            )
            .values(killed_generation=bindparam("k_generation"), updated_at=now)
        )
        with self._writing() as connection:
            self._check_kills(connection, records)
            connection.execute(statement, rows)
            connection.execute(
                mark,
                [
                    {"k_run_id": r.run_id, "k_agent_id": r.agent_id, "k_generation": r.generation}
                    for r in records
                ],
            )

    @staticmethod
    def _check_kills(connection: Connection, records: Sequence[KillRecord]) -> None:
        for record in records:
            born = connection.execute(
                select(_agents.c.generation).where(
                    _agents.c.run_id == record.run_id, _agents.c.agent_id == record.agent_id
                )
            ).scalar_one_or_none()
            if born is None:
                raise NotFoundError(
                    f"kill of agent_id {record.agent_id!r}: run {record.run_id!r} has no such agent"
                )
            if record.generation < born:
                raise ValueError(
                    f"kill of agent_id {record.agent_id!r}: generation must be at or after its "
                    f"birth ({born}); got {record.generation}"
                )

    def kills(self, run_id: str) -> list[KillRecord]:
        """A run's kills by (generation, agent_id)."""
        query = (
            select(_kills)
            .where(_kills.c.run_id == run_id)
            .order_by(_kills.c.generation, _kills.c.agent_id)
        )
        with self._reading() as connection:
            return [_record(KillRecord, row) for row in connection.execute(query).mappings()]

    def record_generation_outcome(
        self,
        generations: GenerationRecord | Sequence[GenerationRecord],
        agents: Sequence[AgentRecord] = (),
        kills: Sequence[KillRecord] = (),
        regime_best: Sequence[RegimeBestRecord] = (),
    ) -> None:
        """A generation as one transaction: agents (the scored and the newly born, upserted),
        kills, the summaries of its specialties, then the best model per regime.

        Every record must belong to the run of the first summary.
        """
        summaries = [generations] if isinstance(generations, GenerationRecord) else generations
        if not summaries:
            raise ValueError("record_generation_outcome needs at least one GenerationRecord")
        run_id = summaries[0].run_id
        for kind, other, name in [
            *(("summary", g.run_id, g.specialty) for g in summaries),
            *(("agent", a.run_id, a.agent_id) for a in agents),
            *(("kill", k.run_id, k.agent_id) for k in kills),
            *(("regime best", r.run_id, r.regime) for r in regime_best),
        ]:
            if other != run_id:
                raise ValueError(
                    f"record_generation_outcome of run {run_id!r}: the {kind} of {name!r} has "
                    f"run_id {other!r}"
                )
        with self.transaction():
            self.upsert_agents(agents)
            self.record_kills(kills)
            for summary in summaries:
                self.record_generation(summary)
            for record in regime_best:
                self.set_regime_best(record)

    # -- best model per regime ---------------------------------------------------------------------

    def set_regime_best(self, record: RegimeBestRecord) -> None:
        """Make ``record`` the run's best model for its (specialty, regime) (an upsert).

        A stored row that is the champion is left as it is (see the module docstring), and
        ``record`` must not claim to be one: champions are made by ``TrainingStore.promote``.
        """
        if record.is_champion:
            raise ValueError(
                f"set_regime_best of run {record.run_id!r} ({record.specialty}, {record.regime}): "
                "is_champion must be False; got True: champions are made by TrainingStore.promote"
            )
        values = _values(record, updated_at=self._clock())
        statement = self._upsert(
            _regime_best,
            ("run_id", "specialty", "regime"),
            values,
            only_if=lambda _: ~_regime_best.c.is_champion,
        )
        with self._writing() as connection:
            self._check_runs(connection, {record.run_id})
            connection.execute(statement, [values])

    def regime_best(self, run_id: str | None = None) -> list[RegimeBestRecord]:
        """The best models per (specialty, regime) of one run, or of every run; sorted by run,
        specialty and regime."""
        query = select(_regime_best)
        if run_id is not None:
            query = query.where(_regime_best.c.run_id == run_id)
        query = query.order_by(
            _regime_best.c.run_id, _regime_best.c.specialty, _regime_best.c.regime
        )
        with self._reading() as connection:
            return [_record(RegimeBestRecord, row) for row in connection.execute(query).mappings()]


# -- rows to records and back ----------------------------------------------------------------------


def _check_unique(what: str, keys: Sequence[tuple[str, str]]) -> None:
    seen: set[tuple[str, str]] = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"{what} {key[1]!r} of run {key[0]!r} is listed twice in one write")
        seen.add(key)


def _values(record: Any, **stamps: datetime | None) -> dict[str, Any]:
    """A record as column values: JSON fields as canonical text, ``stamps`` as given."""
    values: dict[str, Any] = {}
    for item in fields(record):
        value = getattr(record, item.name)
        if item.name in _JSON_COLUMNS:
            values[_JSON_COLUMNS[item.name]] = _dumps(value)
        elif item.name not in _STAMPS:
            values[item.name] = value
    return values | stamps


def _record(cls: type[_R], row: RowMapping) -> _R:
    """A row as a record; the record's checks turn JSON lists back into tuples."""
    values = {
        item.name: json.loads(row[_JSON_COLUMNS[item.name]])
        if item.name in _JSON_COLUMNS
        else row[item.name]
        for item in fields(cls)
    }
    return cls(**values)


def _ancestors_sql(dialect: str) -> str:
    """Every agent reachable through ``parents`` (JSON lists) from one agent, in one query.

    UNION (not UNION ALL) drops ids already found, so a shared ancestor is walked once and even a
    corrupt cycle ends.
    """
    if dialect == "postgresql":
        parents = "CROSS JOIN LATERAL json_array_elements_text(CAST(a.parents AS json)) AS p(value)"
    else:
        parents = "CROSS JOIN json_each(a.parents) AS p"
    columns = ", ".join(f"agents.{column.name}" for column in _agents.c)
    return (
        "WITH RECURSIVE walk(agent_id) AS ("
        f" SELECT p.value FROM agents a {parents}"
        " WHERE a.run_id = :run_id AND a.agent_id = :agent_id"
        " UNION"
        f" SELECT p.value FROM walk w JOIN agents a ON a.run_id = :run_id"
        f" AND a.agent_id = w.agent_id {parents}"
        f") SELECT {columns} FROM agents JOIN walk"
        " ON agents.run_id = :run_id AND agents.agent_id = walk.agent_id"
    )
