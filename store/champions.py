"""The champions' repository: the best model per (specialty, regime) of each run, the champion of
each (specialty, regime), and the log of every decision on it. The one writer of
``regime_best_models`` and ``promotions``.

``ChampionStore(database)`` takes and returns the frozen records of
:mod:`store.records.champions`. Every path that changes a row of ``regime_best_models`` goes
through one of its four writes, which keep these invariants (tests/store/test_champions_contract.py
runs them on SQLite and PostgreSQL):

- ``set_regime_best``: a run's best model for a (specialty, regime), an upsert (the Mother's
  per-generation best, through ``RunStore.record_generation_outcome``). It never writes a
  champion: a stored row that is the champion is left as the promotion wrote it, and the record
  must not claim to be one.
- ``promote``: **the only way to crown.** In one transaction the old champion of the (specialty,
  regime), if any, loses the flag and is RETIRED, the candidate's row is written as the champion at
  stage PAPER, and the decision (PROMOTED) is logged. At most one row per (specialty, regime),
  across every run, is the champion (a partial unique index).
- ``refuse``: the candidate's row is written through ``set_regime_best`` (never a champion) and
  the decision (REFUSED) is logged, in one transaction.
- ``set_stage``: the live lifecycle step of the champion that is still the given model (PAPER ->
  MATURE -> DECAY -> RETIRED, ``evolution.champions.next_stage``); who is champion never changes
  here.

Every write names a run that must exist: the database's foreign key checks it, and a missing run
raises ``NotFoundError`` naming it (nothing written).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from sqlalchemy import Connection, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from store.codec import from_row, to_row
from store.errors import NotFoundError
from store.models import Promotion, RegimeBestModel
from store.records.champions import PromotionDecision, PromotionRecord, RegimeBestRecord, Stage
from store.repository import Repository

__all__ = ["ChampionStore"]

logger = logging.getLogger(__name__)

_regime_best: Table = RegimeBestModel.__table__  # type: ignore[assignment]
_promotions: Table = Promotion.__table__  # type: ignore[assignment]
_KEY = ("run_id", "specialty", "regime")


class ChampionStore(Repository):
    """``regime_best_models`` and ``promotions`` in ``database``. Thread-safe."""

    # -- reads -----------------------------------------------------------------------------------

    def regime_best(self, run_id: str | None = None) -> list[RegimeBestRecord]:
        """The best models per (specialty, regime) of one run (an evolution run or a Tune
        experiment), or of every run; sorted by run, specialty and regime."""
        query = select(_regime_best)
        if run_id is not None:
            query = query.where(_regime_best.c.run_id == run_id)
        query = query.order_by(*(_regime_best.c[name] for name in _KEY))
        with self._db.reading() as connection:
            return [from_row(RegimeBestRecord, row) for row in connection.execute(query).mappings()]

    def champion(self, specialty: str, regime: str) -> RegimeBestRecord | None:
        """The champion of (specialty, regime), or None."""
        query = select(_regime_best).where(
            _regime_best.c.specialty == specialty,
            _regime_best.c.regime == regime,
            _regime_best.c.is_champion,
        )
        with self._db.reading() as connection:
            row = connection.execute(query).mappings().first()
        return None if row is None else from_row(RegimeBestRecord, row)

    def champions(self) -> list[RegimeBestRecord]:
        """Every champion, by specialty and regime."""
        query = (
            select(_regime_best)
            .where(_regime_best.c.is_champion)
            .order_by(_regime_best.c.specialty, _regime_best.c.regime)
        )
        with self._db.reading() as connection:
            return [from_row(RegimeBestRecord, row) for row in connection.execute(query).mappings()]

    def promotions(
        self, *, specialty: str | None = None, regime: str | None = None
    ) -> list[PromotionRecord]:
        """The promotions log, oldest first, filtered by the arguments given."""
        query = select(_promotions).order_by(_promotions.c.id)
        if specialty is not None:
            query = query.where(_promotions.c.specialty == specialty)
        if regime is not None:
            query = query.where(_promotions.c.regime == regime)
        with self._db.reading() as connection:
            return [from_row(PromotionRecord, row) for row in connection.execute(query).mappings()]

    # -- the four writes -------------------------------------------------------------------------

    def set_regime_best(self, record: RegimeBestRecord) -> None:
        """Make ``record`` its run's best model for its (specialty, regime) (an upsert).

        A stored row that is the champion is left as it is, and ``record`` must not claim to be
        one: champions are made by :meth:`promote` only.
        """
        if record.is_champion:
            raise ValueError(
                f"set_regime_best of run {record.run_id!r} ({record.specialty}, {record.regime}): "
                "is_champion must be False; got True: champions are made by ChampionStore.promote"
            )
        values = to_row(record, updated_at=self._db.now())
        statement = self._db.upsert(
            _regime_best, _KEY, values, only_if=lambda _: ~_regime_best.c.is_champion
        )
        with self._writing(record.run_id) as connection:
            connection.execute(statement, [values])

    def promote(self, candidate: RegimeBestRecord, promotion: PromotionRecord) -> None:
        """Crown ``candidate`` champion of its (specialty, regime), in one transaction: the old
        champion (if any) loses the flag and is RETIRED, the candidate's row is written with
        ``is_champion`` True and stage PAPER, and ``promotion`` (PROMOTED) is logged.

        The candidate's run (a Tune candidate: its experiment) must exist.
        """
        _check_decision(candidate, promotion, PromotionDecision.PROMOTED)
        crowned = replace(candidate, is_champion=True, stage=Stage.PAPER)
        now = self._db.now()
        values = to_row(crowned, updated_at=now)
        statement = self._db.upsert(_regime_best, _KEY, values)
        with self._writing(candidate.run_id) as connection:
            # The old champion first: the partial unique index allows one flagged row at a time.
            connection.execute(
                update(_regime_best)
                .where(
                    _regime_best.c.specialty == candidate.specialty,
                    _regime_best.c.regime == candidate.regime,
                    _regime_best.c.is_champion,
                    _regime_best.c.run_id != candidate.run_id,
                )
                .values(is_champion=False, stage=Stage.RETIRED.value, updated_at=now)
            )
            connection.execute(statement, [values])
            self._log(connection, promotion)
        logger.info(
            "champion of %s/%s: %s (was %s)",
            candidate.specialty,
            candidate.regime,
            candidate.model,
            promotion.incumbent,
        )

    def refuse(self, candidate: RegimeBestRecord, promotion: PromotionRecord) -> None:
        """Record a refused candidate, in one transaction: its row written by
        :meth:`set_regime_best` (not champion, its stage as given; a row that is the champion is
        left as it is) and ``promotion`` (REFUSED) logged."""
        _check_decision(candidate, promotion, PromotionDecision.REFUSED)
        with self._db.transaction() as connection:
            self.set_regime_best(candidate)
            self._log(connection, promotion)

    def set_stage(
        self, run_id: str, agent_id: str, specialty: str, regime: str, stage: str
    ) -> bool:
        """Move the champion of (specialty, regime) to ``stage`` if it is still the model
        ``run_id``/``agent_id``; returns whether a row changed. The live record's lifecycle step
        (``evolution.champions.next_stage``): who is champion changes only through
        :meth:`promote`."""
        try:
            wanted = Stage(stage)
        except ValueError:
            raise ValueError(f"stage must be one of {', '.join(Stage)}; got {stage!r}") from None
        statement = (
            update(_regime_best)
            .where(
                _regime_best.c.run_id == run_id,
                _regime_best.c.agent_id == agent_id,
                _regime_best.c.specialty == specialty,
                _regime_best.c.regime == regime,
                _regime_best.c.is_champion,
                _regime_best.c.stage != wanted.value,
            )
            .values(stage=wanted.value, updated_at=self._db.now())
        )
        with self._db.writing() as connection:
            changed = bool(connection.execute(statement).rowcount)
        if changed:
            logger.info(
                "champion %s/%s (%s/%s) is now %s", run_id, agent_id, specialty, regime, wanted
            )
        return changed

    def record_promotion(self, record: PromotionRecord) -> None:
        """Append a decision to the promotions log without touching any model's row (a refused
        challenger not better than its run's stored row); ``created_at`` stamped when None."""
        with self._db.writing() as connection:
            self._log(connection, record)

    # -- helpers ---------------------------------------------------------------------------------

    def _log(self, connection: Connection, record: PromotionRecord) -> None:
        values = to_row(record, created_at=record.created_at or self._db.now())
        del values["id"]
        connection.execute(insert(_promotions).values(values))

    @contextmanager
    def _writing(self, run_id: str) -> Iterator[Connection]:
        """A write of a row of run ``run_id``: the foreign key's refusal of a run that does not
        exist becomes ``NotFoundError`` naming it (and the transaction is rolled back)."""
        try:
            with self._db.transaction() as connection:
                yield connection
        except IntegrityError as exc:
            if not _is_foreign_key(exc):
                raise
            raise NotFoundError(f"run_id {run_id!r} does not exist; create_run first") from exc


