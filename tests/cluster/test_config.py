from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from cluster.config import ConfigError, data_home, load_config
from market.regimes import REGIMES, RegimeRules
from store.urls import default_url

REPO = Path(__file__).resolve().parents[2]


def test_defaults_load_into_the_typed_tree() -> None:
    config = load_config()
    assert config.fetch.page_limit == 1000
    rules = config.regimes
    assert [rule.name for rule in rules.rules] == list(REGIMES)
    assert rules.rules[0].trend_min == 0.05
    assert rules == RegimeRules()  # the YAML and the code's defaults say the same thing
    with pytest.raises(ValueError, match="frozen"):
        config.fetch.page_limit = 5  # type: ignore[misc]


def test_a_file_is_merged_on_top_of_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("fetch:\n  max_retries: 2\n")
    config = load_config(path)
    assert config.fetch.max_retries == 2
    assert config.fetch.page_limit == 1000  # untouched keys keep their defaults


def test_unknown_key_is_refused_with_its_dotted_name(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("fetch:\n  max_retires: 2\n")
    with pytest.raises(ConfigError, match=r"fetch\.max_retires: Extra inputs are not permitted"):
        load_config(path)


def test_bad_value_names_key_and_value(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("fetch:\n  page_limit: -3\n")
    with pytest.raises(
        ConfigError, match=r"fetch\.page_limit: .*greater than or equal to 1 \(got -3\)"
    ):
        load_config(path)


def test_bad_regime_name_and_window_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("regimes:\n  window: fortnight\n")
    with pytest.raises(ConfigError, match=r"regimes\.window: .*'fortnight'"):
        load_config(path)
    path.write_text("regimes:\n  rules:\n    - name: sideways\n")
    with pytest.raises(ConfigError, match=r"regimes\.rules\.0\.name: .*'sideways'"):
        load_config(path)


def test_missing_file_and_bad_yaml_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    path = tmp_path / "broken.yaml"
    path.write_text("fetch: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_environment_picks_home_and_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDLINE_HOME", str(tmp_path / "root"))
    monkeypatch.delenv("REDLINE_DATABASE_URL", raising=False)
    home = data_home()
    assert home == tmp_path / "root"
    assert default_url(home) == f"sqlite:///{tmp_path / 'root' / 'redline.db'}"
    monkeypatch.setenv("REDLINE_DATABASE_URL", "postgresql+psycopg://u@h/db")
    assert default_url(home) == "postgresql+psycopg://u@h/db"


def test_a_remote_home_in_the_config_or_the_environment_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Object-store data roots come with the multi-node issue; until then a URL is refused
    naming where it was set, never turned into a local folder called "s3:"."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDLINE_HOME", raising=False)
    path = tmp_path / "remote.yaml"
    path.write_text("data:\n  home: s3://bucket/redline\n")
    with pytest.raises(
        ConfigError,
        match=r"remote\.yaml: data\.home: Value error, data\.home must be a local path .*; got "
        r"'s3://bucket/redline'\. Remote data roots \(s3://, gs://, hdfs://, \.\.\.\) are not "
        r"supported yet: they come with the multi-node issue",
    ):
        load_config(path)
    monkeypatch.setenv("REDLINE_HOME", "gs://bucket/redline")
    with pytest.raises(ValueError, match=r"^REDLINE_HOME must be a local path .*; got 'gs://"):
        data_home(load_config())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["remote.yaml"]


def test_ray_cluster_yaml_passes_rays_own_schema() -> None:
    config = yaml.safe_load((REPO / "ray_cluster.yaml").read_text())
    validate_config(prepare_config(config))
    assert config["provider"]["type"] == "local"
    assert any("-c constraints.txt" in command for command in config["setup_commands"])


def test_the_edge_benchmark_holds_out_the_final_test_and_judges_by_the_default_rules() -> None:
    """benchmarks/edge.py's promise: its evolution ends where the final test starts, and its
    champions are judged by the project's default rules (no lowered bar)."""
    from cluster.config import CONFIG_DIR, ChampionsConfig, load_config

    config = load_config(CONFIG_DIR / "evolve-edge.yaml")
    assert config.evolve is not None
    assert config.evolve.data.end == "2023-04-01"
    assert config.evolve.data.symbols == (
        "BTC/USDT",
        "ETH/USDT",
        "SOL/USDT",
        "XRP/USDT",
        "BNB/USDT",
    )
    assert config.champions == ChampionsConfig()
    assert config.champions.dsr_threshold == 0.95


def test_a_config_that_lowers_a_champion_bar_is_named_key_by_key() -> None:
    from cluster.config import CONFIG_DIR, ChampionsConfig, load_config

    assert ChampionsConfig().changed_from_defaults() == []
    demo = load_config(CONFIG_DIR / "evolve-demo.yaml")
    assert demo.champions.changed_from_defaults() == ["champions.dsr_threshold 0.25 (default 0.95)"]
    lowered = ChampionsConfig.model_validate({"margin": 0.0, "classifier": {"auc_floor": 0.5}})
    assert lowered.changed_from_defaults() == [
        "champions.margin 0.0 (default 0.25)",
        "champions.classifier.auc_floor 0.5 (default 0.85)",
    ]
