"""Grid files: expansion counts, config hashing, validation errors naming the key and the value."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from agents.specialties import get_specialty
from tuning.grids import (
    GridError,
    compute_config_hash,
    config_from_params,
    expand,
    grid_hash,
    inference_configs,
    load_grid,
    optuna_space,
    params_of,
    parse_grid,
)

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "grids" / "smoke.yaml"
OPTUNA = REPO / "configs" / "grids" / "technical_analyst-optuna.yaml"


def raw(**grid: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "t",
        "specialty": "technical_analyst",
        "seed": 3,
        "genome": {"lookback": [4, 8], "hidden": [16, 32, 48], "epochs": 2},
        "inference": {"threshold": [0.1, 0.3], "horizon": [1, 4], "size": [1.0]},
    }
    return {"grid": base | grid}


def test_smoke_grid_is_8_configs_with_an_inference_grid_of_10() -> None:
    spec = load_grid(SMOKE)
    configs = expand(spec)
    assert len(configs) == 8
    assert len({compute_config_hash(c) for c in configs}) == 8
    assert len(inference_configs(spec)) == 10
    assert all(len(inference_configs(c)) == 10 for c in configs)
    assert spec.champions  # the smoke grid lowers the promotion thresholds
    space = get_specialty("technical_analyst").space
    for config in configs:
        assert config["dataset"] == "binance_BTC-USDT_1h"
        assert config["data"]["start"] == "2023-01-01"
        space.validate(config["genome"])  # every gene present and in bounds
        assert config["grid"] == "smoke"


def test_cartesian_product_and_unnamed_genes_at_their_midpoint() -> None:
    spec = parse_grid(raw())
    configs = expand(spec)
    assert len(configs) == 2 * 3
    assert [(c["genome"]["lookback"], c["genome"]["hidden"]) for c in configs] == [
        (4, 16), (4, 32), (4, 48), (8, 16), (8, 32), (8, 48),
    ]  # fmt: skip
    genome = configs[0]["genome"]
    assert genome["epochs"] == 2
    # Not named: the gene's midpoint (decode(0.5)), log genes at their geometric middle.
    assert genome["depth"] == 2 and genome["dropout"] == pytest.approx(0.2)
    assert genome["lr"] == pytest.approx(1e-3) and genome["weight_decay"] == 1e-4
    assert genome["batch_size"] == 128 and genome["feature_set"] == "slow"
    # A choice gene with a default (what genomes without it train as) takes the default.
    assert (genome["family"], genome["label"], genome["primary"]) == ("mlp", "fwd", "none")
    assert all(c["seed"] == 3 for c in configs)


def test_one_config_set_per_symbol() -> None:
    spec = parse_grid(raw(data={"symbols": ["BTC/USDT", "eth/usdt"]}))
    configs = expand(spec)
    assert len(configs) == 12
    assert {c["dataset"] for c in configs} == {"binance_BTC-USDT_1h", "binance_ETH-USDT_1h"}
    assert {tuple(c["data"]["symbols"]) for c in configs} == {("BTC/USDT",), ("ETH/USDT",)}


def test_random_search_is_seeded_and_unique() -> None:
    grid = raw(
        search="random",
        num_samples=7,
        genome={"lr": {"low": 1e-4, "high": 1e-2}, "lookback": {"low": 2, "high": 20},
                "feature_set": {"choices": ["fast", "all"]}},
    )  # fmt: skip
    first, again = expand(parse_grid(grid)), expand(parse_grid(copy.deepcopy(grid)))
    assert first == again
    assert len({compute_config_hash(c) for c in first}) == 7
    for c in first:
        assert 1e-4 <= c["genome"]["lr"] <= 1e-2 and 2 <= c["genome"]["lookback"] <= 20
        assert c["genome"]["feature_set"] in ("fast", "all")
    other = expand(parse_grid(raw(**(grid["grid"] | {"seed": 4}))))
    assert other != first
    # A space with fewer distinct configs than asked for gives them all, once.
    small = raw(search="random", num_samples=10, genome={"depth": [1, 2]})
    assert len(expand(parse_grid(small))) == 2


def test_config_hash_is_stable_and_ignores_key_order_numpy_and_grid_name() -> None:
    config = expand(parse_grid(raw()))[0]
    digest = compute_config_hash(config)
    assert len(digest) == 64 and digest == compute_config_hash(copy.deepcopy(config))
    reordered = dict(reversed(list(config.items())))
    reordered["genome"] = dict(reversed(list(config["genome"].items())))
    assert compute_config_hash(reordered) == digest
    assert compute_config_hash(config | {"grid": "another-grid"}) == digest
    assert compute_config_hash({k: v for k, v in config.items() if k != "grid"}) == digest
    numpy = config | {
        "seed": np.int64(config["seed"]),
        "genome": config["genome"] | {"lookback": np.int32(4), "lr": np.float64(1e-3)},
        "inference": {k: tuple(v) for k, v in config["inference"].items()},
    }
    assert compute_config_hash(numpy) == digest
    assert compute_config_hash(config | {"seed": 4}) != digest
    assert compute_config_hash(config | {"genome": config["genome"] | {"lr": 1.1e-3}}) != digest
    with pytest.raises(ValueError, match="finite"):
        compute_config_hash(config | {"fee_bps": float("nan")})
    # Pinned to the canonical text: a config's identity must not drift (queue rows, checkpoints).
    pinned = {"specialty": "technical_analyst", "genome": {"lr": 0.001, "lookback": 4}, "seed": 1}
    text = b'{"genome":{"lookback":4,"lr":0.001},"seed":1,"specialty":"technical_analyst"}'
    assert (
        compute_config_hash(pinned)
        == hashlib.sha256(text).hexdigest()
        == ("073b8d0adc742e7abc297d8cdc4057c2475165f07e8cb9c83cff5f97dcb39480")
    )


def test_grid_hash_ignores_the_path_and_yaml_order(tmp_path: Path) -> None:
    spec = load_grid(SMOKE)
    text = SMOKE.read_text()
    copy_path = tmp_path / "elsewhere.yaml"
    copy_path.write_text(text)
    assert grid_hash(load_grid(copy_path)) == grid_hash(spec)
    shuffled = yaml.safe_load(text)
    shuffled["grid"] = dict(reversed(list(shuffled["grid"].items())))
    shuffled["grid"]["inference"]["threshold"].reverse()
    (tmp_path / "shuffled.yaml").write_text(yaml.safe_dump(shuffled, sort_keys=False))
    assert grid_hash(load_grid(tmp_path / "shuffled.yaml")) == grid_hash(spec)
    assert expand(load_grid(tmp_path / "shuffled.yaml")) == expand(spec)
    changed = yaml.safe_load(text)
    changed["grid"]["fee_bps"] = 5
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(changed))
    assert grid_hash(load_grid(tmp_path / "changed.yaml")) != grid_hash(spec)


@pytest.mark.parametrize(
    ("grid", "match"),
    [
        ({"genome": {"lookback": [4, 999]}},
         r"grid\.genome\.lookback: 999 is above the gene's upper bound 24"),
        ({"genome": {"lookback": 0}}, r"grid\.genome\.lookback: 0 is below the gene's lower bound 1"),
        ({"genome": {"lookback": 2.5}}, r"grid\.genome\.lookback: 2\.5 must be an integer"),
        ({"genome": {"lr": "fast"}}, r"grid\.genome\.lr: 'fast' must be a finite number"),
        ({"genome": {"feature_set": ["fast", "turbo"]}},
         r"grid\.genome\.feature_set: 'turbo' is not one of \['fast', 'slow', 'all'\]"),
        ({"genome": {"colour": [1]}}, r"grid\.genome\.colour: technical_analyst has no gene"),
        ({"genome": {"lr": {"low": 1e-4, "high": 1e-3}}},
         r"grid\.genome\.lr: a range .* cannot be enumerated by search 'grid'"),
        ({"genome": {"lr": {"low": 1e-3, "high": 1e-4}}, "search": "random", "num_samples": 2},
         r"grid\.genome\.lr: high 0\.0001 is below low 0\.001"),
        ({"genome": {"lr": {"low": 1e-4, "high": 0.5}}, "search": "optuna", "num_samples": 2},
         r"grid\.genome\.lr\.high: 0\.5 is above the gene's upper bound 0\.01"),
        ({"search": "random"}, r"grid\.num_samples: search 'random' needs num_samples"),
        ({"search": "bayes"}, r"grid\.search: 'bayes' is not one of grid, random, optuna"),
        ({"specialty": "chartist"}, r"grid\.specialty: 'chartist' is not a specialty"),
        ({"specialty": "rugpull_detector"}, r"grid\.specialty: 'rugpull_detector' cannot be"),
        ({"seed": -1}, r"grid\.seed: -1 must be an integer >= 0"),
        ({"fee_bps": -2}, r"grid\.fee_bps: -2 must be a finite number >= 0"),
        ({"inference": {"threshold": [0.1, 1.5]}}, r"grid\.inference\.threshold: 1\.5 must be in"),
        ({"inference": {"horizon": [0]}}, r"grid\.inference\.horizon: 0 must be an integer >= 1"),
        ({"inference": {"size": [2]}}, r"grid\.inference\.size: 2 must be in \(0, 1\]"),
        ({"inference": {"sizing": [1]}}, r"grid\.inference\.sizing: unknown key"),
        ({"data": {"timeframe": "7x"}}, r"grid\.data\.timeframe: "),
        ({"data": {"start": "last tuesday"}}, r"grid\.data\.start: must be a date"),
        ({"data": {"symbols": []}}, r"grid\.data\.symbols: needs a non-empty list"),
        ({"epochs": 3}, r"grid\.epochs: unknown key"),
    ],
)  # fmt: skip
def test_validation_errors_name_the_key_and_the_value(grid: dict[str, Any], match: str) -> None:
    base = raw()["grid"]
    merged = base | grid
    with pytest.raises(GridError, match=match):
        parse_grid({"grid": merged})


def test_file_errors_name_the_file_and_the_champions_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw() | {"champions": {"margin": -1}}))
    with pytest.raises(GridError, match=r"bad\.yaml: champions\.margin: -1 must be"):
        load_grid(path)
    for field, value, bound in [
        ("dsr_threshold", 1.5, "between 0 and 1"),
        ("min_regime_bars", 1, "an integer >= 2"),
        ("min_live_trades", 0, "an integer >= 1"),
    ]:  # the bounds the champion policy enforces, refused before anything is queued
        path.write_text(yaml.safe_dump(raw() | {"champions": {field: value}}))
        with pytest.raises(GridError, match=rf"champions\.{field}: {value} must be {bound}$"):
            load_grid(path)
    path.write_text(yaml.safe_dump(raw() | {"champions": {"dsr": 0.5}}))
    with pytest.raises(GridError, match=r"champions\.dsr: unknown key"):
        load_grid(path)
    path.write_text(yaml.safe_dump({"grids": {}}))
    with pytest.raises(GridError, match=r"file\.grids: unknown key"):
        load_grid(path)
    with pytest.raises(GridError, match="does not exist"):
        load_grid(tmp_path / "missing.yaml")


def test_optuna_space_and_params_round_trip() -> None:
    spec = load_grid(OPTUNA)
    assert spec.search == "optuna" and spec.num_samples == 8
    with pytest.raises(GridError, match="come from the searcher"):
        expand(spec)
    space = optuna_space(spec)
    assert set(space) == {"lookback", "hidden", "lr", "dropout", "feature_set", "horizon"}
    params = {name: domain.sample() for name, domain in space.items()}
    params["lookback"] = np.int64(params["lookback"])  # what a searcher may hand back
    config = config_from_params(spec, params)
    get_specialty("technical_analyst").space.validate(config["genome"])
    assert config["genome"]["epochs"] == 3 and config["genome"]["depth"] == 2
    assert params_of(spec, config) == {k: config["genome"][k] for k in space}
    assert config_from_params(spec, params_of(spec, config)) == config
    with pytest.raises(GridError, match=r"params\.lookback: 99 is above"):
        config_from_params(spec, params | {"lookback": 99})


def test_regime_rules_join_every_trial_and_its_hash() -> None:
    from dataclasses import asdict, replace

    from agents.spec import TrainSpec
    from market.regimes import RegimeRules
    from tuning.grids import with_regime_rules

    spec = parse_grid({"grid": {"specialty": "technical_analyst", "genome": {"lookback": [2, 3]}}})
    rules = RegimeRules()
    ruled = with_regime_rules(spec, rules)
    other = with_regime_rules(spec, replace(rules, window="3d"))
    plain_hashes = [compute_config_hash(c) for c in expand(spec)]
    ruled_configs = expand(ruled)
    assert [c["data"]["regime_rules"] for c in ruled_configs] == [asdict(rules) | {
        "rules": [asdict(r) for r in rules.rules]}] * 2  # fmt: skip
    assert RegimeRules.from_dict(ruled_configs[0]["data"]["regime_rules"]) == rules
    ruled_hashes = [TrainSpec.from_json(c).hash for c in ruled_configs]
    other_hashes = [compute_config_hash(c) for c in expand(other)]
    assert len({*plain_hashes, *ruled_hashes, *other_hashes}) == 6
    assert grid_hash(ruled) != grid_hash(other)


def test_an_experiment_added_under_other_regime_rules_is_refused(tmp_path: Path) -> None:
    """`queue add` stores the rules a grid's experiment is judged under; the same experiment
    under other rules is refused naming both digests, and nothing is queued twice."""
    from market.regimes import RegimeRules
    from store.db import Store
    from tuning.queue import add_grid, experiment_id

    home = tmp_path / "redline_data"
    home.mkdir()
    spec = load_grid(SMOKE)
    strict = RegimeRules(window="3d", rules=RegimeRules().rules)
    with Store.open(f"sqlite:///{home / 'redline.db'}", home=home) as store:
        added, skipped = add_grid(store.training, spec, RegimeRules())
        assert (added, skipped) == (8, 0)
        experiment = experiment_id(grid_hash(spec))
        assert store.runs.require_run(experiment).regime_rules == RegimeRules()
        with pytest.raises(
            ValueError,
            match=rf"regimes: experiment {experiment} was added under regime rules "
            rf"{RegimeRules().digest()}; this config's are {strict.digest()}",
        ):
            add_grid(store.training, spec, strict)
        assert store.training.queue_counts()["QUEUED"] == 8
