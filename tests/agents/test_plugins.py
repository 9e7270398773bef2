"""An eighth specialty as a plug-in: registered by import path, built, named, searched, served."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from agents.datasets import build_datasets
from agents.sources import DataSources
from agents.specialties import (
    BUILTIN,
    PLUGINS_ENV,
    SPECIALTIES,
    LiveInput,
    get_specialty,
    load_plugins,
    register,
    specialty_of_prefix,
    unregister,
)
from evolution.lineage import new_agent_id, parse_agent_id
from store.db import Store
from store.ingest import ensure_sample
from tests.agents import extra_specialty
from tests.agents.extra_specialty import NAME, PATH, SPECIALTY
from tuning.grids import dataset_names, parse_grid


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts and ends with the seven built-ins only."""
    monkeypatch.delenv(PLUGINS_ENV, raising=False)
    unregister(NAME)
    yield
    unregister(NAME)


def test_a_plugin_loads_by_import_path_and_takes_every_role() -> None:
    assert NAME not in SPECIALTIES
    with pytest.raises(ValueError, match=f"specialty must be one of .*; got '{NAME}'"):
        get_specialty(NAME)
    assert load_plugins([PATH]) == [SPECIALTY]
    assert get_specialty(NAME) is SPECIALTY and tuple(SPECIALTIES) == (*BUILTIN, NAME)
    assert load_plugins([PATH]) == [SPECIALTY]  # loading twice is a no-op
    assert specialty_of_prefix("tk") is SPECIALTY
    assert new_agent_id(NAME, 2, 3) == "tk-g002-003"
    assert parse_agent_id("tk-g002-003") == (NAME, 2, 3)
    assert SPECIALTY.feature_sets == ("short", "long", "all")
    assert SPECIALTY.votes and SPECIALTY.live is LiveInput.CANDLES and SPECIALTY.searchable
    grid = parse_grid({"grid": {"specialty": NAME, "data": {"symbols": ["BTC/USDT", "ETH/USDT"]},
                                "genome": {"lookback": [1, 2]}}})  # fmt: skip
    assert dataset_names(grid.specialty, grid.data) == [
        ("binance_BTC-USDT_1h", ["BTC/USDT"]), ("binance_ETH-USDT_1h", ["ETH/USDT"])
    ]  # fmt: skip


def test_the_environment_names_plugins_for_every_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PLUGINS_ENV, f" {PATH} ,")
    assert get_specialty(NAME) is SPECIALTY
    assert parse_agent_id("tk-g000-001")[0] == NAME


def test_a_plugin_builds_its_datasets_from_the_run_sources(tmp_path: Path) -> None:
    load_plugins([PATH])
    store = Store.open(url=f"sqlite:///{tmp_path / 'redline.db'}")
    try:
        ensure_sample(store)
        sources = DataSources(store, symbols=("BTC/USDT", "ETH/USDT"))
        btc, eth = build_datasets(NAME, sources)
        assert (btc.specialty, btc.name, eth.name) == (
            NAME,
            "binance_BTC-USDT_1h",
            "binance_ETH-USDT_1h",
        )
        assert btc.feature_names == ("logret_1", "mom_6", "mom_24", "vol_24")
        assert btc.feature_sets["short"] == (0, 1)  # column indices
        assert np.isfinite(btc.features).all() and btc.regimes is not None
        # Causal: built on fewer candles, the same first rows.
        cut = int(btc.ts[len(btc.ts) // 2])
        (short,) = build_datasets(
            NAME, dataclasses.replace(sources, symbols=("BTC/USDT",), end_ms=cut)
        )
        assert np.array_equal(short.features, btc.features[: short.n_rows])
    finally:
        store.close()


def test_registration_refuses_clashes_and_bad_paths() -> None:
    with pytest.raises(ValueError, match="specialty 'technical_analyst' is already registered"):
        register(dataclasses.replace(get_specialty("technical_analyst"), description="other"))
    with pytest.raises(ValueError, match="prefix 'ta' is taken by 'technical_analyst'"):
        register(dataclasses.replace(SPECIALTY, prefix="ta"))
    with pytest.raises(ValueError, match="eats names 'candles', which is not a DataSources field"):
        register(dataclasses.replace(SPECIALTY, eats=("candles",)))
    with pytest.raises(ValueError, match="prefix must be two lowercase letters; got 'TK1'"):
        dataclasses.replace(SPECIALTY, prefix="TK1")
    with pytest.raises(ValueError, match="live_dataset is for live inputs 'candles' only"):
        dataclasses.replace(SPECIALTY, live=LiveInput.PANEL)
    with pytest.raises(
        ValueError, match=r"must be named 'package\.module:ATTRIBUTE'; got 'nowhere'"
    ):
        load_plugins(["nowhere"])
    with pytest.raises(ValueError, match=r"cannot import tests\.agents\.nothing_here"):
        load_plugins(["tests.agents.nothing_here:SPECIALTY"])
    with pytest.raises(ValueError, match="NAME must be a Specialty; got str"):
        load_plugins([f"{extra_specialty.__name__}:NAME"])
    with pytest.raises(ValueError, match="'volume_hunter' is built in and cannot be unregistered"):
        unregister("volume_hunter")
    assert NAME not in SPECIALTIES


def test_a_config_naming_a_missing_plugin_says_which_key(tmp_path: Path) -> None:
    from cluster.config import ConfigError, load_config

    path = tmp_path / "bad.yaml"
    path.write_text("evolve:\n  plugins: ['tests.agents.nothing_here:SPECIALTY']\n"
                    "  population: {technical_analyst: 2}\n")  # fmt: skip
    with pytest.raises(
        ConfigError, match=r"evolve\.plugins.*cannot import tests\.agents\.nothing_here"
    ):
        load_config(path)
    path.write_text(f"evolve:\n  plugins: ['{PATH}']\n  population: {{{NAME}: 2}}\n")
    config = load_config(path)
    assert config.evolve is not None and config.evolve.population == {NAME: 2}
    assert get_specialty(NAME) is SPECIALTY
