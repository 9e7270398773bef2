"""The training queue on real Ray Tune, and the model commands, on the shipped sample.

Every queue test trains a 4-config variant of ``configs/grids/smoke.yaml`` (lookback 2/4/8/12,
tiny networks, 2 epochs) and drives ``redline queue ...`` as a user would: ``queue start`` is a
subprocess (``python -m cli``) joined to this session's Ray, paused, cancelled or SIGKILLed
from here while it trains; ``queue resume`` then runs in-process (Typer's runner).

- pause, then resume: the configs trained before the pause are not trained again;
- a SIGKILL mid-run, then resume: exactly one ``training_runs`` row per config, all DONE, no
  RUNNING queue row, one model file per config and no other file;
- cancel: only DONE rows and their files are left (no orphan file, no half-written row);
- an Optuna grid's slots close one per trial, naming the config it trained;
- prune never deletes a champion or an ancestor of one (an evolution family written beside the
  queue's models: a champion three generations deep), and reports orphans and missing files.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml

from cluster.config import load_config
from store.champions import ChampionStore
from store.db import Store
from store.records.champions import PromotionRecord, RegimeBestRecord
from store.records.population import AgentRecord, GenerationRecord, RunRecord
from store.training import TrainingStore
from tests.support.smoke import REPO, run_cli, sqlite_url
from tests.support.waiting import table_rows, wait_for
from tuning.grids import (
    GridError,
    GridSpec,
    compute_config_hash,
    expand,
    load_grid,
    with_regime_rules,
)
from tuning.queue import experiment_id, queue_running, tune_checkpoint

SMOKE_GRID = REPO / "configs" / "grids" / "smoke.yaml"
CONFIGS = 4


def small_grid(path: Path) -> Path:
    """The smoke grid cut down to 4 configs that train in seconds (same sample, same rules)."""
    raw = yaml.safe_load(SMOKE_GRID.read_text())
    raw["grid"]["name"] = "queue-test"
    raw["grid"]["genome"] |= {
        "lookback": [2, 4, 8, 12], "hidden": 8, "lr": 0.003, "depth": 1, "epochs": 2,
    }  # fmt: skip
    raw["grid"]["inference"] = {"threshold": [0.1, 0.3], "horizon": [1, 4], "size": [1.0]}
    path.write_text(yaml.safe_dump(raw))
    return path


def queued_spec(grid: Path) -> GridSpec:
    """The grid as ``redline queue add`` queues it: with the config's regime rules."""
    return with_regime_rules(load_grid(grid), load_config().regimes)


def free_cpus() -> float:
    return float(ray.available_resources().get("CPU", 0))


def tstore_of(home: Path) -> TrainingStore:
    return Store.open(sqlite_url(home), home=home).training


@dataclass
class Queue:
    """A data root with the small grid queued, and the ``queue start`` subprocess on it."""

    home: Path
    grid: Path
    ray_address: str
    log: Path
    cpus: float  # the session's free CPUs before the queue started
    process: subprocess.Popen[bytes] | None = None

    def cpus_free(self) -> bool:
        """The CPUs free before are free again: no trial of a stopped or killed queue trains."""
        return free_cpus() >= self.cpus

    @property
    def tstore(self) -> TrainingStore:
        return tstore_of(self.home)

    @property
    def hashes(self) -> set[str]:
        return {compute_config_hash(config) for config in expand(queued_spec(self.grid))}

    def start(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "REDLINE_DATABASE_URL"}
        env |= {"REDLINE_HOME": str(self.home), "RAY_ADDRESS": self.ray_address,
                "PYTHONUNBUFFERED": "1", "REDLINE_LOG_LEVEL": "WARNING"}  # fmt: skip
        command = [sys.executable, "-m", "cli", "queue", "start", *args]
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def alive(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"queue start exited early:\n{self.log.read_text()[-3000:]}")
        return True

    def trained(self) -> list[str]:
        """Configs with a DONE training run (asserting the subprocess still runs)."""
        self.alive()
        return [r.config_hash for r in self.tstore.training_runs(status="DONE")]

    def wait_exit(self, timeout: float = 120) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture
