"""The RunStore contract (runs, agents, generations, kills, best model per regime) on SQLite and
PostgreSQL.

The population is real in every part a store sees: genomes of the technical_analyst space drawn
from a root seed and bred with the DEAP operators (their operator records and seeds), and scores
from real backtests on Binance BTC/USDT 1h, January and February 2020: an SMA cross whose windows
come from each genome stands in for the trained model (training itself is tested in tests/agents),
with its metrics per regime of the store's own regime rules.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import numpy as np
import pytest

from agents.genome import Genome
from agents.specialties import get_specialty
from evolution.lineage import LineageRecord, family_tree, new_agent_id
from evolution.operators import crossover_traced, mutate_traced
from evolution.seeds import child_seed, initial_population
from market.backtest import backtest
from market.baselines import sma_cross
from market.regimes import classify_regimes
from store import migrate
from store.champions import ChampionStore
from store.db import Store
from store.errors import NotFoundError
from store.models import Agent, Generation, Kill, MarketData, RegimeBestModel, Run
from store.records.champions import RegimeBestRecord
from store.records.population import (
    ANCESTOR,
    AgentRecord,
    GenerationRecord,
    KillRecord,
    RunRecord,
)
from store.runs import RunStore
from tests.store.conftest import BTC_1H, FEB_2020, JAN_2020, MAR_2020, real_candles
from tests.store.rows import Clock, clocked, count_rows, record_content, table_names

SPECIALTY = "technical_analyst"
SPACE = get_specialty(SPECIALTY).space
ROOT_SEED = 20240401
CONFIG = {
    "run": {"symbols": ["BTC/USDT"], "timeframe": "1h", "generations": 3},
    "population": {SPECIALTY: {"children": 4}},
    "evolution": {"selection": "nsga2", "mutation": {"eta": 20.0, "indpb": 0.2}},
}
SETTINGS = {"champions": {"dsr_threshold": 0.5}, "regimes": {"window": "7d", "rules": []}}
CONFIG_HASH = "5f1c0f0b8e7d2a61c3b9e4d7a8f6e5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c"
OTHER_HASH = "0" * 64
DATASET_DIGEST = "9b2e4f6a8c0d1e3f5a7b9c1d3e5f7a9b1c3d5e7f9a1b3c5d7e9f1a3b5c7d9e1f"
POPULATION_TABLES = {"runs", "agents", "generations", "kills", "regime_best_models"}


@pytest.fixture
def runs(store: Store, clock: Clock) -> RunStore:
    return clocked(store, clock).runs


def _run(run_id: str = "evo-20240401-a", config_hash: str = CONFIG_HASH) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        config=CONFIG,
        config_hash=config_hash,
        root_seed=ROOT_SEED,
        generations_planned=3,
        dataset_digests={SPECIALTY: DATASET_DIGEST},
        settings=SETTINGS,
    )


# -- a real population ---------------------------------------------------------------------------


@cache
def _candles_and_regimes() -> tuple[Any, np.ndarray]:
    candles = real_candles(BTC_1H, JAN_2020, MAR_2020)
    return candles, classify_regimes(candles, "1h")


def _scored(record: AgentRecord) -> AgentRecord:
    """The child with an out-of-sample result: its genome's SMA cross on real BTC 1h."""
    genes = Genome.from_json(record.genome_json).as_dict()
    fast = int(genes["lookback"]) + 1
    slow = fast + 12 + int(genes["horizon"])
    candles, regimes = _candles_and_regimes()
    result = backtest(candles, sma_cross(candles, fast, slow), timeframe="1h")
    metrics = result.metrics()
    return replace(
        record,
        status="OK",
        objectives=(metrics["sharpe"], -metrics["max_drawdown"], metrics["hit_rate"]),
        sharpe=metrics["sharpe"],
        max_drawdown=metrics["max_drawdown"],
        hit_rate=metrics["hit_rate"],
        metrics=metrics,
        per_regime=result.metrics_by_regime(regimes),
        train_seconds=2.5 + fast / 100,
        checkpoint_path=f"checkpoints/{record.agent_id}_gen{record.generation}.pt",
        checkpoint_sha256=f"{record.seed:064x}"[-64:],
    )


