"""``redline runs / children / generations / lineage / kills / restore`` on one real smoke run.

The module evolves once (``configs/evolve-smoke.yaml`` through ``cluster.evolve.start_or_resume``
on real Ray: ``ensure_ray`` starts Ray once per pytest process or joins the one already up, and
nothing here shuts it down), then drives every command through Typer's runner against that data
root and checks what they print against the database and the files.

The smoke config's kill bar (hit rate 0.5) kills nobody in two generations on the sample, so this
run raises it to 0.53: some children die and generation 1 breeds, which lineage and kills need.
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from agents.child import oos_path
from agents.datasets import dataset_path, read_dataset, write_dataset
from cli.main import app
from cluster.config import load_config
from store.db import Store
from store.paths import DataRoot
from store.records.population import AgentRecord
from store.runs import RunStore
from tests.support.smoke import RunOnDisk
from tests.support.waiting import table_rows

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "evolve-smoke.yaml"
KILL_BAR = load_config(SMOKE).evolve.kill.min_hit_rate  # type: ignore[union-attr]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def store_of(home: Path) -> Store:
    """The data root's own SQLite (whatever REDLINE_DATABASE_URL says)."""
    return Store.open(f"sqlite:///{home / 'redline.db'}", home=home)


@dataclass(frozen=True)
class Run:
    home: Path
    run_id: str
    runs: RunStore

    def agents(self) -> list[AgentRecord]:
        return self.runs.agents(self.run_id)


@pytest.fixture(scope="module")
def run(smoke_run: RunOnDisk) -> Iterator[Run]:
    """The session's smoke run (tests/cluster/conftest.py): one evolution serves every module."""
    store = store_of(smoke_run.home)
    runs = store.runs
    agents = runs.agents(smoke_run.run_id)
    assert runs.kills(smoke_run.run_id), "the smoke config's kill bar must kill someone"
    assert any(a.generation == 1 and a.parents for a in agents), "generation 1 bred nobody"
    yield Run(smoke_run.home, smoke_run.run_id, runs)
    store.close()


def invoke(home: Path, *args: str) -> str:
    env = {"REDLINE_HOME": str(home), "REDLINE_DATABASE_URL": None, "REDLINE_LOG_LEVEL": "WARNING"}
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def short(agent_id: str) -> str:
    return agent_id.split(".", 1)[1]


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


# -- runs, children, generations, kills -----------------------------------------------------------


def test_runs_lists_the_finished_run(run: Run) -> None:
    rows = table_rows(invoke(run.home, "runs"))
    assert len(rows) == 1
    run_id, status, _created, generations, seed, config, specialties = rows[0]
    stored = run.runs.require_run(run.run_id)
    assert (run_id, status, generations, seed) == (run.run_id, "finished", "2/2", "7")
    assert stored.config_hash.startswith(config) and len(config) == 12
    for name in ("technical_analyst", "volume_hunter", "report_coordinator"):
        assert f"{name} x4" in specialties


def test_children_shows_every_agent_with_its_status_and_fate(run: Run) -> None:
    agents = run.agents()
    rows = table_rows(invoke(run.home, "children", run.run_id))
    assert len(rows) == len(agents) and {r[2] for r in rows} == {"0", "1"}
    shown = {row[0]: row for row in rows}
    for agent in agents:
        row = shown[short(agent.agent_id)]
        assert row[1:4] == [agent.specialty, str(agent.generation), agent.status]
        assert row[5:7] == [pct(agent.max_drawdown), pct(agent.hit_rate)]
        killed = agent.killed_generation
        assert row[7] == ("alive" if killed is None else f"killed at gen {killed}")
    assert sum(row[7] != "alive" for row in rows) == len(run.runs.kills(run.run_id))

    born_1 = table_rows(
        invoke(run.home, "children", run.run_id, "--generation", "1", "-s", "technical_analyst")
    )
    expected = run.runs.agents(run.run_id, generation=1, specialty="technical_analyst")
    assert [row[0] for row in born_1] == [short(a.agent_id) for a in expected]

    by_sharpe = table_rows(invoke(run.home, "children", run.run_id, "--sort", "sharpe"))
    sharpes = [float(row[4]) for row in by_sharpe if row[4] != "-"]
    assert sharpes == sorted(sharpes, reverse=True) and len(sharpes) > len(agents) // 2