def queue(ray_session: str, tmp_path: Path) -> Iterator[Queue]:
    home = tmp_path / "redline_data"
    grid = small_grid(tmp_path / "queue-test.yaml")
    out = run_cli("queue", "add", str(grid), home=home)
    assert f"{CONFIGS} configs added, 0 already queued or trained" in out
    made = Queue(home, grid, ray_session, tmp_path / "queue-start.log", free_cpus())
    yield made
    made.stop()
    wait_for("the queue's trials to end", made.cpus_free, 60)


def done_rows(tstore: TrainingStore, home: Path) -> dict[str, tuple[Any, ...]]:
    """What training a config again would change: its result, its training time, its model file
    (hash and modification time). Not ``updated_at``: the champion rules move a model's stage
    when a later model dethrones it."""
    return {
        r.config_hash: (
            r.created_at,
            r.train_seconds,
            r.sharpe,
            r.model_sha256,
            tune_checkpoint(home, r.config_hash).stat().st_mtime_ns,
        )
        for r in tstore.training_runs(status="DONE")
    }


def files_of(home: Path) -> set[str]:
    folder = home / "checkpoints" / "tune"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def duplicates(home: Path) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(home / "redline.db")) as db:
        return db.execute(
            "SELECT config_hash, COUNT(*) FROM training_runs GROUP BY config_hash "
            "HAVING COUNT(*) > 1"
        ).fetchall()


# -- adding ------------------------------------------------------------------------------------------


def test_add_queues_each_config_once_and_status_counts_them(tmp_path: Path) -> None:
    home = tmp_path / "redline_data"
    grid = small_grid(tmp_path / "queue-test.yaml")
    assert "4 configs added, 0 already" in run_cli("queue", "add", str(grid), home=home)
    assert "0 configs added, 4 already" in run_cli("queue", "add", str(grid), home=home)
    optuna = REPO / "configs" / "grids" / "technical_analyst-optuna.yaml"
    assert "8 Optuna slots added" in run_cli("queue", "add", str(optuna), home=home)

    tstore = tstore_of(home)
    items = tstore.queue_items()
    spec = queued_spec(grid)
    assert [i.config_hash for i in items[:CONFIGS]] == [
        compute_config_hash(c) for c in expand(spec)
    ]
    assert [i.position for i in items] == list(range(CONFIGS + 8))
    rows = {row[0]: row for row in table_rows(run_cli("queue", "status", home=home))}
    header = ["queued", "running", "paused", "done", "failed", "cancelled"]
    assert rows["queue-test"][2:8] == ["4", "0", "0", "0", "0", "0"], header
    assert rows["technical_analyst-optuna"][2] == "8"
    assert rows["all"][2] == "12"
    # The experiment is a runs row that `redline runs` lists with its grid.
    runs = {row[0]: row for row in table_rows(run_cli("runs", home=home))}
    assert "tune grid queue-test" in runs[experiment_id(tstore.queue_items()[0].grid_hash)][6]

    raw = yaml.safe_load(grid.read_text())
    raw["grid"]["genome"]["lookback"] = [4, 999]
    grid.write_text(yaml.safe_dump(raw))
    with pytest.raises(GridError, match=r"grid\.genome\.lookback: 999 is above"):
        run_cli("queue", "add", str(grid), home=home)
    assert len(tstore.queue_items()) == CONFIGS + 8  # nothing queued from the bad file


# -- pause, resume, kill, cancel -------------------------------------------------------------------


def test_pause_then_resume_trains_only_the_rest(queue: Queue) -> None:
    queue.start("--max-concurrent", "1")
    wait_for("a first trained config", queue.trained, 180)
    out = run_cli("queue", "pause", home=queue.home)
    assert "queued configs paused" in out
    assert queue.wait_exit() == 0, queue.log.read_text()[-3000:]
    assert "paused:" in queue.log.read_text()

    tstore = queue.tstore
    counts = tstore.queue_counts()
    assert counts["RUNNING"] == counts["QUEUED"] == 0, counts
    assert counts["DONE"] >= 1 and counts["PAUSED"] >= 1, counts
    before = done_rows(tstore, queue.home)
    assert len(before) == counts["DONE"]
    assert queue_running(queue.home) is None

    out = run_cli("queue", "resume", home=queue.home)
    assert f"{CONFIGS - len(before)} trained, 0 failed" in out
    after = done_rows(tstore, queue.home)
    assert set(after) == queue.hashes
    assert {h: after[h] for h in before} == before  # not one config trained twice
    assert tstore.queue_counts()["DONE"] == CONFIGS
    assert files_of(queue.home) == {f"{h}.pt" for h in queue.hashes}