def _is_foreign_key(exc: IntegrityError) -> bool:
    # PostgreSQL says so by SQLSTATE (23503 foreign_key_violation), SQLite only in the message.
    return getattr(exc.orig, "sqlstate", None) == "23503" or "FOREIGN KEY" in str(exc.orig)


def _check_decision(
    candidate: RegimeBestRecord, promotion: PromotionRecord, decision: PromotionDecision
) -> None:
    verb = "promote" if decision == PromotionDecision.PROMOTED else "refuse"
    if promotion.decision != decision:
        raise ValueError(
            f"{verb}: PromotionRecord.decision must be {decision}; got {promotion.decision.value!r}"
        )
    if (promotion.specialty, promotion.regime) != (candidate.specialty, candidate.regime):
        raise ValueError(
            f"{verb}: the promotion is for ({promotion.specialty}, {promotion.regime}); "
            f"the candidate is for ({candidate.specialty}, {candidate.regime})"
        )
    if promotion.challenger != candidate.model:
        raise ValueError(
            f"{verb}: PromotionRecord.challenger must be the candidate {candidate.model!r}; "
            f"got {promotion.challenger!r}"
        )
    if decision == PromotionDecision.REFUSED and candidate.is_champion:
        raise ValueError(f"refuse: the candidate {candidate.model!r} must not be a champion")