def _birth(
    run_id: str, generation: int, index: int, genome: Genome, parents: tuple[str, ...] = (),
    operators: tuple[str, ...] = (),
) -> AgentRecord:  # fmt: skip
    return AgentRecord(
        run_id=run_id,
        agent_id=new_agent_id(SPECIALTY, generation, index),
        specialty=SPECIALTY,
        generation=generation,
        genome_json=genome.to_json(),
        genome_digest=genome.digest(),
        seed=child_seed(ROOT_SEED, generation, index, specialty=SPECIALTY),
        parents=parents,
        operators=operators,
        dataset_digest=DATASET_DIGEST,
        config_hash=CONFIG_HASH,
    )


@cache
def _lineage(run_id: str) -> dict[str, AgentRecord]:
    """Three generations bred by the real operators, with a shared ancestor and an elite.

    g0: ta-g000-000..003 sampled. g1: 000 = cx(g0-0, g0-1), 001 = cx(g0-1, g0-2) (g0-1 shared),
    002 = mut(g0-3). g2: 000 = cx(g1-0, g1-1), 001 = mut(g0-3) (an elite that outlived its
    generation), 002 = cx(g1-2, g0-2).
    """
    g0 = [
        _birth(run_id, 0, i, genome)
        for i, genome in enumerate(initial_population(SPACE, 4, ROOT_SEED))
    ]

    def genome(record: AgentRecord) -> Genome:
        return Genome.from_json(record.genome_json)

    def rng(generation: int, index: int) -> np.random.Generator:  # the seed stored is the seed used
        return np.random.default_rng(child_seed(ROOT_SEED, generation, index, specialty=SPECIALTY))

    def cross(generation: int, index: int, a: AgentRecord, b: AgentRecord) -> AgentRecord:
        stream = rng(generation, index)
        first, _ = crossover_traced(genome(a), genome(b), SPACE, stream)
        mutated = mutate_traced(first.genome, SPACE, stream)
        return _birth(
            run_id, generation, index, mutated.genome, (a.agent_id, b.agent_id),
            first.operators + mutated.operators,
        )  # fmt: skip

    def mutant(generation: int, index: int, parent: AgentRecord) -> AgentRecord:
        child = mutate_traced(genome(parent), SPACE, rng(generation, index), indpb=0.5)
        return _birth(run_id, generation, index, child.genome, (parent.agent_id,), child.operators)

    g1 = [cross(1, 0, g0[0], g0[1]), cross(1, 1, g0[1], g0[2]), mutant(1, 2, g0[3])]
    g2 = [cross(2, 0, g1[0], g1[1]), mutant(2, 1, g0[3]), cross(2, 2, g1[2], g0[2])]
    return {record.agent_id: _scored(record) for record in g0 + g1 + g2}


def _pending(record: AgentRecord) -> AgentRecord:
    return replace(
        record, status="PENDING", objectives=(), sharpe=None, max_drawdown=None, hit_rate=None,
        metrics={}, per_regime={}, train_seconds=None, checkpoint_path=None,
        checkpoint_sha256=None,
    )  # fmt: skip


def _generation(run_id: str, generation: int, **changes: Any) -> GenerationRecord:
    born = [a for a in _lineage(run_id).values() if a.generation == generation]
    best = max(born, key=lambda a: a.sharpe or -math.inf)
    values: dict[str, Any] = {
        "born": len(born),
        "evaluated": len(born),
        "failed": 0,
        "killed": 0,
        "alive": len(born),
        "best_fitness": best.sharpe,
        "median_fitness": float(np.median([a.sharpe or 0.0 for a in born])),
        "best_agent_id": best.agent_id,
        "hall_of_fame": (best.agent_id,),
    }
    values.update(changes)
    return GenerationRecord(run_id=run_id, generation=generation, specialty=SPECIALTY, **values)


# -- runs ----------------------------------------------------------------------------------------


def test_run_round_trip_listing_and_updates(runs: RunStore, clock: Clock) -> None:
    created = runs.create_run(_run())
    assert record_content(created) == record_content(_run())
    assert created.created_at == created.updated_at == clock.now
    assert created.config == CONFIG and created.dataset_digests == {SPECIALTY: DATASET_DIGEST}
    assert created.settings == SETTINGS  # the rest of the run's config (migration 0007)
    assert runs.get_run("evo-20240401-a") == created
    assert runs.get_run("nope") is None

    clock.tick()
    runs.create_run(_run("evo-20240401-b"))
    assert [run.run_id for run in runs.list_runs()] == ["evo-20240401-b", "evo-20240401-a"]

    later = clock.tick()
    updated = runs.update_run("evo-20240401-a", generations_done=1)
    assert (updated.status, updated.generations_done) == ("running", 1)
    assert (updated.created_at, updated.updated_at) == (created.created_at, later)
    clock.tick()
    assert runs.update_run("evo-20240401-a", generations_done=1) == updated  # unchanged: no stamp
    finished = runs.update_run(
        "evo-20240401-a", status="finished", generations_done=3,
        dataset_digests={SPECIALTY: DATASET_DIGEST, "volume_hunter": OTHER_HASH},
    )  # fmt: skip
    assert runs.get_run("evo-20240401-a") == finished
    assert finished.status == "finished" and finished.dataset_digests["volume_hunter"] == OTHER_HASH