def test_sigkill_mid_run_then_resume_ends_with_one_row_per_config(queue: Queue) -> None:
    queue.start()
    wait_for("a first trained config", queue.trained, 180)
    wait_for(
        "a config in training",
        lambda: queue.alive() and queue.tstore.queue_counts()["RUNNING"],
        60,
        every=0.05,
    )
    assert queue.process is not None
    queue.process.send_signal(signal.SIGKILL)
    assert queue.process.wait(timeout=30) == -signal.SIGKILL
    # Ray ends a dead driver's trials (its job owns them): nothing trains behind our back.
    wait_for("the killed queue's trials to end", queue.cpus_free, 60)

    tstore = queue.tstore
    before = done_rows(tstore, queue.home)
    assert 1 <= len(before) < CONFIGS
    assert tstore.queue_counts()["RUNNING"] >= 1  # the killed trials' rows, left RUNNING

    run_cli("queue", "resume", home=queue.home)
    runs = tstore.training_runs()
    assert sorted(r.config_hash for r in runs) == sorted(queue.hashes)  # one row per config
    assert {r.status for r in runs} == {"DONE"}
    assert duplicates(queue.home) == []
    counts = tstore.queue_counts()
    assert counts["RUNNING"] == 0 and counts["DONE"] == CONFIGS, counts
    assert {h: v for h, v in done_rows(tstore, queue.home).items() if h in before} == before
    # One model file per config, each the one its row names; no temporary left behind.
    assert files_of(queue.home) == {f"{h}.pt" for h in queue.hashes}
    for run in runs:
        assert run.model_path is not None
        assert queue.home / run.model_path == tune_checkpoint(queue.home, run.config_hash)
        assert len(tstore.backtests(run.config_hash)) == 4  # 2 thresholds x 2 horizons x 1 size


def test_cancel_leaves_no_orphan_files_or_half_written_rows(queue: Queue) -> None:
    queue.start()
    wait_for(
        "a config in training",
        lambda: queue.alive() and queue.tstore.queue_counts()["RUNNING"],
        180,
        every=0.05,
    )
    out = run_cli("queue", "cancel", home=queue.home)
    assert "configs cancelled" in out
    assert queue.wait_exit() == 0, queue.log.read_text()[-3000:]
    wait_for("the cancelled trials to end", queue.cpus_free, 60)

    tstore = queue.tstore
    counts = tstore.queue_counts()
    assert counts["CANCELLED"] >= 1, counts
    assert {s for s, n in counts.items() if n} <= {"DONE", "CANCELLED"}, counts
    runs = tstore.training_runs()
    assert all(r.status == "DONE" for r in runs), [(r.config_hash, r.status) for r in runs]
    done = {r.config_hash for r in runs}
    assert {i.config_hash for i in tstore.queue_items(status="DONE")} == done
    assert files_of(queue.home) == {f"{h}.pt" for h in done}
    # The cancelled configs can be queued again, and train.
    assert f"{CONFIGS - len(done)} configs added" in run_cli(
        "queue", "add", str(queue.grid), home=queue.home
    )


