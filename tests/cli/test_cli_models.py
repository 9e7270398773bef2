"""``redline lineage`` and ``redline models prune`` across runs: the living loop's retrain starts
generation 0 from an earlier run's elite, so a kept model's ancestors live in another run.

Two finished technical_analyst runs are written as the Mother writes them (genomes drawn from the
specialty's space, a child bred by the real mutation operator, checkpoint files under
``checkpoints/``), without training: lineage and prune read rows and files, never a network.

- ``evo-jan``: a0, a1, a2 sampled (generation 0); b0 = mutant of a0, b1 = mutant of a1. Its last
  hall of fame is b1 alone: without the later run, b0 and a0 (and a2) would be pruned.
- ``evo-feb``: c0 carried from ``evo-jan.ta-g001-000`` (b0; operators ``ancestor``), c1 sampled;
  d0 = mutant of c0, its hall of fame.

Also: ``prune_models`` leaves orphan files while a ``queue start`` holds the data root (and says
so), and deletes them once it does not.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from agents.genome import Genome
from agents.specialties import get_specialty
from cli.main import app
from evolution.lineage import new_agent_id
from evolution.operators import mutate_traced
from evolution.seeds import child_seed, initial_population
from store.db import Store
from store.records.population import ANCESTOR, AgentRecord, GenerationRecord, RunRecord
from tests.support.smoke import cli_env, sqlite_url
from tuning.models import prune_models
from tuning.queue import queue_lock

SPECIALTY = "technical_analyst"
SPACE = get_specialty(SPECIALTY).space
SEED = 20240101


def _agent(
    home: Path,
    run_id: str,
    generation: int,
    index: int,
    genome: Genome,
    parents: tuple[str, ...] = (),
    operators: tuple[str, ...] = (),
) -> AgentRecord:
    agent_id = f"{run_id}.{new_agent_id(SPECIALTY, generation, index)}"
    path = home / "checkpoints" / f"{agent_id}_gen{generation}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(genome.to_json().encode() * 10)
    return AgentRecord(
        run_id=run_id,
        agent_id=agent_id,
        specialty=SPECIALTY,
        generation=generation,
        genome_json=genome.to_json(),
        genome_digest=genome.digest(),
        seed=child_seed(SEED, generation, index, specialty=SPECIALTY),
        parents=parents,
        operators=operators,
        status="OK",
        sharpe=0.5 + index / 10,
        checkpoint_path=str(path),
        checkpoint_sha256="0" * 64,
    )


def _mutant(
    home: Path, run_id: str, generation: int, index: int, parent: AgentRecord
) -> AgentRecord:
    rng = np.random.default_rng(child_seed(SEED, generation, index, specialty=SPECIALTY))
    child = mutate_traced(Genome.from_json(parent.genome_json), SPACE, rng, indpb=0.5)
    return _agent(
        home, run_id, generation, index, child.genome, (parent.agent_id,), child.operators
    )


def _finish(store: Store, run_id: str, agents: list[AgentRecord], hall_of_fame: str) -> None:
    runs = store.runs
    runs.upsert_agents(agents)
    for generation in (0, 1):
        born = sum(a.generation == generation for a in agents)
        runs.record_generation(
            GenerationRecord(run_id, generation, SPECIALTY, born, born, 0, 0, born,
                             hall_of_fame=(hall_of_fame,) if generation == 1 else ())
        )  # fmt: skip
    runs.update_run(run_id, status="finished", generations_done=2)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "redline_data"
    store = Store.open(sqlite_url(home), home=home)
    for run_id in ("evo-jan", "evo-feb"):
        config = {"population": {SPECIALTY: 3}}
        digest = hashlib.sha256(run_id.encode()).hexdigest()
        store.runs.create_run(RunRecord(run_id, config, digest, SEED, 2))
    a = [_agent(home, "evo-jan", 0, i, g) for i, g in enumerate(initial_population(SPACE, 3, SEED))]
    b = [_mutant(home, "evo-jan", 1, 0, a[0]), _mutant(home, "evo-jan", 1, 1, a[1])]
    _finish(store, "evo-jan", [*a, *b], hall_of_fame=b[1].agent_id)
    elite = Genome.from_json(b[0].genome_json)
    c0 = _agent(home, "evo-feb", 0, 0, elite, (b[0].agent_id,), (ANCESTOR,))
    c1 = _agent(home, "evo-feb", 0, 1, initial_population(SPACE, 2, SEED + 1)[1])
    d0 = _mutant(home, "evo-feb", 1, 0, c0)
    _finish(store, "evo-feb", [c0, c1, d0], hall_of_fame=d0.agent_id)
    store.close()
    return home


def invoke(home: Path, *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env=cli_env(home), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_lineage_follows_a_carried_child_into_the_run_it_came_from(home: Path) -> None:
    output = invoke(home, "lineage", "evo-feb.ta-g001-000")
    lines = output.splitlines()
    assert lines[0].startswith("ta-g001-000  technical_analyst, generation 1")
    carried = next(line for line in lines if "parent ta-g000-000" in line)
    assert "generation 0" in carried
    assert any(line.endswith("operator ancestor") for line in lines)
    elite = next(line for line in lines if "parent evo-jan.ta-g001-000" in line)
    assert "technical_analyst, generation 1" in elite
    assert any("parent evo-jan.ta-g000-000" in line for line in lines)
    assert "not in the database" not in output
    assert "3 ancestors back to generation 0 (run evo-feb; 2 of them in earlier runs: evo-jan)" in (
        " ".join(output.split())
    )


def test_prune_keeps_a_kept_models_ancestors_in_earlier_runs(home: Path) -> None:
    store = Store.open(sqlite_url(home), home=home)
    checkpoints = home / "checkpoints"
    files = {p.name.split("_gen")[0]: p for p in checkpoints.iterdir()}
    dry = prune_models(store, home, dry_run=True)
    assert dry.kept == {
        "evo-feb.ta-g001-000": "hall of fame: evo-feb technical_analyst",
        "evo-jan.ta-g001-001": "hall of fame: evo-jan technical_analyst",
        "evo-feb.ta-g000-000": "ancestor: of evo-feb.ta-g001-000",
        "evo-jan.ta-g001-000": "ancestor: of evo-feb.ta-g001-000",
        "evo-jan.ta-g000-000": "ancestor: of evo-feb.ta-g001-000",
        "evo-jan.ta-g000-001": "ancestor: of evo-jan.ta-g001-001",
    }
    gone = {"evo-jan.ta-g000-002", "evo-feb.ta-g000-001"}
    assert {p.model.model_id for p in dry.deleted} == gone
    assert dry.bytes_freed == sum(files[g].stat().st_size for g in gone) > 0
    assert dry.files_deleted == 2 and not dry.problems and not dry.orphans
    assert dry.summary().startswith("kept 6 models (4 ancestor, 2 hall of fame); would delete 2 (")
    assert all(path.exists() for path in files.values())  # a dry run changes nothing
    store.close()

    output = " ".join(invoke(home, "models", "prune").split())
    assert "kept 6 models (4 ancestor, 2 hall of fame); deleted 2" in output
    for agent_id, path in files.items():
        assert path.exists() == (agent_id not in gone), agent_id


def test_prune_deletes_orphans_only_while_no_queue_runs(home: Path) -> None:
    orphan = home / "checkpoints" / "tune" / f"{'e' * 64}.pt"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x" * 1000)
    store = Store.open(sqlite_url(home), home=home)
    with queue_lock(home):  # a `queue start`: a trial's file exists a moment before its row
        held = prune_models(store, home, delete_orphans=True)
    assert held.orphans == (orphan,) and held.orphan_bytes == 1000 and not held.orphans_deleted
    assert held.orphans_refused is not None and held.problems == (held.orphans_refused,)
    assert re.match(r"`redline queue start` \(pid \d+\) is running", held.orphans_refused)
    assert orphan.exists() and len(held.deleted) == 2  # the models went all the same
    free = prune_models(store, home, delete_orphans=True)
    assert free.orphans_deleted and not orphan.exists() and not free.deleted
    assert (free.files_deleted, free.bytes_freed) == (1, 1000)
    store.close()