def test_create_run_is_idempotent_and_refuses_another_config(runs: RunStore, store: Store) -> None:
    first = runs.create_run(_run())
    runs.update_run(first.run_id, generations_done=2)
    again = runs.create_run(_run())  # a resume: the stored run, progress kept
    assert again.generations_done == 2 and again.created_at == first.created_at
    assert count_rows(store, Run) == 1
    with pytest.raises(
        ValueError,
        match=rf"run_id 'evo-20240401-a' already exists with config_hash '{CONFIG_HASH}'; "
        rf"got '{OTHER_HASH}'",
    ):
        runs.create_run(_run(config_hash=OTHER_HASH))
    assert runs.get_run(first.run_id) == again and count_rows(store, Run) == 1


def test_run_values_are_checked(runs: RunStore) -> None:
    runs.create_run(_run())
    with pytest.raises(
        ValueError, match=r"status must be one of running, finished, failed; got 'done'"
    ):
        runs.update_run("evo-20240401-a", status="done")
    with pytest.raises(
        ValueError, match=r"generations_done must be a non-negative integer; got -1"
    ):
        runs.update_run("evo-20240401-a", generations_done=-1)
    with pytest.raises(NotFoundError, match=r"run_id 'evo-missing' does not exist"):
        runs.update_run("evo-missing", status="failed")
    with pytest.raises(ValueError, match=r"RunRecord.root_seed must be below 2\*\*63"):
        replace(_run(), root_seed=2**63)
    assert runs.get_run("evo-20240401-a") == runs.list_runs()[0]


# -- agents --------------------------------------------------------------------------------------


def test_agent_upserts_are_idempotent_and_keep_results(
    runs: RunStore, store: Store, clock: Clock
) -> None:
    run_id = runs.create_run(_run()).run_id
    scored = [a for a in _lineage(run_id).values() if a.generation == 0]
    births = [_pending(a) for a in scored]
    runs.upsert_agents(births)
    born_at = clock.now
    clock.tick()
    runs.upsert_agents(births)  # the resume rewrites the births: nothing changes
    assert count_rows(store, Agent) == 4
    stored = runs.agents(run_id)
    assert [record_content(a) for a in stored] == [record_content(a) for a in births]
    assert {(a.created_at, a.updated_at) for a in stored} == {(born_at, born_at)}

    scored_at = clock.tick()
    for record in scored:
        runs.upsert_agent(record)
    clock.tick()
    runs.upsert_agents(scored)
    runs.upsert_agents(births)  # a PENDING birth never overwrites a result
    assert count_rows(store, Agent) == 4
    stored = runs.agents(run_id)
    assert [record_content(a) for a in stored] == [record_content(a) for a in scored]
    assert {(a.created_at, a.updated_at) for a in stored} == {(born_at, scored_at)}
    first = runs.require_agent("ta-g000-000", run_id=run_id)
    assert first.status == "OK" and first.sharpe == scored[0].metrics["sharpe"]
    assert first.per_regime.keys() == {
        "bull_trending",
        "bear_trending",
        "volatile_ranging",
        "calm_ranging",
        "",
    }
    assert first.per_regime["bull_trending"] == scored[0].per_regime["bull_trending"]

    # A FAILED child is a result too: NaN scores are kept in JSON, sortable columns become NULL.
    failed = replace(
        scored[1], status="FAILED", reason="loss became NaN at epoch 3",
        objectives=(math.nan, math.nan, math.nan), sharpe=math.nan, hit_rate=math.inf,
        metrics={"sharpe": math.nan, "sortino": math.inf},
    )  # fmt: skip
    runs.upsert_agent(failed)
    again = runs.require_agent(failed.agent_id, run_id=run_id)
    assert (again.status, again.reason, again.sharpe, again.hit_rate) == (
        "FAILED", "loss became NaN at epoch 3", None, None,
    )  # fmt: skip
    assert all(math.isnan(value) for value in again.objectives)
    assert math.isnan(again.metrics["sharpe"]) and again.metrics["sortino"] == math.inf
    assert count_rows(store, Agent) == 4