def test_an_optuna_grid_trains_its_slots(ray_session: str, tmp_path: Path) -> None:
    """Bayesian search: the grid's slots are closed one per trial, naming the config trained."""
    raw = yaml.safe_load((REPO / "configs" / "grids" / "technical_analyst-optuna.yaml").read_text())
    raw["grid"]["num_samples"] = 2
    raw["grid"]["genome"] |= {"hidden": {"low": 8, "high": 12}, "depth": 1, "epochs": 2}
    raw["grid"]["inference"] = {"threshold": [0.1], "horizon": [1], "size": [1.0]}
    grid = tmp_path / "optuna.yaml"
    grid.write_text(yaml.safe_dump(raw))
    home = tmp_path / "redline_data"
    assert "2 Optuna slots added" in run_cli("queue", "add", str(grid), home=home)
    assert "2 trained, 0 failed" in run_cli("queue", "start", home=home)

    tstore = tstore_of(home)
    slots = tstore.queue_items()
    trained = tstore.training_runs(experiment=experiment_id(slots[0].grid_hash))
    assert [s.status for s in slots] == ["DONE", "DONE"]
    assert sorted(s.reason.split()[-1] for s in slots) == sorted(r.agent_id for r in trained)
    assert all(r.status == "DONE" and 8 <= r.config["genome"]["hidden"] <= 12 for r in trained)
    status = {row[0]: row for row in table_rows(run_cli("queue", "status", home=home))}
    assert status["technical_analyst-optuna"][2:8] == ["0", "0", "0", "2", "0", "0"]


# -- models ----------------------------------------------------------------------------------------


def evolution_family(home: Path, tstore: TrainingStore) -> dict[str, Path]:
    """A finished volume_hunter evolution run of three generations, written as the Mother writes
    it, with checkpoint files: c0 (generation 2) is the champion of calm_ranging, born of b0,
    born of a0 and a1. a2 and b1 are neither elites nor ancestors of one."""
    runs = Store.open(sqlite_url(home), home=home).runs
    run_id = "r1-family"
    runs.create_run(RunRecord(run_id, {"population": {"volume_hunter": 3}}, "f" * 64, 1, 3))
    import hashlib

    family = {"a0": (), "a1": (), "a2": (), "b0": ("a0", "a1"), "b1": ("a2",), "c0": ("b0",)}
    files: dict[str, Path] = {}
    agents = []
    for name, parents in family.items():
        generation = "abc".index(name[0])
        agent_id = f"{run_id}.vh-{name}"
        path = home / "checkpoints" / f"{agent_id}_gen{generation}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode() * 100)
        files[name] = path
        genome = f'{{"name": "{name}"}}'
        agents.append(
            AgentRecord(
                run_id=run_id,
                agent_id=agent_id,
                specialty="volume_hunter",
                generation=generation,
                genome_json=genome,
                genome_digest=hashlib.sha256(genome.encode()).hexdigest(),
                seed=generation,
                parents=tuple(f"{run_id}.vh-{p}" for p in parents),
                status="OK",
                sharpe=1.0,
                checkpoint_path=str(path),
                checkpoint_sha256="0" * 64,
            )
        )
    runs.upsert_agents(agents)
    for generation in range(3):
        runs.record_generation(
            GenerationRecord(run_id, generation, "volume_hunter", 2, 2, 0, 0, 2,
                             hall_of_fame=(f"{run_id}.vh-c0",) if generation == 2 else ())
        )  # fmt: skip
    runs.update_run(run_id, status="finished", generations_done=3)
    champion = RegimeBestRecord(
        run_id=run_id, specialty="volume_hunter", regime="calm_ranging",
        agent_id=f"{run_id}.vh-c0", sharpe=2.0, metrics={"sharpe": 2.0, "bars": 500.0},
    )  # fmt: skip
    promotion = PromotionRecord(
        specialty="volume_hunter", regime="calm_ranging", decision="PROMOTED",
        challenger=champion.model, incumbent=None, reason="test family", before={}, after={},
        dsr=0.99, n_trials=6, margin=0.25,
    )  # fmt: skip
    ChampionStore(tstore.database).promote(champion, promotion)
    return files