def test_children_rejects_bad_filters_naming_the_value(run: Run) -> None:
    with pytest.raises(ValueError, match=r"--sort must be one of sharpe, .*; got 'luck'"):
        invoke(run.home, "children", run.run_id, "--sort", "luck")
    with pytest.raises(ValueError, match=r"--specialty must be one of .*; got 'whale_watcher'"):
        invoke(run.home, "children", run.run_id, "--specialty", "whale_watcher")
    with pytest.raises(ValueError, match=r"--generation must be in 0\.\.1 .*; got 5"):
        invoke(run.home, "children", run.run_id, "--generation", "5")


def test_generations_table_equals_the_records_and_plots_a_png(run: Run) -> None:
    output = invoke(run.home, "generations", run.run_id)
    rows = table_rows(output)
    records = run.runs.generations(run.run_id)
    assert len(records) == 6 and len(rows) == len(records)
    for row, record in zip(rows, records, strict=True):
        expected = [
            str(record.generation),
            record.specialty,
            "-" if record.best_fitness is None else f"{record.best_fitness:+.4f}",
            "-" if record.median_fitness is None else f"{record.median_fitness:+.4f}",
            *(str(v) for v in (record.evaluated, record.failed, record.killed, record.alive)),
            short(record.best_agent_id) if record.best_agent_id else "-",
        ]
        assert row == expected

    path = run.home / "evolution_logs" / f"{run.run_id}_fitness.png"
    assert f"plot: {path}" in output.replace("\n", "")
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert (width, height) == (800, 450)

    elsewhere = run.home.parent / "plots" / "fitness.png"
    output = invoke(run.home, "generations", run.run_id, "--plot", str(elsewhere))
    assert elsewhere.read_bytes()[:8] == PNG_MAGIC


def test_kills_lists_exactly_the_database_kills(run: Run) -> None:
    kills = run.runs.kills(run.run_id)
    specialty = {a.agent_id: a.specialty for a in run.agents()}
    rows = table_rows(invoke(run.home, "kills", run.run_id))
    assert rows == [
        [str(k.generation), short(k.agent_id), specialty[k.agent_id], k.reason, k.detail]
        for k in kills
    ]
    assert any(k.reason == "LOW_HIT_RATE" and f"< {KILL_BAR}" in k.detail for k in kills)


# -- lineage ---------------------------------------------------------------------------------------


def test_lineage_of_a_generation_1_child_shows_its_parents_and_operators(run: Run) -> None:
    child = next(a for a in run.agents() if a.generation == 1 and a.parents and a.operators)
    output = invoke(run.home, "lineage", child.agent_id)
    lines = output.splitlines()
    assert short(child.agent_id) in lines[0] and f"seed {child.seed}" in lines[0]
    parents = [run.runs.require_agent(p) for p in child.parents]
    assert {p.agent_id for p in run.runs.ancestors(child.agent_id)} == set(child.parents)
    for parent in parents:
        line = next(line for line in lines if f"parent {short(parent.agent_id)}" in line)
        assert f"generation 0, seed {parent.seed}" in line
    for operator in child.operators:
        assert any(line.endswith(f"operator {operator}") for line in lines), operator
    assert f"{len(parents)} ancestors back to generation 0" in output


# -- restore ---------------------------------------------------------------------------------------


