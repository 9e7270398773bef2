"""One writer of champions and promotions (``store.champions.ChampionStore``), on both backends.

Every path that changes a row of ``regime_best_models`` or ``promotions`` (the Mother's best per
regime through ``RunStore.record_generation_outcome``, crowning, refusals, serving's feedback
moving a champion's stage) is one of ``ChampionStore``'s writes, so the invariants are kept in one
place: one champion per (specialty, regime) across every run, a champion is made by ``promote``
only (the old one retired in the same transaction, the decision logged), never overwritten by a
later best-of-run row, and a stage moves only for the model that is still the champion.
"""

from __future__ import annotations

import ast
import re
from dataclasses import replace
from pathlib import Path

import pytest

from store.champions import ChampionStore
from store.database import Database
from store.db import Store
from store.errors import NotFoundError
from store.models import Promotion, RegimeBestModel
from store.records.champions import (
    PromotionDecision,
    PromotionRecord,
    RegimeBestRecord,
    Stage,
)
from tests.store.rows import Clock, clocked, count_rows
from tests.store.test_runs_contract import SPECIALTY, _generation, _lineage, _run

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("market", "store", "agents", "evolution", "tuning", "cluster", "serving", "cli")
REGIME = "bull_trending"
RUN_A = "evo-20240401-a"
RUN_B = "evo-20240401-b"


@pytest.fixture
def champ_store(store: Store, clock: Clock) -> Store:
    return clocked(store, clock)


def _row(run_id: str, agent_id: str, sharpe: float, **changes: object) -> RegimeBestRecord:
    return replace(
        RegimeBestRecord(run_id, SPECIALTY, REGIME, agent_id, sharpe, {"sharpe": sharpe}), **changes
    )


def _decision(
    candidate: RegimeBestRecord,
    incumbent: RegimeBestRecord | None,
    decision: PromotionDecision = PromotionDecision.PROMOTED,
) -> PromotionRecord:
    return PromotionRecord(
        specialty=candidate.specialty,
        regime=candidate.regime,
        decision=decision,
        challenger=candidate.model,
        incumbent=None if incumbent is None else incumbent.model,
        reason="test",
        before={},
        after={"sharpe": candidate.sharpe},
        dsr=0.97,
        n_trials=3,
        margin=0.25,
    )


def _writers_of(*names: str) -> set[str]:
    """The modules of the packages that name one of the ORM classes ``names`` (or their tables)."""
    found = set()
    tables = "|".join((RegimeBestModel.__tablename__, Promotion.__tablename__))
    statement = re.compile(rf"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+({tables})\b", re.IGNORECASE)
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if relative.startswith("store/migrations/") or relative == "store/models.py":
                continue  # the schema itself
            for node in ast.walk(ast.parse(path.read_text(), relative)):
                named = (isinstance(node, ast.Name) and node.id in names) or (
                    isinstance(node, ast.alias) and node.name in names
                )
                sql = isinstance(node, ast.Constant) and isinstance(node.value, str)
                sql = sql and statement.search(node.value) is not None
                if named or sql:
                    found.add(relative)
    return found


def test_only_the_champion_store_touches_the_champions_tables() -> None:
    assert _writers_of("RegimeBestModel", "Promotion") == {"store/champions.py"}


def test_every_path_keeps_one_champion(champ_store: Store, store: Store) -> None:
    runs, champions = champ_store.runs, champ_store.champions
    for run_id in (RUN_A, RUN_B):
        runs.create_run(_run(run_id))
        runs.upsert_agents(list(_lineage(run_id).values()))

    # The Mother's path: the best of a generation is a candidate row, never a champion.
    first = _row(RUN_A, "ta-g000-000", 1.1)
    runs.record_generation_outcome(_generation(RUN_A, 0), regime_best=[first])
    assert champions.champions() == []
    with pytest.raises(ValueError, match=r"is_champion must be False; got True: champions are"):
        champions.set_regime_best(replace(first, is_champion=True))

    # Crowning: the one way to make a champion; PAPER, logged.
    champions.promote(first, _decision(first, None))
    (crowned,) = champions.champions()
    assert (crowned.model, crowned.stage, crowned.is_champion) == (first.model, Stage.PAPER, True)

    # A later generation's better best-of-run does not overwrite the champion row.
    runs.record_generation_outcome(
        _generation(RUN_A, 1), regime_best=[_row(RUN_A, "ta-g001-000", 3.0)]
    )
    assert champions.champions() == [crowned]

    # Serving's feedback path: the stage moves for the champion only, by the same repository.
    assert champions.set_stage(RUN_A, "ta-g000-000", SPECIALTY, REGIME, Stage.MATURE)
    assert not champions.set_stage(RUN_A, "ta-g009-009", SPECIALTY, REGIME, Stage.DECAY)
    with pytest.raises(ValueError, match=r"stage must be one of DISCOVERY, .*; got 'LIVE'"):
        champions.set_stage(RUN_A, "ta-g000-000", SPECIALTY, REGIME, "LIVE")

    # A refusal writes its candidate row and the log, and leaves the champion alone.
    refused = _row(RUN_B, "ta-g000-001", 0.4, stage=Stage.VALIDATION)
    champions.refuse(refused, _decision(refused, crowned, PromotionDecision.REFUSED))
    assert [c.model for c in champions.champions()] == [first.model]

    # A challenger from another run dethrones it in one transaction: one champion, ever.
    second = _row(RUN_B, "ta-g000-002", 2.0)
    champions.promote(second, _decision(second, crowned))
    assert [c.model for c in champions.champions()] == [second.model]
    old = {r.model: r for r in champions.regime_best()}[first.model]
    assert (old.is_champion, old.stage) == (False, Stage.RETIRED)
    assert not champions.set_stage(RUN_A, "ta-g000-000", SPECIALTY, REGIME, Stage.DECAY)
    assert count_rows(store, RegimeBestModel, is_champion=True) == 1
    assert [(p.decision, p.challenger) for p in champions.promotions()] == [
        (PromotionDecision.PROMOTED, first.model),
        (PromotionDecision.REFUSED, refused.model),
        (PromotionDecision.PROMOTED, second.model),
    ]

    # A crowning that fails part-way (its run does not exist) leaves everything as it was.
    ghost = _row("evo-missing", "ta-g000-000", 9.0)
    with pytest.raises(NotFoundError, match=r"run_id 'evo-missing' does not exist"):
        champions.promote(ghost, _decision(ghost, second))
    with pytest.raises(NotFoundError, match=r"run_id 'evo-missing' does not exist"):
        champions.set_regime_best(ghost)
    assert [c.model for c in champions.champions()] == [second.model]
    assert count_rows(store, Promotion) == 3


def test_the_repositories_share_one_database(store: Store) -> None:
    """Every repository of a store works on its one database and joins its transactions."""
    repositories = (store.candles, store.regimes, store.runs, store.champions, store.training)
    assert all(repo.database is store.database for repo in (*repositories, store.trades))
    with pytest.raises(RuntimeError, match="rolled back"), store.database.transaction():
        store.runs.create_run(_run(RUN_A))
        store.champions.set_regime_best(_row(RUN_A, "ta-g000-000", 1.0))
        raise RuntimeError("rolled back")
    assert store.runs.list_runs() == [] and store.champions.regime_best() == []
    with pytest.raises(TypeError, match=r"ChampionStore needs a store.database.Database; got"):
        ChampionStore(store)  # type: ignore[arg-type]
    assert isinstance(store.database, Database)
