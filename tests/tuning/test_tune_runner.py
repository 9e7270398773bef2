"""run_trials on real Ray Tune (the session's 2-CPU Ray), real torch, the shipped sample's candles.

Tiny configs (a 2-bar window, 8 hidden units, 2 epochs, 2023-06 on) keep each trial to seconds.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from agents.models import load_model
from store.db import Store
from store.records.training import QueueItemRecord
from store.training import TrainingStore
from tuning.grids import compute_config_hash, expand, grid_hash, inference_configs, parse_grid
from tuning.runner import (
    TrialOutcome,
    checkpoint_relpath,
    inference_hash,
    optuna_history,
    run_trials,
)

pytestmark = pytest.mark.timeout(900)

GENOME: dict[str, Any] = {
    "hidden": 8, "depth": 1, "epochs": 2, "batch_size": 256, "feature_set": "fast", "horizon": 2,
}  # fmt: skip
INFERENCE = {"threshold": [0.1, 0.3], "horizon": [1, 3], "size": [1.0]}


def tiny_grid(**grid: Any) -> dict[str, Any]:
    base = {
        "name": "tiny", "specialty": "technical_analyst", "seed": 1,
        "data": {"symbols": ["BTC/USDT"], "start": "2023-06-01"},
        "genome": GENOME | {"lookback": [2, 3, 4]}, "inference": INFERENCE,
    }  # fmt: skip
    return {"grid": base | grid}


def url(home: Path) -> str:
    return f"sqlite:///{home / 'redline.db'}"


def training(home: Path) -> TrainingStore:
    return Store.open(url(home), home=home).training


def file_state(home: Path) -> dict[str, tuple[int, str]]:
    return {
        str(p.relative_to(home)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted((home / "checkpoints").rglob("*"))
        if p.is_file()
    }


def test_trials_train_checkpoint_backtest_and_store_once(ray_session: str, tmp_path: Path) -> None:
    home = tmp_path / "redline_data"
    spec = parse_grid(tiny_grid())
    configs = expand(spec)
    hashes = [compute_config_hash(c) for c in configs]
    tstore = training(home)
    tstore.ensure_experiment("tune-tiny", spec.canonical(), spec.seed)
    queued = [
        QueueItemRecord(h, spec.name, grid_hash(spec), spec.specialty, c)
        for h, c in zip(hashes[:2], configs[:2], strict=True)
    ]
    assert tstore.enqueue(queued) == (2, 0)
    seen: list[TrialOutcome] = []

    outcomes = run_trials(
        configs, store_url=url(home), home=home, experiment="tune-tiny", max_concurrent=2,
        on_trial=seen.append,
    )  # fmt: skip

    assert sorted(o.config_hash for o in outcomes) == sorted(hashes)
    assert {o.status for o in outcomes} == {"DONE"}, outcomes
    assert sorted(seen, key=lambda o: o.config_hash) == sorted(
        outcomes, key=lambda o: o.config_hash
    )
    for outcome in outcomes:
        assert 0 < outcome.train_seconds <= outcome.wall_seconds
    runs = {r.config_hash: r for r in tstore.training_runs(experiment="tune-tiny")}
    assert sorted(runs) == sorted(hashes)
    n_inference = len(inference_configs(spec))
    for config, config_hash in zip(configs, hashes, strict=True):
        run = runs[config_hash]
        assert run.status == "DONE" and run.reason == "" and run.stage == "DISCOVERY"
        assert run.config == json.loads(json.dumps(config)) and run.seed == 1
        assert run.model_path == checkpoint_relpath(config_hash)
        path = home / run.model_path
        assert hashlib.sha256(path.read_bytes()).hexdigest() == run.model_sha256
        payload = torch.load(path, weights_only=True)  # no pickled Python objects
        assert json.loads(payload["meta_json"])["config_hash"] == config_hash
        model, meta = load_model(path)
        assert meta["agent_id"] == f"tr-{config_hash[:12]}" and model.n_inputs > 0
        assert run.dataset_digest and run.train_seconds and run.train_seconds > 0
        backtests = tstore.backtests(config_hash)
        assert len(backtests) == n_inference
        assert {b.inference_hash for b in backtests} == {
            inference_hash(i) for i in inference_configs(config)
        }
        for backtest in backtests:
            assert backtest.inference_hash == inference_hash(backtest.inference)
            assert backtest.metrics["bars"] > 500
            total = sum(values["bars"] for values in backtest.per_regime.values())
            assert total == backtest.metrics["bars"]
            assert all("sharpe" in values for values in backtest.per_regime.values())
            assert any("skew" in values and "kurtosis" in values
                       for values in backtest.per_regime.values())  # fmt: skip
        best = max(b.sharpe for b in backtests if b.sharpe is not None)
        assert next(o for o in outcomes if o.config_hash == config_hash).sharpe == best
    assert {i.config_hash: i.status for i in tstore.queue_items()} == dict.fromkeys(
        hashes[:2], "DONE"
    )
    assert (home / "tune" / "tune-tiny").is_dir()
    assert not list((home / "checkpoints").rglob("*.tmp"))

    # The same configs again: nothing trains, nothing changes.
    before_rows = [(r, tstore.backtests(r.config_hash)) for r in tstore.training_runs()]
    before_files = file_state(home)
    tune_dirs = sorted(p.name for p in (home / "tune" / "tune-tiny").iterdir())
    again = run_trials(configs, store_url=url(home), home=home, experiment="tune-tiny")
    assert {o.status for o in again} == {"SKIPPED"}
    assert [o.sharpe for o in again] == [
        next(o for o in outcomes if o.config_hash == h).sharpe for h in hashes
    ]
    assert [(r, tstore.backtests(r.config_hash)) for r in tstore.training_runs()] == before_rows
    assert file_state(home) == before_files
    assert sorted(p.name for p in (home / "tune" / "tune-tiny").iterdir()) == tune_dirs


def test_a_failed_child_is_a_failed_row_without_a_file(ray_session: str, tmp_path: Path) -> None:
    home = tmp_path / "redline_data"
    # Ten days of bars: too short for 4 walk-forward folds with this lookback and horizon.
    spec = parse_grid(tiny_grid(data={"symbols": ["BTC/USDT"], "start": "2024-03-22"},
                                genome=GENOME | {"lookback": 24, "horizon": 24}))  # fmt: skip
    (config,) = expand(spec)
    config_hash = compute_config_hash(config)
    tstore = training(home)
    tstore.ensure_experiment("tune-fail", spec.canonical(), 1)
    tstore.enqueue([QueueItemRecord(config_hash, "tiny", grid_hash(spec), spec.specialty, config)])
    (outcome,) = run_trials([config], store_url=url(home), home=home, experiment="tune-fail")
    assert outcome.status == "FAILED" and "too few" in outcome.reason
    run = tstore.training_run(config_hash)
    assert run is not None and run.status == "FAILED" and "too few" in run.reason
    assert run.model_path is None and tstore.backtests(config_hash) == []
    assert not (home / checkpoint_relpath(config_hash)).exists()
    assert [i.status for i in tstore.queue_items()] == ["FAILED"]


def test_should_stop_stops_the_experiment(ray_session: str, tmp_path: Path) -> None:
    home = tmp_path / "redline_data"
    spec = parse_grid(tiny_grid(seed=2))
    configs = expand(spec)
    hashes = [compute_config_hash(c) for c in configs]
    tstore = training(home)
    tstore.ensure_experiment("tune-stop", spec.canonical(), 2)
    tstore.enqueue(
        [QueueItemRecord(h, "tiny", grid_hash(spec), spec.specialty, c)
         for h, c in zip(hashes, configs, strict=True)]
    )  # fmt: skip
    finished: list[TrialOutcome] = []
    outcomes = run_trials(
        configs, store_url=url(home), home=home, experiment="tune-stop", max_concurrent=1,
        on_trial=finished.append, should_stop=lambda: bool(finished), poll_s=0.0,
    )  # fmt: skip
    assert len(outcomes) == 3
    done = [o for o in outcomes if o.status == "DONE"]
    assert len(done) == 1 and finished == done
    assert {o.status for o in outcomes if o not in done} == {"STOPPED"}
    assert {o.reason for o in outcomes if o not in done} <= {"stopped running", "not started"}
    runs = tstore.training_runs()
    assert [r.config_hash for r in runs] == [done[0].config_hash]
    assert {p.name for p in (home / "checkpoints" / "tune").iterdir()} == {
        f"{done[0].config_hash}.pt"
    }
    statuses = {i.config_hash: i.status for i in tstore.queue_items()}
    assert statuses[done[0].config_hash] == "DONE"
    assert all(statuses[h] in ("QUEUED", "RUNNING") for h in hashes if h != done[0].config_hash)

    # Run again: only the unfinished configs train.
    rest = run_trials(configs, store_url=url(home), home=home, experiment="tune-stop")
    assert sorted(o.status for o in rest) == ["DONE", "DONE", "SKIPPED"]
    assert len(tstore.training_runs(status="DONE")) == 3


def test_optuna_search_resumes_from_the_database(ray_session: str, tmp_path: Path) -> None:
    home = tmp_path / "redline_data"
    spec = parse_grid(
        tiny_grid(
            name="tiny-optuna", search="optuna", num_samples=3,
            genome=GENOME | {"lookback": {"low": 2, "high": 6}, "hidden": [8, 12]},
        )
    )  # fmt: skip
    tstore = training(home)
    first = run_trials([], store_url=url(home), home=home, experiment="tune-optuna",
                       search="optuna", optuna=(spec, 2, []))  # fmt: skip
    assert len(first) == 2 and {o.status for o in first} <= {"DONE", "SKIPPED"}
    history = optuna_history(tstore, spec)
    assert len(history) == len(tstore.training_runs(status="DONE")) >= 1
    for config, reward in history:
        assert compute_config_hash(config) in {o.config_hash for o in first}
        assert isinstance(reward, float)
    second = run_trials([], store_url=url(home), home=home, experiment="tune-optuna",
                        search="optuna", optuna=(spec, 1, history))  # fmt: skip
    assert len(second) == 1
    runs = tstore.training_runs(status="DONE")
    assert len(runs) == len({r.config_hash for r in runs}) >= len(history)
    for run in runs:
        assert (
            run.config["genome"]["hidden"] in (8, 12) and 2 <= run.config["genome"]["lookback"] <= 6
        )
