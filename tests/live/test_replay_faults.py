"""The living loop on real Ray and real SQLite, replayed over real candles: killed with SIGKILL
in the middle of a retrain and started again, it backfills, stores no candle, label or child
twice, reruns the retrain once, and ends in the state of an uninterrupted replay (same seed)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from cluster.config import load_config
from live.replay import replay
from market.when import parse_when
from store.db import Store
from tests.cluster.test_evolve_faults import run_actors
from tests.support.smoke import REPO, cli_env, sqlite_url
from tests.support.waiting import wait_for

FROM, UNTIL = "2024-01-01", "2024-01-02T12:00"
LIVE = {
    "watch": ["BTC/USDT"],
    "history_days": 120,
    "fear_greed": True,
    "evolve": {"seed": 7, "generations": 1,
               "population": {"technical_analyst": 2, "volume_hunter": 2}},
    "schedules": {"retrain": "0 0 * * 1", "evolve": None},  # 2024-01-01 is a Monday: once
}  # fmt: skip


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("live") / "live-test.yaml"
    # A test-only gate far below the defaults: 4 children on 120 days crown nothing under them,
    # and the state compared must hold champions that answer and votes that are labelled.
    champions = {"dsr_threshold": 0.0, "min_regime_bars": 20, "margin": 0.0}
    path.write_text(yaml.safe_dump({"live": LIVE, "champions": champions}))
    return path


@pytest.fixture(scope="module")
def uninterrupted(
    ray_session: str, config_file: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    home = tmp_path_factory.mktemp("uninterrupted") / "redline_data"
    store = Store.open(sqlite_url(home), home=home)
    replay(load_config(config_file), store, home, shared_data, parse_when(FROM, "f"),
           parse_when(UNTIL, "u"))  # fmt: skip
    store.close()
    return home


def rows(home: Path, query: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(home / "redline.db")) as db:
        return list(db.execute(query))


STATE = {
    "candles": "SELECT symbol, COUNT(*), MIN(ts), MAX(ts) FROM market_data GROUP BY symbol",
    "answers": "SELECT symbol, ts, direction, size, regime FROM live_answers ORDER BY symbol, ts",
    "labels": "SELECT request_id, agent_id, vote, forward_return FROM vote_labels "
    "ORDER BY request_id, agent_id",
    "children": "SELECT agent_id, status, sharpe FROM agents ORDER BY agent_id",
    "champions": "SELECT specialty, regime, agent_id, stage, sharpe FROM regime_best_models "
    "WHERE is_champion ORDER BY specialty, regime",
    "decisions": "SELECT specialty, regime, decision, challenger FROM promotions ORDER BY id",
}
DUPLICATES = {
    "candles": "SELECT symbol, ts FROM market_data GROUP BY symbol, timeframe, ts "
    "HAVING COUNT(*) > 1",
    "labels": "SELECT request_id, agent_id FROM vote_labels GROUP BY request_id, run_id, "
    "agent_id HAVING COUNT(*) > 1",
    "children": "SELECT agent_id FROM agents GROUP BY run_id, agent_id HAVING COUNT(*) > 1",
}


def test_the_uninterrupted_replay_trains_answers_and_labels(uninterrupted: Path) -> None:
    [(symbol, count, first, last)] = rows(uninterrupted, STATE["candles"])
    assert symbol == "BTC/USDT" and first == parse_when("2023-09-03", "t")
    assert last == parse_when("2024-01-02T11:00", "t")
    assert count == 120 * 24 + 36  # the backfill's 120 days and the replay's 36 hours
    assert len(rows(uninterrupted, STATE["children"])) == 4  # one retrain of 4 children
    # An answer at every close from the start on (the first, at 00:00, on 2023-12-31 23:00's
    # candle, before the first retrain: flat).
    answers = rows(uninterrupted, STATE["answers"])
    assert [a[1] for a in answers] == [parse_when(FROM, "f") + h * 3_600_000 for h in range(-1, 36)]
    assert answers[0][2:4] == (0, 0.0)
    jobs = dict(rows(uninterrupted, "SELECT name, runs FROM live_jobs"))
    assert jobs["retrain"] == 1 and jobs["collect"] == 37  # the backfill, then each close
    # Under the test's low gate the retrain crowned champions, whose votes Serve's code answered
    # with and the label job labelled (the equality below compares real state).
    assert rows(uninterrupted, STATE["champions"])
    assert any(direction != 0 for _, _, direction, _, _ in answers)
    assert rows(uninterrupted, STATE["labels"])
    # The answers swapped to the crowned ensemble once, at the first close after the retrain.
    swaps = rows(uninterrupted, "SELECT at_ms FROM live_events WHERE kind = 'swap'")
    assert swaps == [(parse_when("2024-01-01T01:00", "t"),)]


def test_killed_mid_retrain_and_restarted_it_ends_as_the_uninterrupted_replay(
    uninterrupted: Path, ray_session: str, config_file: Path, shared_data: Path, tmp_path: Path
) -> None:
    home = tmp_path / "redline_data"
    env = {k: v for k, v in os.environ.items() if k != "REDLINE_DATABASE_URL"}
    env |= {"REDLINE_HOME": str(home), "RAY_ADDRESS": ray_session, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "cli", "--config", str(config_file), "live",
               "--replay-data", str(shared_data), "--replay-from", FROM, "--replay-until", UNTIL]  # fmt: skip
    log_path = tmp_path / "live.log"
    with log_path.open("w") as log:
        service = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for("the database", (home / "redline.db").exists, 120)

            def mid_retrain() -> bool:
                assert service.poll() is None, log_path.read_text()[-3000:]
                try:
                    running = rows(home, "SELECT 1 FROM live_jobs WHERE name = 'retrain' AND "
                                         "outcome = 'running'")  # fmt: skip
                    trained = rows(home, "SELECT 1 FROM agents WHERE status != 'PENDING'")
                except sqlite3.OperationalError:  # tables not there yet
                    return False
                return bool(running and trained)

            wait_for("a child trained mid-retrain", mid_retrain, 300, every=0.1)
            service.send_signal(signal.SIGKILL)
            assert service.wait(timeout=30) == -signal.SIGKILL
        finally:
            if service.poll() is None:
                service.kill()
    assert rows(home, "SELECT outcome FROM live_jobs WHERE name = 'retrain'") == [("running",)]
    [(run_id,)] = rows(home, "SELECT run_id FROM runs")
    # Ray ends a dead driver's actors (its job owns them); the rerun names its Mother the same.
    wait_for("the killed service's actors to die",
             lambda: not run_actors(ray_session, run_id, alive_only=True), 60)  # fmt: skip

    store = Store.open(sqlite_url(home), home=home)
    replay(load_config(config_file), store, home, shared_data, parse_when(FROM, "f"),
           parse_when(UNTIL, "u"))  # fmt: skip
    store.close()

    assert {name: rows(home, q) for name, q in DUPLICATES.items()} == {
        name: [] for name in DUPLICATES
    }
    jobs = dict(rows(home, "SELECT name, runs FROM live_jobs"))
    assert jobs["retrain"] == 1  # rerun once, for its slot: finished once
    assert len(rows(home, "SELECT 1 FROM live_events WHERE kind = 'retrain'")) == 1
    for name, query in STATE.items():
        assert rows(home, query) == rows(uninterrupted, query), name


def test_status_json_after_the_replay_shows_coverage_schedules_and_champions(
    uninterrupted: Path, config_file: Path
) -> None:
    result = CliRunner().invoke(
        app, ["--config", str(config_file), "status", "--json"], env=cli_env(uninterrupted),
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["clock"] == "2024-01-02T12:00+00:00"
    [btc] = status["series"]
    assert btc == {
        "series": "binance BTC/USDT 1h", "first": "2023-09-03T00:00+00:00",
        "last": "2024-01-02T11:00+00:00", "rows": 2916, "holes": 0, "lag_bars": 0,
        "labelled": 2915, "training": True, "enabled_at": "2024-01-01T00:00+00:00",
    }  # fmt: skip
    schedules = status["schedules"]
    assert set(schedules) == {"collect", "label", "answer", "monitor", "retrain", "analysis"}
    assert schedules["retrain"]["runs"] == 1 and schedules["retrain"]["outcome"] == "ok"
    assert schedules["retrain"]["next"] == "2024-01-08T00:00+00:00"
    assert schedules["collect"]["next"] == "2024-01-02T13:00+00:00"
    champions = rows(uninterrupted, STATE["champions"])
    assert [c["model"].split("/")[1] for c in status["champions"]] == [c[2] for c in champions]
    refused = rows(uninterrupted, "SELECT COUNT(*) FROM promotions WHERE decision = 'REFUSED'")
    assert len(status["refusals"]) == min(refused[0][0], 10)
    assert status["errors"] == []