def test_restore_scores_a_technical_analyst_checkpoint_the_same(run: Run) -> None:
    child = next(a for a in run.agents() if a.specialty == "technical_analyst" and a.status == "OK")
    output = invoke(run.home, "restore", child.agent_id, "--generation", str(child.generation))
    lines = output.splitlines()
    assert child.checkpoint_sha256 is not None
    assert lines[0].startswith(f"checkpoint sha256 {child.checkpoint_sha256[:16]}… matches")
    dataset = next(line for line in lines if line.startswith("dataset digest"))
    assert dataset.endswith("matches the agents row: technical_analyst/binance_BTC-USDT_1h")
    assert "same scores: yes" in output
    scores = [row for row in table_rows(output) if len(row) == 4]
    assert len(scores) == 10 and all(row[1] == row[2] for row in scores)


def test_restore_rebuilds_a_coordinators_stacked_dataset(run: Run) -> None:
    child = next(
        a for a in run.agents() if a.specialty == "report_coordinator" and a.status == "OK"
    )
    output = invoke(run.home, "restore", child.agent_id)
    assert f"report_coordinator/stack_g{child.generation:03d}" in output
    assert "same scores: yes" in output


@pytest.fixture
def copy_of(run: Run, tmp_path: Path) -> Path:
    """A copy of the run's data root (database included) to damage."""
    return Path(shutil.copytree(run.home, tmp_path / "copy"))


def test_restore_refuses_a_tampered_checkpoint(run: Run, copy_of: Path) -> None:
    child = next(a for a in run.agents() if a.specialty == "technical_analyst" and a.status == "OK")
    path = copy_of / "checkpoints" / f"{child.agent_id}_gen{child.generation}.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    pattern = rf"sha256 [0-9a-f]{{64}}, but the agents row .* records {child.checkpoint_sha256}"
    with pytest.raises(ValueError, match=pattern):
        invoke(copy_of, "restore", child.agent_id, "--generation", str(child.generation))


def test_restore_refuses_a_dataset_other_than_the_one_trained_on(run: Run, copy_of: Path) -> None:
    child = next(a for a in run.agents() if a.specialty == "volume_hunter" and a.status == "OK")
    path = dataset_path(copy_of, "volume_hunter", "binance_BTC-USDT_1h")
    dataset = read_dataset(path)
    write_dataset(replace(dataset, features=np.round(dataset.features, 2)), copy_of)
    with pytest.raises(ValueError, match=rf"trained on {child.dataset_digest}: .*refusing"):
        invoke(copy_of, "restore", child.agent_id)


def test_restore_exits_non_zero_when_the_scores_differ(run: Run, copy_of: Path) -> None:
    child = next(a for a in run.agents() if a.specialty == "technical_analyst" and a.status == "OK")
    path = oos_path(DataRoot(copy_of), child.agent_id, child.generation)
    with np.load(path) as data:
        stored = {name: data[name].copy() for name in data.files}
    stored["score"][-1] += 0.01  # the last row is in the last fold
    np.savez(path, **stored)
    env = {"REDLINE_HOME": str(copy_of), "REDLINE_DATABASE_URL": None}
    result = CliRunner().invoke(app, ["restore", child.agent_id], env=env)
    assert result.exit_code == 1, result.output
    assert "same scores: no" in result.output and "max |difference| 1.00e-02" in result.output


def test_unknown_runs_and_agents_are_named(run: Run) -> None:
    for command in ("children", "generations", "kills"):
        with pytest.raises(
            ValueError, match=r"no run 'r0-nope' in sqlite:///.*; see `redline runs`"
        ):
            invoke(run.home, command, "r0-nope")
    for command in ("lineage", "restore"):
        with pytest.raises(ValueError, match=r"no agent 'r0-nope.ta-g000-000' in sqlite:///"):
            invoke(run.home, command, "r0-nope.ta-g000-000")
    child = next(a for a in run.agents() if a.status == "OK")
    with pytest.raises(ValueError, match=r"no checkpoint .*_gen7\.pt for --generation 7"):
        invoke(run.home, "restore", child.agent_id, "--generation", "7")
