"""Helpers of the evolution tests: one smoke run to compare with (the ``smoke_run`` fixture of
tests/conftest.py, one per session, on its ``ray_session``).

The smoke run (``redline evolve --config configs/evolve-smoke.yaml``, in-process) is the reference
the fault tests measure against: the same seed must give the same genomes and scores whether a run
loses a child's process or its driver on the way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from typer.testing import CliRunner

from cli.main import app
from store.db import Store
from store.records.population import AgentRecord
from store.runs import RunStore

REPO = Path(__file__).resolve().parents[2]
SMOKE_CONFIG = REPO / "configs" / "evolve-smoke.yaml"


def sqlite_url(home: Path) -> str:
    return f"sqlite:///{home / 'redline.db'}"


def open_runs(home: Path) -> RunStore:
    """The run store of a data root (its SQLite file, whatever REDLINE_DATABASE_URL says)."""
    return Store.open(sqlite_url(home), home=home).runs


def cli_env(home: Path) -> dict[str, str | None]:
    """Environment of a ``redline`` invocation on ``home`` (None removes a variable)."""
    return {"REDLINE_HOME": str(home), "REDLINE_DATABASE_URL": None, "REDLINE_LOG_LEVEL": "WARNING"}


def evolve_config(path: Path, **evolve: object) -> Path:
    """The smoke config with ``evolve`` keys replaced; a section (``training={...}``) is merged
    into the smoke config's, except ``population``, which is the whole set of specialties."""
    raw = yaml.safe_load(SMOKE_CONFIG.read_text())
    for key, value in evolve.items():
        current = raw["evolve"].get(key)
        if isinstance(value, dict) and isinstance(current, dict) and key != "population":
            raw["evolve"][key] = {**current, **value}
        else:
            raw["evolve"][key] = value
    path.write_text(yaml.safe_dump(raw))
    return path


def run_cli(*args: str, home: Path) -> str:
    """``redline ARGS`` in this process (Ray already up: ensure_ray joins it)."""
    result = CliRunner().invoke(app, list(args), env=cli_env(home), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@dataclass(frozen=True)
class RunOnDisk:
    home: Path
    run_id: str
    output: str = ""  # what `redline evolve` printed

    @property
    def runs(self) -> RunStore:
        return open_runs(self.home)

    def agents(self) -> list[AgentRecord]:
        return self.runs.agents(self.run_id)


def only_run(home: Path) -> str:
    runs = open_runs(home).list_runs()
    assert len(runs) == 1, [r.run_id for r in runs]
    return runs[0].run_id


def short_id(agent_id: str) -> str:
    """``ta-g001-002`` of ``r1795320377-ed9837.ta-g001-002``: the same in every run of a seed."""
    return agent_id.split(".", 1)[1]


def population_signature(agents: list[AgentRecord]) -> dict[str, tuple[object, ...]]:
    """What a run bred and measured, per agent, free of run ids and clocks: same seed => equal."""
    return {
        short_id(a.agent_id): (
            a.specialty,
            a.generation,
            a.genome_json,
            a.seed,
            tuple(short_id(p) for p in a.parents),
            a.operators,
            a.status,
            a.objectives,
            a.killed_generation,
        )
        for a in agents
    }


def trained_signature(agents: list[AgentRecord]) -> dict[str, tuple[object, ...]]:
    """What training made of each child, free of run ids: same seed => equal."""
    return {
        short_id(a.agent_id): (a.specialty, a.genome_json, a.seed, a.status, a.objectives)
        for a in agents
    }


def kill_rows(runs: RunStore, run_id: str) -> list[tuple[object, ...]]:
    """A run's kills free of run ids and clocks: generation, agent, reason and its detail."""
    return [(k.generation, short_id(k.agent_id), k.reason, k.detail) for k in runs.kills(run_id)]
