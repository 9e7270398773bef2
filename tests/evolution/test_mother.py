"""The Mother without Ray: ``evolution.mother.Mother`` on ``agents.pool.LocalPool``.

What runs: real torch training (children in this machine's process, one after another), a real
SQLite store, the shipped BTC/USDT 1h sample (2024-01-01 on, about 2,200 bars), a few children for
two or three generations. What is checked: the kill rule (the weak die, each with its reason),
breeding (generation 1's parents, operators and seeds from the root seed), resume (a run killed in
the middle of generation 1 and resumed ends as one never stopped) and FAILED children (a NaN loss,
an impossible genome, a worker that raises: each recorded with its reason, and the run goes on).

How "without Ray" is made honest: the pytest session imports Ray for other modules, and a module
already imported cannot be un-imported. So every run is made by ``python -m
tests.evolution.mother_scenarios <scenario> <home>``, a fresh process that sets
``sys.modules["ray"] = None`` before anything of Redline is imported (``import ray`` then raises
ImportError), refuses to start if ``import ray`` still works, and exits non-zero if any ``ray``
module got loaded by the end. These tests read what the runs left in their SQLite files and data
roots. This module imports nothing that imports Ray either: run alone in a process where ``import
ray`` raises, it passes the same.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pytest

from agents.genome import Genome
from agents.specialties import get_specialty
from evolution.seeds import child_seed, initial_population
from evolution.selection import DEFAULT_WEIGHTS
from store.db import Store
from store.paths import DataRoot
from store.records.population import AgentRecord
from store.runs import RunStore
from tests.evolution.mother_scenarios import (
    CRASH_EXIT,
    FAILING_GENERATIONS,
    FAILING_POPULATION,
    FULL_GENERATIONS,
    FULL_POPULATION,
    MIN_HIT_RATE,
    NOW,
    ROOT_SEED,
    RUN_ID,
)

REPO = Path(__file__).resolve().parents[2]
PROCESS_TIMEOUT_S = 600  # a hung process fails the test instead of the session


@dataclass(frozen=True)
class Ran:
    """A scenario's process, finished: its data root, exit status and error output."""

    home: Path
    returncode: int
    stderr: str

    @cached_property
    def store(self) -> Store:
        return Store.open(f"sqlite:///{self.home / 'redline.db'}", home=self.home)

    @property
    def runs(self) -> RunStore:
        return self.store.runs

    def agents(self) -> list[AgentRecord]:
        return self.runs.agents(RUN_ID)


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    home: Path
    log: Path  # its stderr: a file, so a chatty process never waits on a full pipe


def start(scenario: str, home: Path) -> Started:
    log = home.parent / f"{home.name}-{scenario}.stderr"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.evolution.mother_scenarios", scenario, str(home)],
            cwd=REPO,  # this checkout's packages, first on sys.path
            stdout=subprocess.DEVNULL,
            stderr=handle,
        )
    return Started(process, home, log)


def finish(started: Started) -> Ran:
    try:
        started.process.wait(timeout=PROCESS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        started.process.kill()
        started.process.wait()
    stderr = started.log.read_text(errors="replace")
    return Ran(started.home, started.process.returncode, stderr)


@dataclass(frozen=True)
class Scenarios:
    full: Ran
    crashed: Ran
    crashed_state: dict[str, object]  # what the crashed run's store held before the resume
    resumed: Ran
    failing: Ran


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenarios]:
    """The four processes; the independent three at once (each trains with one torch thread)."""
    homes = {name: tmp_path_factory.mktemp(f"mother-{name}") for name in ("full", "crash", "fail")}
    running = {
        "full": start("full", homes["full"]),
        "crash": start("crash", homes["crash"]),
        "fail": start("failing", homes["fail"]),
    }
    crashed = finish(running["crash"])
    state: dict[str, object] = {}
    if crashed.returncode == CRASH_EXIT:
        runs = crashed.runs
        state["generations_done"] = runs.require_run(RUN_ID).generations_done
        state["generation_1"] = {
            a.agent_id: (a.status, a.train_seconds) for a in runs.agents(RUN_ID, generation=1)
        }
        state["performance"] = {
            agent_id: _performance(homes["crash"], agent_id) for agent_id in state["generation_1"]
        }
    resumed = finish(start("resume", homes["crash"]))
    yield Scenarios(
        full=finish(running["full"]),
        crashed=crashed,
        crashed_state=state,
        resumed=resumed,
        failing=finish(running["fail"]),
    )


