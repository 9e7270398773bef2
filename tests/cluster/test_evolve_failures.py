"""Children that fail for good on real Ray: the generation goes on and the run finishes.

A child that times out twice, whose actor process is killed twice, or whose loss is NaN, and a
report_coordinator whose stacked dataset cannot be built, are each recorded FAILED with a reason
naming the cause; the kill rule, breeding, stacking, the mother brain and the champions all run on.
(``test_evolve_faults.py`` covers the faults a retry recovers from.)
"""

from __future__ import annotations

import os
import re
import signal
import threading
from pathlib import Path

from ray.util.state import list_tasks

from agents.genome import Genome
from agents.specialties import get_specialty
from cluster.config import load_config
from cluster.evolve import config_hash, start_or_resume
from evolution.lineage import new_agent_id
from evolution.mother import COORDINATOR
from evolution.seeds import child_seed, initial_population
from store.champions import ChampionStore
from store.db import Store
from store.paths import DataRoot
from store.records.population import AgentRecord, RunRecord
from tests.support.smoke import evolve_config, only_run, open_runs, run_cli, sqlite_url
from tests.support.waiting import wait_for

STATE_API_TIMEOUT = 10
MEMBERS = {"technical_analyst": 2, "volume_hunter": 2}


def by_specialty(agents: list[AgentRecord], generation: int) -> dict[str, list[AgentRecord]]:
    out: dict[str, list[AgentRecord]] = {}
    for agent in sorted(agents, key=lambda a: a.agent_id):
        if agent.generation == generation:
            out.setdefault(agent.specialty, []).append(agent)
    return out


def test_children_that_time_out_twice_fail_and_so_does_the_stack_built_on_them(
    ray_session: str, tmp_path: Path
) -> None:
    """A per-child timeout shorter than any training: every attempt really times out (the pool
    kills the busy actor), each child is tried twice, then recorded FAILED. With every member
    failed, the report_coordinator's stacked dataset cannot be built: its children are FAILED with
    the builder's error, no mother brain is fitted, and the run still finishes."""
    home = tmp_path / "redline_data"
    path = evolve_config(
        tmp_path / "timeout.yaml",
        generations=1,
        population={**MEMBERS, COORDINATOR: 2},
        training={"child_timeout_s": 0.5, "retries": 1},
    )
    run_cli("evolve", "--config", str(path), home=home)

    runs = open_runs(home)
    run = runs.require_run(only_run(home))
    assert (run.status, run.generations_done) == ("finished", 1)
    born = by_specialty(runs.agents(run.run_id), 0)
    assert {name: len(agents) for name, agents in born.items()} == {**MEMBERS, COORDINATOR: 2}
    for agent in born["technical_analyst"] + born["volume_hunter"]:
        assert agent.status == "FAILED", agent
        assert agent.reason == "timed out after 0.5s (after 2 attempts)", agent.agent_id
        assert agent.checkpoint_path is None and agent.objectives == ()
        assert agent.train_seconds is not None and agent.train_seconds >= 0.5  # its last attempt
    for agent in born[COORDINATOR]:
        assert agent.status == "FAILED", agent
        assert re.fullmatch(
            r"stacked dataset not built: RuntimeError: generation 0: no member child trained on "
            r"binance_BTC-USDT_1h succeeded, so the report_coordinator has nothing to stack",
            agent.reason,
        ), agent.reason
    summaries = {
        (g.specialty, g.evaluated, g.failed, g.killed) for g in runs.generations(run.run_id)
    }
    assert summaries == {(n, 2, 2, 2) for n in (*MEMBERS, COORDINATOR)}
    kills = runs.kills(run.run_id)
    assert sorted(k.agent_id for k in kills) == sorted(a.agent_id for a in runs.agents(run.run_id))
    assert {k.reason for k in kills} == {"FAILED"}
    assert not list(DataRoot(home).mother_brain.glob("*/training_stats.json"))  # no brain


