"""``redline evolve --resume RUN_ID`` runs with the config stored with the run, not the defaults.

The smoke config lowers the champions' DSR bar to 0.5 (the default is 0.95). A run stores its whole
config (the evolve section, the champion rules, the regime rules); a resume judges its champions
with the stored bar, and a ``--config`` that differs is refused naming the keys, unless
``--override-config`` says to use it, with a warning naming what changed.
"""

from __future__ import annotations

import logging
import re
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from cluster.config import ConfigError, load_config
from cluster.evolve import run_config
from evolution.brain import latest_brain
from store.champions import ChampionStore
from store.db import Store
from store.records.population import RunRecord
from tests.support.smoke import (
    SMOKE_CONFIG,
    RunOnDisk,
    cli_env,
    open_runs,
    run_cli,
    short_id,
    sqlite_url,
)


def decisions(home: Path) -> list[tuple[str, str, str, str, str]]:
    """The champion decisions logged, free of run ids and clocks."""
    tstore = Store.open(sqlite_url(home), home=home).training
    return sorted(
        (p.specialty, p.regime, short_id(p.challenger.split("/", 1)[1]), p.decision, p.reason)
        for p in ChampionStore(tstore.database).promotions()
    )


def killed_before_judging(smoke_run: RunOnDisk, home: Path) -> str:
    """A copy of the smoke run as a driver killed after the Mother finished and before the
    champions were judged leaves it: no decision logged, the Mother's best-per-regime rows as it
    wrote them (DISCOVERY, no champion)."""
    shutil.copytree(smoke_run.home, home)
    with closing(sqlite3.connect(home / "redline.db")) as db, db:
        db.execute("DELETE FROM promotions")
        db.execute(
            "UPDATE regime_best_models SET stage = 'DISCOVERY', is_champion = 0, dsr = NULL, "
            "n_trials = NULL, checkpoint_path = NULL, checkpoint_sha256 = NULL"
        )
    return smoke_run.run_id


def variant(path: Path, **changes: Any) -> Path:
    """The smoke config with sections merged (``champions={...}``, ``evolve={"kill": {...}}``)."""
    raw = yaml.safe_load(SMOKE_CONFIG.read_text())

    def merge(into: dict[str, Any], top: dict[str, Any]) -> None:
        for key, value in top.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value

    merge(raw, changes)
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_run_stores_its_whole_config(smoke_run: RunOnDisk) -> None:
    run = smoke_run.runs.require_run(smoke_run.run_id)
    config = load_config(SMOKE_CONFIG)
    assert run.settings["champions"]["dsr_threshold"] == 0.5
    assert run.settings["regimes"] == config.regimes.to_dict()
    assert run.regime_rules == config.regimes
    assert run_config(run) == config