def _performance(home: Path, agent_id: str) -> dict[str, object] | None:
    path = DataRoot(home).playground(agent_id) / "performance.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _score(agent: AgentRecord) -> float:
    return float(np.dot(agent.objectives, DEFAULT_WEIGHTS))


def _alive_at(agents: list[AgentRecord], generation: int, specialty: str) -> list[AgentRecord]:
    return [
        a
        for a in agents
        if a.specialty == specialty
        and a.generation <= generation
        and (a.killed_generation is None or a.killed_generation >= generation)
    ]


def test_every_run_was_made_where_ray_cannot_be_imported(scenarios: Scenarios) -> None:
    """Each process refused to start with Ray importable and to end with a Ray module loaded."""
    for name in ("full", "resumed", "failing"):
        ran: Ran = getattr(scenarios, name)
        assert ran.returncode == 0, f"{name}:\n{ran.stderr}"
    assert scenarios.crashed.returncode == CRASH_EXIT, scenarios.crashed.stderr


def test_the_kill_rule_kills_the_weak_each_with_its_reason(scenarios: Scenarios) -> None:
    """In every generation the two best alive children (by weighted score) are kept as elites,
    and every other child whose out-of-sample hit rate is below the bar dies in that generation
    with the reason and the values that condemned it."""
    runs = scenarios.full.runs
    run = runs.require_run(RUN_ID)
    assert (run.status, run.generations_done) == ("finished", FULL_GENERATIONS)
    agents = runs.agents(RUN_ID)
    kills = {k.agent_id: k for k in runs.kills(RUN_ID)}
    for generation in range(FULL_GENERATIONS):
        for specialty, size in FULL_POPULATION.items():
            alive = _alive_at(agents, generation, specialty)
            assert len(alive) == size and all(a.status == "OK" for a in alive)
            ranked = sorted(alive, key=lambda a: (-_score(a), a.agent_id))
            for elite in ranked[:2]:
                assert elite.killed_generation != generation, elite
            for weak in ranked[2:]:
                assert weak.hit_rate is not None
                if weak.hit_rate < MIN_HIT_RATE:
                    kill = kills[weak.agent_id]
                    assert (kill.generation, kill.reason) == (generation, "LOW_HIT_RATE")
                    assert kill.detail == (
                        f"out-of-sample hit rate {weak.hit_rate:.4g} < {MIN_HIT_RATE:.4g}"
                    )
                    assert kill.killed_at == NOW
    # Not vacuous: both technical_analysts of generation 0 below the elites died of the bar.
    first = sorted(
        _alive_at(agents, 0, "technical_analyst"), key=lambda a: (-_score(a), a.agent_id)
    )
    killed_first = sorted(k.agent_id for k in kills.values() if k.generation == 0)
    assert len(killed_first) == 2 and killed_first == sorted(a.agent_id for a in first[2:])
    assert {k.reason for k in kills.values()} == {"LOW_HIT_RATE"}
    assert set(kills) == {a.agent_id for a in agents if a.killed_generation is not None}
    logged = (DataRoot(scenarios.full.home).evolution_logs / "kill_log.csv").read_text()
    assert sorted(line.split(",")[2] for line in logged.splitlines()[1:]) == sorted(kills)


