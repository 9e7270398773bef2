"""An eighth specialty, registered as a plug-in, evolves on real Ray like the seven.

``redline evolve`` with a config whose ``evolve.plugins`` names ``tests.agents.extra_specialty``:
the config's validation loads it in the driver, the Mother actor loads it in its own process
(``EvolutionSettings.plugins``), and its children are born, trained and stored with its prefix.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.specialties import unregister
from store.paths import DataRoot
from tests.agents.extra_specialty import NAME, PATH
from tests.support.smoke import evolve_config, only_run, open_runs, run_cli, short_id


@pytest.fixture
def plugin_registered() -> Iterator[None]:
    yield
    unregister(NAME)  # the driver's registry: later tests see the seven only


def test_a_plugin_specialty_evolves_and_its_children_are_stored(
    ray_session: str, tmp_path: Path, plugin_registered: None
) -> None:
    home = tmp_path / "redline_data"
    config = evolve_config(
        tmp_path / "plugin.yaml",
        plugins=[PATH],
        population={NAME: 3},
        generations=2,
        data={"symbols": ["BTC/USDT"], "start": "2023-07-01"},
        kill={"min_hit_rate": 0.6, "bottom_quantile": 0.34, "protect_elites": 1},
    )
    run_cli("evolve", "--config", str(config), home=home)
    run_id = only_run(home)
    runs = open_runs(home)
    run = runs.require_run(run_id)
    assert (run.status, run.generations_done) == ("finished", 2)
    assert run.config["plugins"] == [PATH]
    agents = runs.agents(run_id)
    assert {a.specialty for a in agents} == {NAME}
    ids = [short_id(a.agent_id) for a in agents]
    assert all(i.startswith("tk-g") for i in ids), ids
    first = sorted(short_id(a.agent_id) for a in agents if a.generation == 0)
    assert first == ["tk-g000-000", "tk-g000-001", "tk-g000-002"]
    assert any(a.generation == 1 for a in agents), "generation 1 bred nobody"
    trained = [a for a in agents if a.status == "OK"]
    assert trained, [(a.agent_id, a.reason) for a in agents]
    for agent in trained:
        assert Path(agent.checkpoint_path).is_file(), agent.agent_id
    assert (DataRoot(home).training_db(NAME) / "binance_BTC-USDT_1h.parquet").is_file()
