"""``redline evolve --config configs/evolve-smoke.yaml`` end to end, on real Ray and real data.

In-process through Typer's runner: the command's ``ensure_ray`` joins the session's Ray (one Ray on
the machine), and its Mother and child actors are real Ray actors in their own processes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections import Counter
from pathlib import Path

import pytest
import torch

from store.paths import DataRoot
from tests.support.smoke import (
    RunOnDisk,
    evolve_config,
    kill_rows,
    only_run,
    open_runs,
    run_cli,
    short_id,
    trained_signature,
)

SPECIALTIES = ("technical_analyst", "volume_hunter", "report_coordinator")
KILL_REASONS = {"FAILED", "LOW_HIT_RATE", "DOMINATED"}


def test_smoke_run_finishes_with_every_child_accounted_for(smoke_run: RunOnDisk) -> None:
    runs = smoke_run.runs
    run = runs.require_run(smoke_run.run_id)
    assert (run.status, run.generations_planned, run.generations_done) == ("finished", 2, 2)

    per_specialty = Counter((g.specialty, g.generation) for g in runs.generations(run.run_id))
    assert per_specialty == {(s, g): 1 for s in SPECIALTIES for g in (0, 1)}

    agents = smoke_run.agents()
    by_id = {a.agent_id: a for a in agents}
    assert len(by_id) == len(agents)
    generation_0 = Counter(a.specialty for a in agents if a.generation == 0)
    assert generation_0 == {s: 4 for s in SPECIALTIES}  # the config's population
    for agent in agents:
        assert agent.status in ("OK", "FAILED"), agent
        if agent.status == "FAILED":
            assert agent.reason, agent.agent_id
        else:
            assert len(agent.objectives) == 3 and all(map(math.isfinite, agent.objectives))
    assert sum(a.status == "OK" for a in agents) >= len(agents) // 2  # real children learn

    born_later = [a for a in agents if a.generation == 1]
    # Births replace the killed: none means the kill rule killed no child of generation 0.
    assert born_later, "generation 1 bred nobody"
    for child in born_later:
        assert child.operators, child.agent_id
        if child.operators != ("resampled",):  # the documented restart of a dead population
            assert child.parents, child.agent_id
        for parent in child.parents:  # parents are earlier children of the same specialty
            assert by_id[parent].generation < 1 and by_id[parent].specialty == child.specialty

    kills = runs.kills(run.run_id)
    assert kills, "the smoke config's kill rule kills someone in 2 generations"
    assert len({k.agent_id for k in kills}) == len(kills)
    for kill in kills:
        assert kill.reason in KILL_REASONS and kill.detail, kill
        assert by_id[kill.agent_id].killed_generation == kill.generation


def test_smoke_run_logs_match_the_database(smoke_run: RunOnDisk) -> None:
    runs = smoke_run.runs
    root = DataRoot(smoke_run.home)
    agents = smoke_run.agents()
    summaries = runs.generations(smoke_run.run_id)
    for generation in (0, 1):
        log = json.loads((root.evolution_logs / f"generation_{generation}.json").read_text())
        assert (log["run_id"], log["generation"]) == (smoke_run.run_id, generation)
        logged = {s["specialty"]: s for s in log["specialties"]}
        for summary in (s for s in summaries if s.generation == generation):
            entry = logged[summary.specialty]
            assert (entry["evaluated"], entry["failed"], entry["killed"], entry["alive"]) == (
                summary.evaluated,
                summary.failed,
                summary.killed,
                summary.alive,
            )
            assert entry["best_agent_id"] == summary.best_agent_id
        # every child that lived through the generation, once
        lived = {
            a.agent_id
            for a in agents
            if a.generation <= generation
            and (a.killed_generation is None or a.killed_generation >= generation)
        }
        children = [c["agent_id"] for c in log["children"]]
        assert len(children) == len(set(children)) and set(children) == lived
        evaluated = sum(s.evaluated for s in summaries if s.generation == generation)
        assert evaluated == len(lived)

    with (root.evolution_logs / "kill_log.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    kills = runs.kills(smoke_run.run_id)
    assert len(rows) == len(kills)
    assert {(int(r["generation"]), r["agent_id"], r["reason"]) for r in rows} == {
        (k.generation, k.agent_id, k.reason) for k in kills
    }


def test_smoke_run_checkpoints_and_playgrounds(smoke_run: RunOnDisk) -> None:
    root = DataRoot(smoke_run.home)
    for agent in smoke_run.agents():
        performance = json.loads((root.playground(agent.agent_id) / "performance.json").read_text())
        assert (performance["agent_id"], performance["status"].upper()) == (
            agent.agent_id,
            agent.status,
        )
        assert (root.playground(agent.agent_id) / "training_logs").is_dir()
        if agent.status != "OK":
            assert not agent.checkpoint_path
            continue
        assert performance["objectives"] == pytest.approx(list(agent.objectives), rel=1e-12)
        path = Path(agent.checkpoint_path or "")
        assert path == root.checkpoints / f"{agent.agent_id}_gen{agent.generation}.pt"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == agent.checkpoint_sha256
        payload = torch.load(path, weights_only=True)
        tensors = payload["state_dict"]
        assert tensors and all(isinstance(t, torch.Tensor) for t in tensors.values())


def test_the_same_seed_breeds_the_same_children(smoke_run: RunOnDisk, tmp_path: Path) -> None:
    """Another run of the seed, in another data root, makes the same children to the last bit.

    To stay fast it is a smaller run: the smoke config's technical_analyst sub-population (four
    children) alone, one generation. Generation 0 is drawn by position (a child's genome and seed
    depend on its specialty and index only), so it is the smoke run's: same genomes, seeds,
    statuses, objectives, and the same kills on them. (The fault tests compare whole runs: three
    children of two specialties, and both generations after a resume.)
    """
    home = tmp_path / "again"
    specialty = "technical_analyst"
    config = evolve_config(tmp_path / "ta.yaml", generations=1, population={specialty: 4})
    run_cli("evolve", "--config", str(config), home=home)
    again = open_runs(home)
    run_id = only_run(home)
    first = [a for a in smoke_run.agents() if a.generation == 0 and a.specialty == specialty]
    assert trained_signature(again.agents(run_id)) == trained_signature(first)
    ids = {short_id(a.agent_id) for a in first}
    expected = [k for k in kill_rows(smoke_run.runs, smoke_run.run_id) if k[0] == 0 and k[1] in ids]
    assert kill_rows(again, run_id) == expected


def test_a_run_under_lowered_champion_rules_says_so(smoke_run: RunOnDisk) -> None:
    """configs/evolve-smoke.yaml lowers the DSR bar for speed; `redline evolve` prints that."""
    printed = " ".join(smoke_run.output.split())
    assert "champion rules differ from the project's defaults: champions.dsr_threshold 0.5 " \
        "(default 0.95)" in printed  # fmt: skip
    assert "do not serve a real bot from what they crown" in printed