def test_a_resume_judges_champions_by_the_runs_own_bar(
    smoke_run: RunOnDisk, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Resumed without --config (the defaults say DSR 0.95), the run is judged with its stored 0.5:
    the same decisions as the uninterrupted run, none refused by the defaults' bar."""
    expected = decisions(smoke_run.home)
    assert any(d[3] == "PROMOTED" for d in expected), expected
    home = tmp_path / "redline_data"
    run_id = killed_before_judging(smoke_run, home)

    with caplog.at_level(logging.WARNING, logger="cluster.evolve"):
        run_cli("evolve", "--resume", run_id, home=home)

    assert decisions(home) == expected
    assert not any("< 0.95" in d[4] for d in decisions(home))
    # Rebuilt with the run's regime rules, every dataset is the one the run began with.
    assert [r.getMessage() for r in caplog.records if r.name == "cluster.evolve"] == []


def test_a_resume_with_another_config_is_refused_naming_the_keys(
    smoke_run: RunOnDisk, tmp_path: Path
) -> None:
    home = tmp_path / "redline_data"
    run_id = killed_before_judging(smoke_run, home)
    other = variant(
        tmp_path / "other.yaml",
        champions={"dsr_threshold": 0.9},
        evolve={"kill": {"min_hit_rate": 0.55}},
    )
    args = ["evolve", "--resume", run_id, "--config", str(other)]
    message = (
        rf"^run {run_id} resumes with the config stored with it; the given config differs in "
        r"2 key\(s\): champions\.dsr_threshold: 0\.5 -> 0\.9; evolve\.kill\.min_hit_rate: "
        r"0\.53 -> 0\.55\. Resume without --config to use the run's own, or add "
        r"--override-config to use the given one$"
    )
    with pytest.raises(ConfigError, match=message):
        CliRunner().invoke(app, args, env=cli_env(home), catch_exceptions=False)
    assert decisions(home) == []  # refused before anything ran
    # The same config as the run's is no difference at all.
    run_cli("evolve", "--resume", run_id, "--config", str(SMOKE_CONFIG), home=home)
    assert decisions(home) == decisions(smoke_run.home)


def test_override_config_uses_the_given_config_and_names_what_changed(
    smoke_run: RunOnDisk, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "redline_data"
    run_id = killed_before_judging(smoke_run, home)
    other = variant(
        tmp_path / "other.yaml", champions={"dsr_threshold": 0.99}, regimes={"window": "3d"}
    )

    with caplog.at_level(logging.WARNING, logger="cluster.evolve"):
        run_cli(
            "evolve", "--resume", run_id, "--config", str(other), "--override-config", home=home
        )

    warnings = [r.getMessage() for r in caplog.records if r.name == "cluster.evolve"]
    assert warnings[0] == (
        f"run {run_id}: --override-config: resuming with the given config instead of the stored "
        "one, for this invocation (the run keeps its stored config): "
        'champions.dsr_threshold: 0.5 -> 0.99; regimes.window: "7d" -> "3d"'
    )
    # Other regime rules label other datasets: said too, naming them.
    assert len(warnings) == 2 and re.fullmatch(
        rf"run {run_id}: 2 dataset\(s\) differ from the ones the run began with: "
        r"technical_analyst/binance_BTC-USDT_1h \(\w{12} -> \w{12}\), "
        r"volume_hunter/binance_BTC-USDT_1h \(\w{12} -> \w{12}\); the children still to train "
        r"use the new data, so the run will not equal an uninterrupted one",
        warnings[1],
    ), warnings
    judged = decisions(home)
    assert judged and all(d[3] == "REFUSED" and "< 0.99" in d[4] for d in judged), judged
    run = open_runs(home).require_run(run_id)
    assert run.settings["champions"]["dsr_threshold"] == 0.5  # the run keeps its own


def test_a_run_stored_before_its_settings_takes_them_from_the_given_config() -> None:
    smoke = load_config(SMOKE_CONFIG)
    assert smoke.evolve is not None
    run = RunRecord(
        run_id="r-old",
        config=smoke.evolve.model_dump(mode="json"),
        config_hash="0" * 64,
        root_seed=smoke.evolve.seed,
        generations_planned=2,
    )
    assert run_config(run).champions.dsr_threshold == 0.95  # nothing stored: the defaults
    assert run_config(run, smoke) == smoke


def test_mother_train_rebuilds_with_the_runs_own_regime_rules(
    smoke_run: RunOnDisk, tmp_path: Path
) -> None:
    """``redline --config F mother train RUN`` with other regime rules in F: the brain is refit on
    the run's own datasets (regimes labelled by the run's rules), so it scores as the run's did."""
    home = tmp_path / "redline_data"
    shutil.copytree(smoke_run.home, home)
    before = latest_brain(home, smoke_run.run_id)
    assert before is not None and "best_child" in before["scores"]
    other = variant(tmp_path / "other.yaml", regimes={"window": "3d"})

    run_cli("--config", str(other), "mother", "train", smoke_run.run_id, home=home)

    after = latest_brain(home, smoke_run.run_id)
    assert after is not None and after["version"] != before["version"]
    assert (after["scores"], after["per_regime"]) == (before["scores"], before["per_regime"])