def test_generation_0_is_drawn_and_generation_1_bred_from_the_root_seed(
    scenarios: Scenarios,
) -> None:
    """Generation 0 is the space's initial population of the root seed; every child born later
    names its parents (survivors of the generation before) and the operators that made it, and
    carries the seed its position gives under the root seed."""
    agents = scenarios.full.agents()
    for specialty, size in FULL_POPULATION.items():
        space = get_specialty(specialty).space
        first = sorted(
            (a for a in agents if a.specialty == specialty and a.generation == 0),
            key=lambda a: a.agent_id,
        )
        assert [a.genome_json for a in first] == [
            genome.to_json() for genome in initial_population(space, size, ROOT_SEED)
        ]
        assert [a.seed for a in first] == [
            child_seed(ROOT_SEED, 0, i, specialty=specialty) for i in range(size)
        ]
        assert all(a.parents == () and a.operators == () for a in first)
    for generation in range(1, FULL_GENERATIONS):
        born = sorted((a for a in agents if a.generation == generation), key=lambda a: a.agent_id)
        survivors = {
            a.agent_id
            for a in _alive_at(agents, generation - 1, "technical_analyst")
            if a.killed_generation != generation - 1
        }
        assert len(born) == FULL_POPULATION["technical_analyst"] - len(survivors) > 0
        for index, child in enumerate(born):
            assert child.agent_id == f"{RUN_ID}.ta-g{generation:03d}-{index:03d}"
            assert child.seed == child_seed(
                ROOT_SEED, generation, index, specialty="technical_analyst"
            )
            assert len(child.parents) == 2 and set(child.parents) <= survivors, child
            assert len(child.operators) == 2, child
            assert re.fullmatch(r"cxSimulatedBinaryBounded\(eta=15,indpb=0\.5\)\[[a-z_,]*\]",
                                child.operators[0]), child.operators  # fmt: skip
            assert re.fullmatch(r"mutPolynomialBounded\(eta=20,indpb=0\.2\)\[[a-z_,]*\]",
                                child.operators[1]), child.operators  # fmt: skip
            genome = Genome.from_json(child.genome_json)  # within the space's bounds:
            space = get_specialty("technical_analyst").space
            assert space.validate(genome).to_json() == child.genome_json
            assert child.status == "OK" and child.checkpoint_path
    # The population is refilled after every generation but the last, which breeds no one.
    summaries = scenarios.full.runs.generations(RUN_ID)
    assert len(summaries) == FULL_GENERATIONS * len(FULL_POPULATION)
    for summary in summaries:
        size = FULL_POPULATION[summary.specialty]
        last = summary.generation == FULL_GENERATIONS - 1
        assert summary.alive == (size - summary.killed if last else size), summary


SIGNATURE_FIELDS = (
    "specialty", "generation", "genome_json", "seed", "parents", "operators", "status", "reason",
    "objectives", "metrics", "per_regime", "hit_rate", "killed_generation", "dataset_digest",
    "checkpoint_sha256",
)  # fmt: skip


def _signature(ran: Ran) -> dict[str, tuple[object, ...]]:
    """Everything a run bred, trained and decided, per child, free of clocks."""
    return {a.agent_id: tuple(getattr(a, f) for f in SIGNATURE_FIELDS) for a in ran.agents()}