def test_an_agents_birth_never_changes(runs: RunStore, store: Store) -> None:
    run_id = runs.create_run(_run()).run_id
    lineage = _lineage(run_id)
    runs.upsert_agents(list(lineage.values()))
    child = lineage["ta-g001-000"]
    other = Genome.from_json(lineage["ta-g001-001"].genome_json)
    with pytest.raises(
        ValueError,
        match=rf"agent 'ta-g001-000' of run '{run_id}' was born with genome_digest "
        rf"'{child.genome_digest}'; got '{other.digest()}'",
    ):
        runs.upsert_agents(
            [
                replace(lineage["ta-g001-001"], sharpe=9.0),
                replace(child, genome_json=other.to_json(), genome_digest=other.digest()),
            ]
        )
    with pytest.raises(ValueError, match=r"was born with seed \d+; got 7"):
        runs.upsert_agent(replace(child, seed=7))
    # The batch was refused whole: its first, valid, record was not written either.
    assert runs.require_agent("ta-g001-001", run_id=run_id) == runs.agents(run_id, generation=1)[1]
    assert runs.require_agent("ta-g001-001", run_id=run_id).sharpe != 9.0
    with pytest.raises(ValueError, match=r"genome_digest of 'ta-g001-000' must be the SHA-256"):
        replace(child, genome_digest=OTHER_HASH)
    assert count_rows(store, Agent) == len(lineage)


def test_agent_lookups_name_the_id_and_the_run(runs: RunStore) -> None:
    run_a = runs.create_run(_run()).run_id
    run_b = runs.create_run(_run("evo-20240401-b")).run_id
    runs.upsert_agents(list(_lineage(run_a).values()))
    assert runs.agent("ta-g002-000") == runs.agent("ta-g002-000", run_id=run_a)
    assert runs.agent("ta-g009-000") is None
    with pytest.raises(NotFoundError, match=rf"agent_id 'ta-g009-000' is not in run '{run_a}'"):
        runs.require_agent("ta-g009-000", run_id=run_a)
    with pytest.raises(NotFoundError, match=r"agent_id 'ta-g009-000' is not in any run"):
        runs.require_agent("ta-g009-000")
    with pytest.raises(
        NotFoundError, match=r"run_id 'evo-missing' does not exist; create_run first"
    ):
        runs.upsert_agent(replace(_lineage(run_a)["ta-g000-000"], run_id="evo-missing"))

    # The same seed gives the same ids in another run: the run id tells them apart.
    runs.upsert_agents(list(_lineage(run_b).values()))
    with pytest.raises(
        ValueError,
        match=rf"agent_id 'ta-g002-000' is in several runs \('{run_a}', '{run_b}'\); pass run_id",
    ):
        runs.agent("ta-g002-000")
    assert runs.require_agent("ta-g002-000", run_id=run_b).run_id == run_b
    assert len(runs.agents(run_a)) == len(runs.agents(run_b)) == 10


def test_agents_filter_by_generation_specialty(runs: RunStore) -> None:
    run_id = runs.create_run(_run()).run_id
    runs.upsert_agents(list(reversed(_lineage(run_id).values())))
    every = runs.agents(run_id)
    assert [a.agent_id for a in every] == sorted(_lineage(run_id))
    assert [a.agent_id for a in runs.agents(run_id, generation=1)] == [
        "ta-g001-000", "ta-g001-001", "ta-g001-002",
    ]  # fmt: skip
    assert runs.agents(run_id, specialty=SPECIALTY) == every
    assert runs.agents(run_id, specialty="volume_hunter") == []
    assert runs.agents("evo-missing") == []


# -- kills and who is alive ------------------------------------------------------------------------


