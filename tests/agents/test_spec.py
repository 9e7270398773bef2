"""The one spec hash, typed trial configs (TrainSpec) and the data spec (DataSources as JSON)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from agents.sources import DataSources
from agents.spec import TrainSpec, spec_hash
from agents.specialties import get_specialty
from cluster.config import load_config
from cluster.evolve import config_hash
from market.regimes import RegimeRules
from store.db import Store
from tuning.grids import compute_config_hash, expand, parse_grid

REPO = Path(__file__).resolve().parents[2]


def test_spec_hash_is_canonical_and_refuses_nan() -> None:
    one = {"b": (1, 2.5), "a": {"y": np.int64(3), "x": Path("/data")}}
    other = {"a": {"x": "/data", "y": 3}, "b": [1, np.float64(2.5)]}
    assert spec_hash(one) == spec_hash(other)
    assert len(spec_hash(one)) == 64 and spec_hash(one) != spec_hash({**other, "c": None})
    with pytest.raises(ValueError, match="a config must hold finite numbers only"):
        spec_hash({"lr": float("nan")})


def test_a_trial_config_is_a_train_spec_with_the_same_identity() -> None:
    grid = parse_grid({"grid": {"name": "g", "specialty": "technical_analyst", "seed": 3,
                                "data": {"symbols": ["BTC/USDT", "ETH/USDT"]},
                                "genome": {"lookback": [2, 3]},
                                "inference": {"threshold": [0.1, 0.3], "horizon": [1, 2]}}})  # fmt: skip
    configs = expand(grid)
    specs = [TrainSpec.from_json(config) for config in configs]
    for config, spec in zip(configs, specs, strict=True):
        assert spec.to_json() == config
        assert spec.hash == compute_config_hash(config)
        assert TrainSpec.from_json(spec.to_json()) == spec
        assert spec.key == f"technical_analyst/{config['dataset']}"
        assert (
            get_specialty(spec.specialty).space.validate(dict(spec.genome)).as_dict()
            == config["genome"]
        )
    assert len({spec.hash for spec in specs}) == 4
    renamed = dataclasses.replace(specs[0], grid="another")
    assert renamed.hash == specs[0].hash  # the grid that added it is not its identity
    assert dataclasses.replace(specs[0], seed=4).hash != specs[0].hash
    assert specs[0].inference_configs()[:2] == [
        {"threshold": 0.1, "horizon": 1, "size": 1.0}, {"threshold": 0.1, "horizon": 2, "size": 1.0}
    ]  # fmt: skip


def test_a_train_spec_names_what_is_wrong() -> None:
    config = expand(parse_grid({"grid": {"specialty": "volume_hunter"}}))[0]
    with pytest.raises(ValueError, match="train spec: unknown key 'fees'"):
        TrainSpec.from_json(config | {"fees": 1})
    with pytest.raises(ValueError, match="train spec: missing key 'seed'"):
        TrainSpec.from_json({k: v for k, v in config.items() if k != "seed"})
    with pytest.raises(ValueError, match="train spec seed must be an integer; got 'x'"):
        TrainSpec.from_json(config | {"seed": "x"})
    with pytest.raises(ValueError, match="train spec fee_bps must be a finite number >= 0; got -1"):
        TrainSpec.from_json(config | {"fee_bps": -1})


def test_the_data_spec_is_every_source_but_the_store(tmp_path: Path) -> None:
    store = Store.open(url=f"sqlite:///{tmp_path / 'redline.db'}")
    try:
        rules = RegimeRules(window="3d")
        sources = DataSources.from_config(
            store, {"exchange": "binance", "timeframe": "1h", "symbols": ["eth-usdt", "BTC/USDT"],
                    "start": "2023-01-01", "end": None, "trades": ["a.csv"]}, rules,
        )  # fmt: skip
        assert (
            sources.symbols == ("ETH/USDT", "BTC/USDT") and sources.sentiment_symbol == "ETH/USDT"
        )
        assert sources.start_ms == 1672531200000 and sources.end_ms is None
        assert sources.trades == (Path("a.csv"),) and sources.regime_rules == rules
        spec = sources.to_json()
        assert "store" not in spec and spec["regime_rules"]["window"] == "3d"
        assert spec["trades"] == ["a.csv"] and spec["flow"] == dataclasses.asdict(sources.flow)
        assert spec_hash(spec) != spec_hash(
            dataclasses.replace(sources, regime_rules=RegimeRules()).to_json()
        )
        with pytest.raises(ValueError, match=r"evolve\.data\.start must be a date like 2024-01-01"):
            DataSources.from_config(
                store, {"exchange": "binance", "timeframe": "1h", "symbols": ["BTC/USDT"],
                        "start": "soon"}, rules, where="evolve.data",
            )  # fmt: skip
    finally:
        store.close()


def test_a_run_hash_covers_its_regime_rules() -> None:
    config = load_config(REPO / "configs" / "evolve-smoke.yaml")
    assert config.evolve is not None
    rules = config.regimes
    assert config_hash(config.evolve, rules) == config_hash(config.evolve, rules)
    assert config_hash(config.evolve, dataclasses.replace(rules, window="3d")) != config_hash(
        config.evolve, rules
    )


def test_a_data_spec_read_back_from_a_run_names_what_is_missing(tmp_path: Path) -> None:
    """Serve reads a run's ``data`` as its typed spec: an older run's data without exchange or
    timeframe gets the defaults it was built with; one without symbols is refused by name."""
    store = Store.open(f"sqlite:///{tmp_path / 'redline.db'}", home=tmp_path)
    spec = DataSources.from_config(
        store, {"symbols": ["btc-usdt"]}, RegimeRules(), where="run r1 data"
    )
    assert (spec.exchange, spec.timeframe, spec.symbols) == ("binance", "1h", ("BTC/USDT",))
    with pytest.raises(
        ValueError, match=r"^run r1 data\.symbols: a data spec names at least one symbol"
    ):
        DataSources.from_config(store, {"exchange": "kraken"}, RegimeRules(), where="run r1 data")
    store.close()