def test_a_run_killed_in_generation_1_resumes_to_the_uninterrupted_result(
    scenarios: Scenarios,
) -> None:
    """The crashed process died right after the first child of generation 1 was recorded; the
    resume trains only what was left and ends with the same genomes, scores, kills, generation
    rows, log files and mother brain as the run never stopped."""
    state = scenarios.crashed_state
    assert state["generations_done"] == 1
    first, second = sorted(state["generation_1"].items())  # type: ignore[attr-defined]
    assert first[1][0] == "OK" and second[1] == ("PENDING", None)
    assert state["performance"][second[0]] is None  # type: ignore[index]

    full, resumed = scenarios.full, scenarios.resumed
    assert resumed.returncode == 0, resumed.stderr
    assert _signature(resumed) == _signature(full)
    # The child trained before the kill was not trained again: its row and playground are as
    # the crashed process left them.
    again = resumed.runs.require_agent(first[0])
    assert again.train_seconds == first[1][1]
    assert _performance(resumed.home, first[0]) == state["performance"][first[0]]  # type: ignore[index]

    runs = {name: ran.runs for name, ran in (("full", full), ("resumed", resumed))}
    assert runs["resumed"].kills(RUN_ID) == runs["full"].kills(RUN_ID)
    assert runs["resumed"].generations(RUN_ID) == runs["full"].generations(RUN_ID)
    champions = {name: ran.store.champions for name, ran in (("full", full), ("resumed", resumed))}
    assert champions["resumed"].regime_best(RUN_ID) == champions["full"].regime_best(RUN_ID)
    assert runs["resumed"].require_run(RUN_ID).status == "finished"
    logs = {name: DataRoot(ran.home).evolution_logs for name, ran in (("full", full),
                                                                        ("resumed", resumed))}  # fmt: skip
    names = sorted(path.name for path in logs["full"].iterdir())
    assert names == ["generation_0.json", "generation_1.json", "generation_2.json", "kill_log.csv"]
    assert sorted(path.name for path in logs["resumed"].iterdir()) == names
    for name in names:
        assert (logs["resumed"] / name).read_text() == (logs["full"] / name).read_text(), name
    brains = [_brain(ran.home) for ran in (full, resumed)]
    assert brains[0] == brains[1] and brains[0]["champions"]


def _brain(home: Path) -> dict[str, object]:
    """The run's mother brain as fitted, free of its version name and clock."""
    (stats,) = DataRoot(home).mother_brain.glob(f"{RUN_ID}-v*/training_stats.json")
    payload = json.loads(stats.read_text())
    return {k: v for k, v in payload.items() if k not in ("version", "created_at")}


def test_children_that_fail_are_recorded_and_the_run_goes_on(scenarios: Scenarios) -> None:
    """Three of generation 0's five children cannot train: a learning rate of 1e30 (the loss
    really goes NaN), a feature_set the dataset does not have, and a checkpoint whose name a
    folder has taken (the worker raises; the pool records it). Each is FAILED with its reason
    and killed for it; the two others are bred from, and generation 1 trains."""
    runs = scenarios.failing.runs
    run = runs.require_run(RUN_ID)
    assert (run.status, run.generations_done) == ("finished", FAILING_GENERATIONS)
    agents = {a.agent_id: a for a in runs.agents(RUN_ID)}
    nan, impossible, unsaved, *fine = (agents[f"{RUN_ID}.ta-g000-{i:03d}"] for i in range(5))
    assert re.fullmatch(
        r"diverged: loss is nan at fold 0, epoch [01], batch \d+ \(lr=1e\+30\)", nan.reason
    ), nan.reason
    assert impossible.reason == (
        "ValueError: gene feature_set must be one of ['all', 'fast', 'slow']; got 'order_book'"
    )
    taken = DataRoot(scenarios.failing.home).checkpoints / f"{unsaved.agent_id}_gen0.pt"
    assert re.fullmatch(rf"IsADirectoryError: .*{re.escape(str(taken))}'", unsaved.reason), (
        unsaved.reason
    )
    kills = {k.agent_id: k for k in runs.kills(RUN_ID)}
    for child in (nan, impossible, unsaved):
        assert child.status == "FAILED" and child.objectives == ()
        assert child.checkpoint_path is None and child.checkpoint_sha256 is None
        kill = kills[child.agent_id]
        assert (kill.generation, kill.reason) == (0, "FAILED")
        assert kill.detail == f"child failed: {child.reason}"
    assert all(a.status == "OK" and a.killed_generation != 0 for a in fine)
    born = [a for a in agents.values() if a.generation == 1]
    assert len(born) == FAILING_POPULATION["technical_analyst"] - len(fine) == 3
    for child in born:
        assert child.status == "OK", child
        assert set(child.parents) <= {a.agent_id for a in fine}, child
    (first,) = (s for s in runs.generations(RUN_ID) if s.generation == 0)
    assert (first.evaluated, first.failed, first.killed, first.alive) == (5, 3, 3, 5)