def test_kill_sets_killed_generation_and_alive_at(runs: RunStore, store: Store) -> None:
    run_id = runs.create_run(_run()).run_id
    lineage = _lineage(run_id)
    runs.upsert_agents(list(lineage.values()))
    kill = KillRecord(run_id, "ta-g000-002", 0, "LOW_HIT_RATE", "hit_rate 0.47 < 0.5")
    runs.record_kill(kill)
    runs.record_kill(kill)  # a resume writes it again
    runs.record_kills(
        [
            KillRecord(run_id, "ta-g001-001", 1, "DOMINATED", "front 3 of 3, score <= q0.25"),
            KillRecord(run_id, "ta-g002-002", 2, "FAILED", "loss became NaN at epoch 3"),
        ]
    )
    assert count_rows(store, Kill) == 3
    assert [(k.agent_id, k.generation, k.reason) for k in runs.kills(run_id)] == [
        ("ta-g000-002", 0, "LOW_HIT_RATE"),
        ("ta-g001-001", 1, "DOMINATED"),
        ("ta-g002-002", 2, "FAILED"),
    ]
    assert runs.require_agent("ta-g000-002", run_id=run_id).killed_generation == 0
    assert runs.require_agent("ta-g001-001", run_id=run_id).killed_generation == 1
    assert runs.require_agent("ta-g000-000", run_id=run_id).killed_generation is None

    def alive(g: int) -> list[str]:
        return [a.agent_id for a in runs.agents(run_id, alive_at=g)]

    # Killed on generation g's scores: not alive at g. Born after g: not alive at g.
    assert alive(0) == ["ta-g000-000", "ta-g000-001", "ta-g000-003"]
    assert alive(1) == ["ta-g000-000", "ta-g000-001", "ta-g000-003", "ta-g001-000", "ta-g001-002"]
    assert alive(2) == [
        "ta-g000-000", "ta-g000-001", "ta-g000-003", "ta-g001-000", "ta-g001-002",
        "ta-g002-000", "ta-g002-001",
    ]  # fmt: skip
    assert [a.agent_id for a in runs.agents(run_id, generation=0, alive_at=1)] == [
        "ta-g000-000", "ta-g000-001", "ta-g000-003",
    ]  # fmt: skip

    # Rewriting the agent (a later result) leaves its death as recorded.
    runs.upsert_agent(replace(lineage["ta-g000-002"], train_seconds=3.0))
    assert runs.require_agent("ta-g000-002", run_id=run_id).killed_generation == 0
    # A corrected kill updates in place.
    runs.record_kill(replace(kill, generation=1, reason="DOMINATED", detail="re-scored"))
    assert runs.require_agent("ta-g000-002", run_id=run_id).killed_generation == 1
    assert runs.kills(run_id)[0].reason == "DOMINATED" and count_rows(store, Kill) == 3

    with pytest.raises(
        ValueError,
        match=r"kill of agent_id 'ta-g002-000': generation must be at or after its birth \(2\); got 1",
    ):
        runs.record_kill(KillRecord(run_id, "ta-g002-000", 1, "DOMINATED"))
    with pytest.raises(
        NotFoundError, match=rf"kill of agent_id 'ta-g009-000': run '{run_id}' has no such agent"
    ):
        runs.record_kill(KillRecord(run_id, "ta-g009-000", 2, "FAILED"))
    with pytest.raises(
        ValueError,
        match=r"KillRecord.reason must be one of FAILED, LOW_HIT_RATE, DOMINATED; got 'OLD'",
    ):
        KillRecord(run_id, "ta-g000-000", 0, "OLD")
    assert count_rows(store, Kill) == 3


# -- lineage -------------------------------------------------------------------------------------


def test_ancestors_walk_back_to_generation_zero_each_once(runs: RunStore) -> None:
    run_id = runs.create_run(_run()).run_id
    lineage = _lineage(run_id)
    runs.upsert_agents(list(lineage.values()))

    def ids(agent_id: str) -> list[str]:
        return [a.agent_id for a in runs.ancestors(agent_id, run_id=run_id)]

    # g0-1 is a parent of both g1-0 and g1-1: listed once.
    assert ids("ta-g002-000") == [
        "ta-g001-000", "ta-g001-001", "ta-g000-000", "ta-g000-001", "ta-g000-002",
    ]  # fmt: skip
    assert ids("ta-g002-001") == ["ta-g000-003"]  # the elite's child skips generation 1
    # Latest generation first, then in order of discovery: g0-2 is a direct parent.
    assert ids("ta-g002-002") == ["ta-g001-002", "ta-g000-002", "ta-g000-003"]
    assert ids("ta-g001-001") == ["ta-g000-001", "ta-g000-002"]
    assert ids("ta-g000-000") == []
    ancestors = runs.ancestors("ta-g002-000")
    assert [record_content(a) for a in ancestors] == [
        record_content(lineage[a]) for a in ids("ta-g002-000")
    ]
    assert ancestors[0].operators == lineage["ta-g001-000"].operators
    assert ancestors[0].operators[0].startswith("cxSimulatedBinaryBounded(")

    # The same order as the evolution package's in-memory family tree.
    records = [
        LineageRecord(
            a.agent_id, a.generation, a.specialty, a.genome_json, a.parents, a.operators, a.seed
        )
        for a in lineage.values()
    ]
    for agent_id in lineage:
        tree = [r.agent_id for r in family_tree(records, agent_id)[1:]]
        assert ids(agent_id) == tree, agent_id

    with pytest.raises(NotFoundError, match=rf"agent_id 'ta-g003-000' is not in run '{run_id}'"):
        runs.ancestors("ta-g003-000", run_id=run_id)


