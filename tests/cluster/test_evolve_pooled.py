"""A run on two symbols evolves its candle specialties pooled (``evolve.pooled``, the default), on
real Ray and real data: one model over both symbols' rows, scored on both, its symbols stored with
its checkpoint, and the report_coordinator stacking the pooled members' scores of the first
symbol's rows. ``pooled: false`` keeps one dataset per symbol, the first one trained on."""

from __future__ import annotations

from pathlib import Path

from agents.datasets import prepare_datasets
from agents.models import load_model
from agents.sources import DataSources
from cluster.config import EvolveConfig
from cluster.evolve import settings_for
from evolution.mother import COORDINATOR
from market.regimes import RegimeRules
from store.db import Store
from tests.support.smoke import evolve_config, only_run, open_runs, run_cli

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
DATA = {"symbols": SYMBOLS, "start": "2023-07-01"}


def test_a_two_symbol_run_evolves_pooled_children(ray_session: str, tmp_path: Path) -> None:
    home = tmp_path / "redline_data"
    config = evolve_config(
        tmp_path / "pooled.yaml",
        # Two pooled specialties: their pooled datasets share a name, not their rows (the
        # coordinator must stack each member's scores on its own specialty's rows).
        population={"technical_analyst": 4, "volume_hunter": 2, "report_coordinator": 2},
        generations=2,
        data=DATA,
    )
    run_cli("evolve", "--config", str(config), home=home)
    run_id = only_run(home)
    runs = open_runs(home)
    run = runs.require_run(run_id)
    assert (run.status, run.generations_done) == ("finished", 2)
    assert run.config["pooled"] is True
    assert {"technical_analyst/binance_pooled_1h", "volume_hunter/binance_pooled_1h",
            "technical_analyst/binance_BTC-USDT_1h",  # the coordinator's base: the first symbol
            } <= set(run.dataset_digests)  # fmt: skip
    agents = runs.agents(run_id)
    pooled = [a for a in agents if a.specialty == "technical_analyst" and a.status == "OK"]
    assert pooled, [(a.agent_id, a.reason) for a in agents]
    digest = run.dataset_digests["technical_analyst/binance_pooled_1h"]
    for agent in pooled:
        assert agent.dataset_digest == digest
        m = agent.metrics
        assert m["n_symbols"] == 2.0 and m["n_oos_bars"] > 1000
        assert 1.0 <= m["n_eff_symbols"] <= 2.0
        assert {f"sharpe@{s}" for s in SYMBOLS} <= set(m)
        _, meta = load_model(Path(agent.checkpoint_path))
        assert meta["symbols"] == SYMBOLS
    coordinators = [a for a in agents if a.specialty == COORDINATOR]
    assert coordinators and not any("stacked dataset not built" in a.reason for a in coordinators)
    hunters = [a for a in agents if a.specialty == "volume_hunter" and a.status == "OK"]
    assert hunters and all(a.metrics["n_symbols"] == 2.0 for a in hunters)
    # The mother brain is compared with the best single child: a pooled member, on its
    # positions of the base symbol's rows.
    from evolution.brain import latest_brain

    stats = latest_brain(home, run_id)
    assert stats is not None
    assert stats["best_child"] in {a.agent_id for a in pooled + hunters}
    assert stats["scores"]["best_child"]["sharpe"] is not None
    assert any(a.status == "OK" for a in coordinators), [a.reason for a in coordinators]


def test_pooled_false_keeps_one_dataset_per_symbol(tmp_path: Path) -> None:
    home = tmp_path / "redline_data"
    home.mkdir()
    with Store.open(f"sqlite:///{home / 'redline.db'}", home=home) as store:
        sources = DataSources.from_config(store, DATA, RegimeRules(), where="evolve.data")
        apart = prepare_datasets(["technical_analyst"], sources, None)
        together = prepare_datasets(["technical_analyst"], sources, None, pooled=True)
    assert list(apart) == [
        "technical_analyst/binance_BTC-USDT_1h",
        "technical_analyst/binance_ETH-USDT_1h",
    ]
    assert list(together) == [
        "technical_analyst/binance_pooled_1h",
        "technical_analyst/binance_BTC-USDT_1h",
    ]
    assert together["technical_analyst/binance_BTC-USDT_1h"].digest() == (
        apart["technical_analyst/binance_BTC-USDT_1h"].digest()
    )
    ds = together["technical_analyst/binance_pooled_1h"]
    assert ds.pooled and ds.group_names == tuple(SYMBOLS)
    assert ds.n_rows == sum(d.n_rows for d in apart.values())
    evolve = EvolveConfig(population={"technical_analyst": 4, COORDINATOR: 2}, data=DATA)
    assert evolve.pooled  # the default
    assert settings_for(evolve, together).datasets == {
        "technical_analyst": "binance_pooled_1h",
        COORDINATOR: "binance_BTC-USDT_1h",
    }
    assert settings_for(evolve, apart).datasets == {
        "technical_analyst": "binance_BTC-USDT_1h",
        COORDINATOR: "binance_BTC-USDT_1h",
    }