def test_a_child_whose_actor_is_killed_twice_is_failed_and_the_run_finishes(
    ray_session: str, tmp_path: Path
) -> None:
    """The process training a child is SIGKILLed, and so is the fresh actor's that retries it: the
    child is FAILED naming the actor's death, and its sibling trains on."""
    home = tmp_path / "redline_data"
    population = {"technical_analyst": 2}  # the victim and its sibling
    path = evolve_config(tmp_path / "killed.yaml", generations=1, population=population)
    config = load_config(path)
    store = Store.open(sqlite_url(home), home=home)
    runs = store.runs
    errors: list[BaseException] = []

    def evolve() -> None:
        try:
            start_or_resume(config, config.evolve, store, home)
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    driver = threading.Thread(target=evolve, name="evolve", daemon=True)
    driver.start()
    run_id = wait_for("the run row", lambda: [r.run_id for r in runs.list_runs()], 120)[0]
    # The first child queued: it starts training as soon as the pool is up.
    name = f"child:technical_analyst:{run_id}.ta-g000-000"
    killed: list[str] = []

    def kill_running() -> str | None:
        tasks = list_tasks(
            ray_session,
            filters=[("name", "=", name), ("state", "=", "RUNNING")],
            timeout=STATE_API_TIMEOUT,
        )
        fresh = [t for t in tasks if t.task_id not in killed and t.worker_pid]
        if not fresh or fresh[0].worker_pid is None:
            return None
        os.kill(fresh[0].worker_pid, signal.SIGKILL)
        killed.append(fresh[0].task_id)
        return fresh[0].task_id

    wait_for(f"{name}'s first attempt to train", kill_running, 180, every=0.2)
    wait_for(f"{name}'s retry to train", kill_running, 180, every=0.2)
    driver.join(timeout=300)
    assert not driver.is_alive(), "the evolution did not finish after the kills"
    if errors:
        raise errors[0]

    run = runs.require_run(run_id)
    assert (run.status, run.generations_done) == ("finished", 1)
    born = by_specialty(runs.agents(run_id), 0)
    victim, sibling = born["technical_analyst"]
    assert victim.status == "FAILED", victim
    assert re.fullmatch(r"actor process died: .+ \(after 2 attempts\)", victim.reason), victim
    assert victim.checkpoint_path is None
    assert sibling.status == "OK"
    assert victim.agent_id in {k.agent_id for k in runs.kills(run_id) if k.reason == "FAILED"}


def test_a_whole_specialty_with_a_nan_loss_fails_and_the_run_breeds_on(
    ray_session: str, tmp_path: Path
) -> None:
    """A run stopped after its births is resumed; its technical_analyst genomes carry a learning
    rate of 1e30 (outside the space's bounds: a run bred under other bounds), so their loss really
    goes NaN. The whole specialty fails in generation 0; the coordinators stack the volume hunters
    alone, generation 1 draws the technical_analysts afresh, and the mother brain and the champions
    are judged as in any run."""
    home = tmp_path / "redline_data"
    path = evolve_config(tmp_path / "nan.yaml", population={**MEMBERS, COORDINATOR: 2})
    config = load_config(path)
    evolve = config.evolve
    assert evolve is not None and evolve.generations == 2
    store = Store.open(sqlite_url(home), home=home)
    runs = store.runs
    run_id = "r-nan"
    runs.create_run(
        RunRecord(run_id=run_id, config=evolve.model_dump(mode="json"),
                  config_hash=config_hash(evolve, config.regimes), root_seed=evolve.seed,
                  generations_planned=evolve.generations)
    )  # fmt: skip
    births = []
    for specialty, size in sorted(evolve.population.items()):
        for index, genome in enumerate(
            initial_population(get_specialty(specialty).space, size, evolve.seed)
        ):
            if specialty == "technical_analyst":
                # lr drives the torch families only: pinned to the MLP (sampled as gbm, it would
                # train fine and the specialty would not fail).
                broken = {"lr": 1e30, "family": "mlp"}
                genome = Genome(specialty, tuple(
                    (gene, broken.get(gene, value)) for gene, value in genome.values
                ))  # fmt: skip
            births.append(
                AgentRecord(
                    run_id=run_id,
                    agent_id=f"{run_id}.{new_agent_id(specialty, 0, index)}",
                    specialty=specialty,
                    generation=0,
                    genome_json=genome.to_json(),
                    genome_digest=genome.digest(),
                    seed=child_seed(evolve.seed, 0, index, specialty=specialty),
                    config_hash=config_hash(evolve, config.regimes),
                )
            )
    runs.add_agents(births)

    start_or_resume(config, None, store, home, resume=run_id)

    run = runs.require_run(run_id)
    assert (run.status, run.generations_done) == ("finished", 2)
    agents = runs.agents(run_id)
    first, second = by_specialty(agents, 0), by_specialty(agents, 1)
    for agent in first["technical_analyst"]:
        assert agent.status == "FAILED", agent
        assert re.match(r"diverged: loss is nan at fold 0, epoch [01], batch \d+ \(lr=1e\+30\)$",
                        agent.reason), agent.reason  # fmt: skip
    assert all(a.status == "OK" for a in first["volume_hunter"] + first[COORDINATOR])
    # Nobody usable survived: generation 1's technical_analysts are drawn afresh, and train.
    assert [a.operators for a in second["technical_analyst"]] == [("resampled",)] * 2
    assert all(a.status == "OK" for a in second["technical_analyst"])
    failed = {k.agent_id for k in runs.kills(run_id) if k.reason == "FAILED"}
    assert failed >= {a.agent_id for a in first["technical_analyst"]}
    assert list(DataRoot(home).mother_brain.glob("*/training_stats.json"))
    ok = {a.agent_id for a in agents if a.status == "OK"}
    best = ChampionStore(runs.database).regime_best(run_id)
    assert best and all(row.agent_id in ok for row in best)