def test_ancestors_stay_in_their_run_and_end_at_missing_parents(runs: RunStore) -> None:
    run_a = runs.create_run(_run()).run_id
    run_b = runs.create_run(_run("evo-20240401-b")).run_id
    lineage_a, lineage_b = _lineage(run_a), _lineage(run_b)
    runs.upsert_agents(list(lineage_a.values()))
    # Run b holds generations 1 and 2 only (its generation 0 was never written).
    runs.upsert_agents([a for a in lineage_b.values() if a.generation > 0])
    assert [a.agent_id for a in runs.ancestors("ta-g002-000", run_id=run_b)] == [
        "ta-g001-000", "ta-g001-001",
    ]  # fmt: skip
    assert {a.run_id for a in runs.ancestors("ta-g002-000", run_id=run_a)} == {run_a}


def test_a_carried_generation_0_child_walks_on_into_the_run_it_came_from(
    runs: RunStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The living loop's retrain starts generation 0 from an earlier run's elite: the child's one
    parent (operators ``(ANCESTOR,)``) is that run's agent, and lineage goes on there."""
    run_a = runs.create_run(_run()).run_id
    run_b = runs.create_run(_run("evo-20240401-b")).run_id
    lineage_a = _lineage(run_a)
    runs.upsert_agents(list(lineage_a.values()))
    elite = lineage_a["ta-g002-000"]
    carried = _birth(
        run_b, 0, 0, Genome.from_json(elite.genome_json), (elite.agent_id,), (ANCESTOR,)
    )
    sampled = _birth(run_b, 0, 1, initial_population(SPACE, 2, ROOT_SEED + 1)[1])
    child = mutate_traced(Genome.from_json(carried.genome_json), SPACE, np.random.default_rng(7))
    bred = _birth(run_b, 1, 0, child.genome, (carried.agent_id,), child.operators)
    runs.upsert_agents([_scored(carried), _scored(sampled), _scored(bred)])

    def walk(agent_id: str, run_id: str) -> list[tuple[str, str]]:
        return [(a.run_id, a.agent_id) for a in runs.ancestors(agent_id, run_id=run_id)]

    elite_and_its_own = ["ta-g002-000", "ta-g001-000", "ta-g001-001", "ta-g000-000", "ta-g000-001",
                         "ta-g000-002"]  # fmt: skip
    in_a = [(run_a, agent_id) for agent_id in elite_and_its_own]
    # The later run's ancestors first (it is nearer), then the elite and its own, nearest first.
    assert walk("ta-g001-000", run_b) == [(run_b, "ta-g000-000"), *in_a]
    assert walk("ta-g000-000", run_b) == in_a
    assert walk("ta-g000-001", run_b) == []

    # An id several other runs hold, none of which it names, ends the walk (logged).
    run_c = runs.create_run(_run("evo-20240401-c")).run_id
    runs.upsert_agents(list(_lineage(run_c).values()))
    assert walk("ta-g000-000", run_b) == []
    assert "its ancestor ta-g002-000 is in 2 runs, none named by the id" in caplog.text

    # Only a carried child may name a parent in generation 0.
    with pytest.raises(ValueError, match=r"parents of 'ta-g000-000' must be empty in generation 0"):
        replace(carried, operators=("mutPolynomialBounded(eta=20,indpb=0.2)[lr]",))
    with pytest.raises(ValueError, match=r"must be empty in generation 0 .*got \('a', 'b'\)"):
        replace(carried, parents=("a", "b"))


# -- generations ---------------------------------------------------------------------------------


def _population_counts(store: Store) -> tuple[int, int, int, int]:
    return (
        count_rows(store, Agent),
        count_rows(store, Kill),
        count_rows(store, Generation),
        count_rows(store, RegimeBestModel),
    )


def test_generation_outcome_is_one_transaction(runs: RunStore, store: Store) -> None:
    run_id = runs.create_run(_run()).run_id
    lineage = _lineage(run_id)
    g0 = [a for a in lineage.values() if a.generation == 0]
    g1_births = [_pending(a) for a in lineage.values() if a.generation == 1]
    best = RegimeBestRecord(run_id, SPECIALTY, "bull_trending", "ta-g000-001", 2.1)
    bad_kill = KillRecord(run_id, "ta-g009-000", 0, "FAILED")
    with pytest.raises(NotFoundError, match=r"kill of agent_id 'ta-g009-000'"):
        runs.record_generation_outcome([_generation(run_id, 0)], g0, [bad_kill], [best])
    assert _population_counts(store) == (0, 0, 0, 0)

    with pytest.raises(RuntimeError, match="driver killed"), runs.transaction():
        runs.upsert_agents(g0)
        runs.record_kill(KillRecord(run_id, "ta-g000-002", 0, "LOW_HIT_RATE"))
        runs.record_generation(_generation(run_id, 0, killed=1, alive=3))
        ChampionStore(runs.database).set_regime_best(best)
        runs.update_run(run_id, generations_done=1)
        # Reads inside the transaction see its writes.
        assert len(runs.agents(run_id, alive_at=0)) == 3
        raise RuntimeError("driver killed mid-generation")
    assert _population_counts(store) == (0, 0, 0, 0)
    assert runs.require_run(run_id).generations_done == 0

    # As the Mother closes a generation: the scored children, the next generation's births, the
    # kills, one summary per specialty and the best per regime; the run's progress beside them.
    kill = KillRecord(run_id, "ta-g000-002", 0, "LOW_HIT_RATE", "hit_rate below 0.5")
    outcome = _generation(run_id, 0, killed=1, alive=3, born=4)
    for _ in range(2):  # the second time is the resume rewriting what it cannot know was written
        with runs.transaction():
            runs.record_generation_outcome([outcome], g0 + g1_births, [kill], [best])
            runs.update_run(run_id, generations_done=1)
    assert _population_counts(store) == (7, 1, 1, 1)
    assert runs.generations(run_id) == [
        replace(outcome, finished_at=runs.generations(run_id)[0].finished_at)
    ]
    assert [a.status for a in runs.agents(run_id, generation=1)] == ["PENDING"] * 3
    assert runs.require_run(run_id).generations_done == 1
    with pytest.raises(ValueError, match=r"the kill of 'ta-g000-000' has run_id 'evo-x'"):
        runs.record_generation_outcome(
            outcome, g0, [KillRecord("evo-x", "ta-g000-000", 0, "FAILED")]
        )
    with pytest.raises(ValueError, match=r"needs at least one GenerationRecord"):
        runs.record_generation_outcome([], g0)
    assert _population_counts(store) == (7, 1, 1, 1)


def test_generations_upsert_in_place_in_order(runs: RunStore, store: Store, clock: Clock) -> None:
    run_id = runs.create_run(_run()).run_id
    runs.upsert_agents(list(_lineage(run_id).values()))
    first_at = clock.now
    for generation in (2, 0, 1):
        runs.record_generation(_generation(run_id, generation))
    clock.tick()
    runs.record_generation(_generation(run_id, 1))  # unchanged: finished_at stays
    stored = runs.generations(run_id)
    assert [(g.generation, g.specialty) for g in stored] == [
        (0, SPECIALTY),
        (1, SPECIALTY),
        (2, SPECIALTY),
    ]
    assert {g.finished_at for g in stored} == {first_at}
    assert stored[0].best_fitness == max(
        a.sharpe or -math.inf for a in runs.agents(run_id, generation=0)
    )

    corrected_at = clock.tick()
    runs.record_generation(
        _generation(run_id, 1, failed=1, evaluated=2, hall_of_fame=("ta-g001-000", "ta-g001-002"))
    )
    again = runs.generations(run_id)[1]
    assert (again.failed, again.evaluated, again.hall_of_fame) == (
        1,
        2,
        ("ta-g001-000", "ta-g001-002"),
    )
    assert again.finished_at == corrected_at and count_rows(store, Generation) == 3
    # A generation where no child was usable has no fitness at all.
    runs.record_generation(
        _generation(run_id, 2, best_fitness=math.nan, median_fitness=None, best_agent_id=None)
    )
    assert runs.generations(run_id)[2].best_fitness is None
    with pytest.raises(NotFoundError, match=r"run_id 'evo-missing' does not exist"):
        runs.record_generation(replace(_generation(run_id, 0), run_id="evo-missing"))


# -- best model per regime -------------------------------------------------------------------------


def test_regime_best_upserts_and_lifecycle_stage(runs: RunStore, store: Store) -> None:
    run_a = runs.create_run(_run()).run_id
    run_b = runs.create_run(_run("evo-20240401-b")).run_id
    lineage = _lineage(run_a)
    best = {}
    for regime in ("bull_trending", "bear_trending", "volatile_ranging", "calm_ranging"):
        winner = max(lineage.values(), key=lambda a: a.per_regime[regime].get("sharpe", -math.inf))
        best[regime] = RegimeBestRecord(
            run_a, SPECIALTY, regime, winner.agent_id, winner.per_regime[regime]["sharpe"],
            winner.per_regime[regime],
        )  # fmt: skip
        ChampionStore(runs.database).set_regime_best(best[regime])
        ChampionStore(runs.database).set_regime_best(best[regime])
    ChampionStore(runs.database).set_regime_best(replace(best["calm_ranging"], run_id=run_b))
    assert count_rows(store, RegimeBestModel) == 5
    stored = ChampionStore(runs.database).regime_best(run_a)
    assert [r.regime for r in stored] == [
        "bear_trending",
        "bull_trending",
        "calm_ranging",
        "volatile_ranging",
    ]
    assert all(r.stage == "DISCOVERY" for r in stored)
    assert [record_content(r) for r in stored] == [
        record_content(replace(best[r.regime], updated_at=r.updated_at)) for r in stored
    ]
    assert [r.run_id for r in ChampionStore(runs.database).regime_best()] == [run_a] * 4 + [run_b]

    challenger = replace(
        best["bull_trending"], agent_id="ta-g002-001", sharpe=3.25, stage="VALIDATION"
    )
    ChampionStore(runs.database).set_regime_best(challenger)
    assert count_rows(store, RegimeBestModel) == 5
    now = ChampionStore(runs.database).regime_best(run_a)[1]
    assert (now.agent_id, now.sharpe, now.stage) == ("ta-g002-001", 3.25, "VALIDATION")
    with pytest.raises(
        ValueError,
        match=r"RegimeBestRecord.stage must be one of DISCOVERY, VALIDATION, PAPER, MATURE, DECAY, RETIRED; got 'LIVE'",
    ):
        replace(challenger, stage="LIVE")


# -- the migration -------------------------------------------------------------------------------


def test_migration_0003_downgrades_and_upgrades(fresh_url: str) -> None:
    with Store.open(fresh_url) as store:
        store.candles.write_candles(BTC_1H, real_candles(BTC_1H, JAN_2020, FEB_2020))
        runs = store.runs
        run_id = runs.create_run(_run()).run_id
        lineage = _lineage(run_id)
        runs.record_generation_outcome(
            _generation(run_id, 0), [a for a in lineage.values() if a.generation == 0],
            [KillRecord(run_id, "ta-g000-002", 0, "LOW_HIT_RATE")],
        )  # fmt: skip
        ChampionStore(runs.database).set_regime_best(
            RegimeBestRecord(run_id, SPECIALTY, "calm_ranging", "ta-g000-000", 1.2)
        )
    assert table_names(fresh_url) >= POPULATION_TABLES

    assert migrate.downgrade(fresh_url, revision="0002") == "0002"
    assert not table_names(fresh_url) & POPULATION_TABLES
    with Store.open(fresh_url) as store:  # opening migrates back to head
        assert migrate.current_revision(store.database.engine) == migrate.head_revision()
        assert count_rows(store, MarketData) == 744 and store.regimes.regime_rules().window == "7d"
        runs = store.runs
        assert runs.list_runs() == [] and ChampionStore(runs.database).regime_best() == []
        runs.create_run(_run())
        runs.upsert_agents(list(_lineage(run_id).values()))
        assert len(runs.ancestors("ta-g002-000")) == 5
    assert migrate.downgrade(fresh_url) is None
    assert table_names(fresh_url) <= {"alembic_version"}
    assert migrate.upgrade(fresh_url) == migrate.head_revision()
    assert table_names(fresh_url) >= POPULATION_TABLES


def test_timestamps_are_utc(store: Store) -> None:
    runs = store.runs  # the real clock
    before = datetime.now(UTC)
    created = runs.create_run(_run())
    assert created.created_at is not None and created.created_at.tzinfo is not None
    assert before - timedelta(seconds=1) <= created.created_at <= datetime.now(UTC)
    assert created.created_at.utcoffset() == timedelta(0)
