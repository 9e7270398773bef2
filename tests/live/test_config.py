"""The ``live:`` section and the ``redline live`` command refuse bad input naming the key or the
flag and the value."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from cluster.config import ConfigError, LiveConfig, load_config
from tests.support.smoke import cli_env


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "live.yaml"
    path.write_text(text)
    return path


def test_the_shipped_live_configs_load_with_the_default_champion_rules() -> None:
    for name in ("live.yaml", "live-replay.yaml"):
        config = load_config(Path("configs") / name)
        assert config.live is not None and config.champions.changed_from_defaults() == []
    assert LiveConfig().schedules.retrain == "0 */6 * * *"  # every retrain_hours (6)


def test_the_retrain_schedule_follows_retrain_hours_unless_set() -> None:
    assert LiveConfig(retrain_hours=12).schedules.retrain == "0 */12 * * *"
    assert LiveConfig(retrain_hours=48).schedules.retrain == "0 0 */2 * *"
    assert LiveConfig(retrain_hours=5, schedules={"retrain": "0 3 * * *"}).schedules.retrain == (  # type: ignore[arg-type]
        "0 3 * * *")  # fmt: skip
    with pytest.raises(ValueError, match=r"retrain_hours must divide 24 or be whole days.*got 5"):
        LiveConfig(retrain_hours=5)


def test_a_bad_cron_expression_is_refused_naming_the_schedule(tmp_path: Path) -> None:
    path = _write(tmp_path, "live:\n  schedules:\n    retrain: every six hours\n")
    with pytest.raises(
        ConfigError, match=r"live\.schedules\.retrain.*cron expression.*'every six hours'"
    ):
        load_config(path)


def test_a_specialty_the_loop_cannot_retrain_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "live:\n  evolve:\n    population: {whale_watcher: 3}\n")
    with pytest.raises(ConfigError, match=r"live.*retrains candle specialties.*got whale_watcher"):
        load_config(path)


def test_live_without_a_live_section_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"has no 'live' section \(see configs/live\.yaml\)"):
        CliRunner().invoke(app, ["live"], env=cli_env(tmp_path), catch_exceptions=False)


def test_a_replay_needs_all_three_flags_and_an_end_after_its_start(tmp_path: Path) -> None:
    config = str(Path("configs/live-replay.yaml").resolve())
    with pytest.raises(
        ValueError, match="a replay needs --replay-data, --replay-from and --replay-until"
    ):
        CliRunner().invoke(app, ["--config", config, "live", "--replay-from", "2024-01-01"],
                           env=cli_env(tmp_path), catch_exceptions=False)  # fmt: skip
    args = ["--config", config, "live", "--replay-data", str(tmp_path), "--replay-from",
            "2024-03-01", "--replay-until", "2024-01-01"]  # fmt: skip
    with pytest.raises(
        ValueError,
        match=r"--replay-until must be after --replay-from; got 2024-03-01T00:00\+00:00 \.\. 2024-01-01",
    ):
        CliRunner().invoke(app, args, env=cli_env(tmp_path), catch_exceptions=False)