def test_models_list_stats_and_prune_never_delete_a_champion_or_its_ancestors(
    queue: Queue,
) -> None:
    run_cli("queue", "start", home=queue.home)
    tstore = queue.tstore
    assert tstore.queue_counts()["DONE"] == CONFIGS
    family = evolution_family(queue.home, tstore)
    champions = ChampionStore(tstore.database).champions()
    tune_champions = {r.agent_id for r in champions if r.source == "tune"}
    assert tune_champions, "the smoke grid's lowered thresholds make a champion"

    rows = table_rows(run_cli("models", "list", home=queue.home))
    assert len(rows) == CONFIGS + len(family)
    shown = {row[0]: row for row in rows}
    champion_models = tune_champions | {"r1-family.vh-c0"}
    assert {row[0] for row in rows[: len(champion_models)]} == champion_models  # listed first
    assert shown["r1-family.vh-c0"][6] == "calm_ranging"
    stats = {row[0]: row for row in table_rows(run_cli("models", "stats", home=queue.home))}
    assert stats["tune"][1:3] == [str(CONFIGS), str(CONFIGS)]
    assert stats["evolution"][1:3] == [str(len(family)), str(len(family))]

    search = table_rows(run_cli("runs", "search", "--limit", "3", home=queue.home))
    assert len(search) == 3
    values = [float(row[3]) for row in search]
    assert values == sorted(values, reverse=True)
    best = max(
        (b.sharpe or -99, r.agent_id)
        for r in tstore.training_runs()
        for b in tstore.backtests(r.config_hash)
    )
    assert (search[0][0], values[0]) == (best[1], round(best[0], 3))
    bull = table_rows(
        run_cli("runs", "search", "--regime", "bull_trending", "--limit", "2", home=queue.home)
    )
    assert len(bull) == 2 and bull[0][4] == bull[1][4] and int(bull[0][4]) > 0  # the regime's bars
    assert float(bull[0][3]) >= float(bull[1][3])

    # An orphan file, a row whose file is gone, and a model an operator keeps.
    orphan = queue.home / "checkpoints" / "tune" / f"{'e' * 64}.pt"
    orphan.write_bytes(b"x")
    family["a2"].unlink()
    named = {(r.run_id, r.agent_id) for r in ChampionStore(tstore.database).regime_best()}
    runs_before = tstore.training_runs()
    spare = [r for r in runs_before if (r.experiment, r.agent_id) not in named]
    if spare:
        run_cli("models", "keep", spare[0].agent_id, home=queue.home)
    survivors = {
        r.config_hash
        for r in tstore.training_runs()
        if (r.experiment, r.agent_id) in named or r.kept or r.stage in ("PAPER", "MATURE")
    }

    dry = run_cli("models", "prune", "--dry-run", home=queue.home)
    assert "1 files under checkpoints/ that no row names" in dry
    assert "1 rows name a file that is gone" in dry
    assert f"would delete {CONFIGS - len(survivors) + 2}" in dry  # + a2 and b1
    assert len(tstore.training_runs()) == CONFIGS and family["b1"].exists()  # nothing changed

    run_cli("models", "prune", home=queue.home)
    # The champions and every ancestor of one stay, rows and files.
    runs = Store.open(sqlite_url(queue.home), home=queue.home).runs
    protected = {row.model for row in ChampionStore(tstore.database).champions()}
    for row in ChampionStore(tstore.database).champions():
        if row.source == "evolution":
            protected |= {f"{a.run_id}/{a.agent_id}" for a in runs.ancestors(row.agent_id)}
    assert protected >= {f"r1-family/r1-family.vh-{n}" for n in ("c0", "b0", "a0", "a1")}
    for name in ("c0", "b0", "a0", "a1"):
        assert family[name].exists(), name
    for row in ChampionStore(tstore.database).champions():
        if row.source == "tune":
            assert row.checkpoint_path and (queue.home / row.checkpoint_path).is_file(), row
    assert {r.config_hash for r in tstore.training_runs()} == survivors
    assert not family["b1"].exists()
    b1 = runs.require_agent("r1-family.vh-b1")
    assert (b1.status, b1.checkpoint_path) == ("OK", None)  # the row stays: it is lineage
    assert orphan.exists()  # reported, deleted only with --delete-orphans
    run_cli("models", "prune", "--delete-orphans", home=queue.home)
    assert not orphan.exists()
    assert files_of(queue.home) == {f"{h}.pt" for h in survivors}

    with pytest.raises(ValueError, match=r"champion of calm_ranging .* is never deleted"):
        run_cli("models", "delete", "r1-family.vh-c0", home=queue.home)
