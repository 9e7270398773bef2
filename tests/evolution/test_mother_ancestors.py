"""The Mother's generation 0 carried over from an earlier run (``EvolutionSettings.ancestors``: the
living loop's retrain continues the hall of fame).

Only the births are checked here (no child is trained): the carried children keep their
ancestor's genome and name it as their one parent with operators ``("ancestor",)``, the rest are
the usual draws from the root seed, and ``RunStore.ancestors`` follows a carried child back into
the earlier run. Training a carried child is training any child (tests/evolution/test_mother.py).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from agents.pool import LocalPool
from agents.specialties import get_specialty
from evolution.lineage import new_agent_id
from evolution.mother import EvolutionSettings, Mother
from evolution.seeds import child_seed, initial_population
from store.db import Store
from store.records.population import ANCESTOR, AgentRecord, RunRecord

SPECIALTY = "technical_analyst"
SPACE = get_specialty(SPECIALTY).space
SEED = 20240301


def _run(store: Store, run_id: str) -> None:
    digest = hashlib.sha256(run_id.encode()).hexdigest()
    store.runs.create_run(RunRecord(run_id, {"population": {SPECIALTY: 4}}, digest, SEED, 2))


def test_generation_0_starts_from_an_earlier_runs_elite(tmp_path: Path) -> None:
    home = tmp_path / "redline_data"
    store = Store.open(f"sqlite:///{home / 'redline.db'}", home=home)
    _run(store, "evo-jan")
    elite_genome = initial_population(SPACE, 1, SEED - 1)[0]
    elite = AgentRecord(
        run_id="evo-jan",
        agent_id=f"evo-jan.{new_agent_id(SPECIALTY, 0, 0)}",
        specialty=SPECIALTY,
        generation=0,
        genome_json=elite_genome.to_json(),
        genome_digest=elite_genome.digest(),
        seed=child_seed(SEED - 1, 0, 0, specialty=SPECIALTY),
        status="OK",
        sharpe=1.2,
    )
    store.runs.upsert_agents([elite])
    _run(store, "evo-feb")
    settings = EvolutionSettings(
        root_seed=SEED,
        generations=2,
        population={SPECIALTY: 4},
        datasets={SPECIALTY: "binance_BTC-USDT_1h"},
        ancestors={SPECIALTY: ((elite.agent_id, elite.genome_json),)},
    )
    mother = Mother("evo-feb", store.runs, LocalPool(home, {}), {}, settings, home)
    mother._ensure_initial_population()  # generation 0's births, before anything trains

    born = store.runs.agents("evo-feb", generation=0)
    assert [a.agent_id for a in born] == [f"evo-feb.ta-g000-00{i}" for i in range(4)]
    carried, *drawn = born
    assert (carried.parents, carried.operators) == ((elite.agent_id,), (ANCESTOR,))
    assert carried.genome_digest == elite.genome_digest
    sampled = initial_population(SPACE, 4, SEED)
    assert [a.genome_digest for a in drawn] == [g.digest() for g in sampled[1:]]
    assert all(a.parents == () and a.operators == () for a in drawn)
    assert store.runs.ancestors(carried.agent_id, run_id="evo-feb") == [
        store.runs.require_agent(elite.agent_id)
    ]
    mother._ensure_initial_population()  # a resume writes nothing again
    assert store.runs.agents("evo-feb", generation=0) == born
    store.close()
