"""The population's repository: runs, agents, generations, kills and the best model per regime.

``RunStore(database)`` works on a :class:`store.database.Database` and takes and returns the
frozen records of :mod:`store.records.population`, never ORM objects. The contract, which tests/store runs on
SQLite and on PostgreSQL:

- **Idempotent writes.** Every write is an upsert on the table's natural key: writing a record again
  (a Mother resuming after a crash) leaves one row, and an unchanged record changes nothing, not even
  ``updated_at``. A changed record is updated in place. Two guards keep a resume from undoing work:
  a PENDING agent never overwrites an agent already OK or FAILED, and an agent's identity (specialty,
  generation, genome, seed, parents, operators) never changes once written: a different one raises.
- **Atomic generations.** ``with runs.transaction():`` (the database's) makes every write inside
  one transaction (committed at the end, rolled back by any exception), and
  ``record_generation_outcome`` writes a generation's agents, births, kills, summaries and best
  models per regime (through ``store.champions.ChampionStore.set_regime_best``) together, so a
  SIGKILL never leaves half a generation.
- **Runs are keyed by config.** ``create_run`` with an existing run id and the same config hash is a
  no-op returning the stored run (a resume); another config hash raises.
- **A champion is promoted, never overwritten.** The best models per regime are the champions'
  repository's (``store.champions.ChampionStore``, the one writer of ``regime_best_models``).
- **Agent ids are unique within a run** (``ta-g002-003``: the same seed gives the same ids in every
  run). Lookups by agent id alone search every run and raise when the id is in several: pass
  ``run_id``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, Table, bindparam, or_, select, text, update

from store.champions import ChampionStore
from store.codec import from_row, regime_sharpes, to_row
from store.database import Database
from store.errors import NotFoundError
from store.models import Agent, Generation, Kill, Run
from store.records.champions import RegimeBestRecord
from store.records.population import (
    ANCESTOR,
    AgentRecord,
    AgentStatus,
    GenerationRecord,
    KillRecord,
    RunRecord,
)
from store.repository import Repository

__all__ = ["RunStore"]

logger = logging.getLogger(__name__)

_runs: Table = Run.__table__  # type: ignore[assignment]
_agents: Table = Agent.__table__  # type: ignore[assignment]
_generations: Table = Generation.__table__  # type: ignore[assignment]
_kills: Table = Kill.__table__  # type: ignore[assignment]

# What makes an agent the agent it is: fixed at birth, checked on every later write.
_IDENTITY = ("specialty", "generation", "genome_digest", "seed", "parents", "operators")


class RunStore(Repository):
    """Runs and their population in ``database``. Safe to share between threads.

    ``champions`` is the repository the generations' best models per regime are written through
    (a :class:`ChampionStore` on the same database when not given).
    """

    def __init__(self, database: Database, champions: ChampionStore | None = None) -> None:
        super().__init__(database)
        self._champions = champions if champions is not None else ChampionStore(database)
        if self._champions.database is not database:
            raise ValueError("champions must work on the same database as the RunStore")

    # -- runs ------------------------------------------------------------------------------------

    def create_run(self, record: RunRecord) -> RunRecord:
        """Store a new run; the stored run when ``run_id`` exists with the same config hash.

        Raises ValueError when ``run_id`` exists with another config hash: a run id names one
        config for good (resume with the same config, or start a new run id).
        """
        now = self._db.now()
        values = to_row(record, created_at=now, updated_at=now)
        # DO NOTHING then read back: a concurrent creator of the same run id cannot make us fail.
        statement = self._db.insert(_runs).values(values).on_conflict_do_nothing()
        with self._db.writing() as connection:
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
        with self._db.reading() as connection:
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
        with self._db.reading() as connection:
            return [from_row(RunRecord, row) for row in connection.execute(query).mappings()]

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
        values = to_row(wanted, updated_at=self._db.now())
        with self._db.writing() as connection:
            connection.execute(update(_runs).where(_runs.c.run_id == run_id).values(values))
            stored = self._run_row(connection, run_id)
        assert stored is not None
        return stored

    @staticmethod
    def _run_row(connection: Connection, run_id: str) -> RunRecord | None:
        row = connection.execute(select(_runs).where(_runs.c.run_id == run_id)).mappings().first()
        return None if row is None else from_row(RunRecord, row)

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
        now = self._db.now()
        rows = [to_row(record, created_at=now, updated_at=now) for record in records]
        for row in rows:
            del row["killed_generation"]  # record_kill's to write: an upsert never clears it
        statement = self._db.upsert(
            _agents,
            ("run_id", "agent_id"),
            rows[0],
            # A birth rewritten on resume must not wipe out a result already stored.
            only_if=lambda new: or_(
                _agents.c.status == AgentStatus.PENDING.value,
                new.excluded.status != AgentStatus.PENDING.value,
            ),
        )
        with self._db.writing() as connection:
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
                new = to_row(record)
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
        with self._db.reading() as connection:
            rows = connection.execute(query.order_by(_agents.c.run_id)).mappings().all()
        if len(rows) > 1:
            runs = ", ".join(repr(row["run_id"]) for row in rows)
            raise ValueError(f"agent_id {agent_id!r} is in several runs ({runs}); pass run_id")
        return from_row(AgentRecord, rows[0]) if rows else None

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
        with self._db.reading() as connection:
            return [from_row(AgentRecord, row) for row in connection.execute(query).mappings()]

    def ancestors(self, agent_id: str, *, run_id: str | None = None) -> list[AgentRecord]:
        """The agent's ancestors back to generation 0, each once, nearest first.

        Nearest first: by generation, latest first (an elite that outlived its generation can
        parent a much younger child), then in order of discovery walking parents breadth first in
        the order they are listed. One recursive query finds them; a parent id the run does not
        hold ends its branch (logged). Except one: a generation-0 child carried over from an
        earlier run (operators ``(ANCESTOR,)``) names its ancestor there, and the walk goes on in
        that run; an earlier run's ancestors come after the later run's (they are older).
        """
        head = self.require_agent(agent_id, run_id=run_id)
        found: list[AgentRecord] = []
        seen = {(head.run_id, head.agent_id)}
        starts = [head]
        while starts:  # one run per step: the agent's, then each earlier run it was carried from
            start = starts.pop(0)
            in_run = self._ancestors_in_run(start)
            carried: list[AgentRecord] = []
            for record in [start, *in_run]:
                if record.operators != (ANCESTOR,):
                    continue
                for parent in record.parents:
                    ancestor = self._carried_from(record, parent)
                    if ancestor is None or (ancestor.run_id, ancestor.agent_id) in seen:
                        continue
                    seen.add((ancestor.run_id, ancestor.agent_id))
                    carried.append(ancestor)
                    starts.append(ancestor)
            for record in in_run:
                if (record.run_id, record.agent_id) not in seen:
                    seen.add((record.run_id, record.agent_id))
                    found.append(record)
            found.extend(carried)
        return found

    def _ancestors_in_run(self, head: AgentRecord) -> list[AgentRecord]:
        """The ancestors of ``head`` in its own run, nearest first (see ``ancestors``)."""
        statement = text(_ancestors_sql(self.dialect)).columns(*_agents.c)
        params = {"run_id": head.run_id, "agent_id": head.agent_id}
        with self._db.reading() as connection:
            rows = connection.execute(statement, params).mappings().all()
        by_id = {row["agent_id"]: from_row(AgentRecord, row) for row in rows}
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
                    if current.operators != (ANCESTOR,):  # a carried parent: another run's
                        logger.warning(
                            "lineage of %s: run %s has no agent %s",
                            head.agent_id,
                            head.run_id,
                            parent,
                        )
                    continue
                order.append(found)
                queue.append(found)
        discovery = {record.agent_id: index for index, record in enumerate(order)}
        return sorted(order, key=lambda record: (-record.generation, discovery[record.agent_id]))

    def _carried_from(self, child: AgentRecord, parent: str) -> AgentRecord | None:
        """The agent of an earlier run a carried generation-0 ``child`` names as its parent
        (its full id, ``<run_id>.<agent>``: the run it names wins when several runs hold the
        id); None, logged, when no other run holds it."""
        query = select(_agents).where(
            _agents.c.agent_id == parent, _agents.c.run_id != child.run_id
        )
        with self._db.reading() as connection:
            rows = [from_row(AgentRecord, row) for row in connection.execute(query).mappings()]
        named = [r for r in rows if parent.startswith(f"{r.run_id}.")]
        if len(rows) == 1 or len(named) == 1:
            return rows[0] if len(rows) == 1 else named[0]
        logger.warning(
            "lineage of %s (run %s): its ancestor %s is in %s",
            child.agent_id,
            child.run_id,
            parent,
            "no other run" if not rows else f"{len(rows)} runs, none named by the id",
        )
        return None

    # -- generations and kills ------------------------------------------------------------------

    def record_generation(self, record: GenerationRecord) -> None:
        """Store one generation's summary of one specialty (an upsert)."""
        values = to_row(record, finished_at=record.finished_at or self._db.now())
        statement = self._db.upsert(_generations, ("run_id", "generation", "specialty"), values)
        with self._db.writing() as connection:
            self._check_runs(connection, {record.run_id})
            connection.execute(statement, [values])

    def generations(self, run_id: str) -> list[GenerationRecord]:
        """A run's generation summaries by (generation, specialty)."""
        query = (
            select(_generations)
            .where(_generations.c.run_id == run_id)
            .order_by(_generations.c.generation, _generations.c.specialty)
        )
        with self._db.reading() as connection:
            return [from_row(GenerationRecord, row) for row in connection.execute(query).mappings()]

    def record_kill(self, record: KillRecord) -> None:
        """Store a kill and set the agent's ``killed_generation``, in one transaction."""
        self.record_kills([record])

    def record_kills(self, records: Sequence[KillRecord]) -> None:
        """``record_kill`` for many kills, in one transaction."""
        if not records:
            return
        _check_unique("kill of agent_id", [(r.run_id, r.agent_id) for r in records])
        now = self._db.now()
        rows = [to_row(record, killed_at=record.killed_at or now) for record in records]
        statement = self._db.upsert(_kills, ("run_id", "agent_id"), rows[0])
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
        with self._db.writing() as connection:
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
        with self._db.reading() as connection:
            return [from_row(KillRecord, row) for row in connection.execute(query).mappings()]

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
                self._champions.set_regime_best(record)

    # -- scores ----------------------------------------------------------------------------------

    def regime_sharpes(self, specialty: str, regime: str) -> list[float]:
        """The Sharpe in ``regime`` of every scored (OK) agent of ``specialty``, in every run,
        finite values only (by run and agent id): evolution's share of the trials a Deflated
        Sharpe Ratio deflates by."""
        query = (
            select(_agents.c.per_regime_json)
            .where(_agents.c.specialty == specialty, _agents.c.status == AgentStatus.OK.value)
            .order_by(_agents.c.run_id, _agents.c.agent_id)
        )
        with self._db.reading() as connection:
            return regime_sharpes(connection.execute(query).scalars(), regime)


# -- rows to records and back ----------------------------------------------------------------------


def _check_unique(what: str, keys: Sequence[tuple[str, str]]) -> None:
    seen: set[tuple[str, str]] = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"{what} {key[1]!r} of run {key[0]!r} is listed twice in one write")
        seen.add(key)


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
