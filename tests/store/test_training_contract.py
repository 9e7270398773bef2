"""The TrainingStore contract (training runs, inference backtests, the queue, champions) on SQLite
and PostgreSQL.

The numbers are real: each "trained config" is an SMA-ratio signal on Binance BTC/USDT 1h
(January and February 2020) whose windows come from its genome, standing in for the trained model
(training is tested in tests/agents); its inference grid (signal threshold x position size) is
backtested with the 2-D path, per regime of the store's regime rules. Evolution agents are the
real bred and backtested population of the RunStore suite.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from typing import Any

import numpy as np
import pytest
from sqlalchemy import bindparam, inspect, text, update
from sqlalchemy.exc import IntegrityError

from market.backtest import backtest_many
from market.regimes import REGIMES, classify_regimes
from store import migrate
from store.champions import ChampionStore
from store.db import Store
from store.engine import create_store_engine
from store.errors import NotFoundError
from store.models import (
    InferenceBacktest,
    Promotion,
    RegimeBestModel,
    Run,
    TrainingQueueItem,
    TrainingRun,
    UTCDateTime,
)
from store.records.champions import PromotionRecord, RegimeBestRecord
from store.records.training import InferenceBacktestRecord, QueueItemRecord, TrainingRunRecord
from store.training import TrainingStore
from tests.store.conftest import BTC_1H, JAN_2020, MAR_2020, real_candles
from tests.store.rows import Clock, clocked, count_rows, record_content, table_names
from tests.store.test_runs_contract import _generation, _lineage, _run

SPECIALTY = "technical_analyst"
EXPERIMENT = "tune-5f1c0f0b8e7d"
GRID = {"name": "smoke", "specialty": SPECIALTY, "search": "grid"}
GRID_HASH = hashlib.sha256(json.dumps(GRID, sort_keys=True).encode()).hexdigest()
DATASET_DIGEST = "9b2e4f6a8c0d1e3f5a7b9c1d3e5f7a9b1c3d5e7f9a1b3c5d7e9f1a3b5c7d9e1f"
THRESHOLDS = (0.0, 0.002, 0.01)
SIZES = (0.5, 1.0)
TRAINING_TABLES = {"training_runs", "inference_backtests", "training_queue", "promotions"}


@pytest.fixture
def tstore(store: Store, clock: Clock) -> TrainingStore:
    return clocked(store, clock).training


def _hash(value: Any) -> str:
    return hashlib.sha256(
        json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


# -- real trained configs --------------------------------------------------------------------------


@cache
def _market() -> tuple[Any, np.ndarray]:
    candles = real_candles(BTC_1H, JAN_2020, MAR_2020)
    return candles, classify_regimes(candles, "1h")


def _config(index: int) -> dict[str, Any]:
    return {
        "specialty": SPECIALTY,
        "dataset": "binance_BTC-USDT_1h",
        "data": {"exchange": "binance", "timeframe": "1h", "symbols": ["BTC/USDT"]},
        "genome": {"lookback": 4 + 3 * index, "horizon": 6 + 5 * index},
        "seed": 7,
        "inference": {"threshold": list(THRESHOLDS), "size": list(SIZES)},
        "fee_bps": 10.0,
    }


def _queue_item(index: int) -> QueueItemRecord:
    config = _config(index)
    return QueueItemRecord(_hash(config), "smoke", GRID_HASH, SPECIALTY, config)


@cache
def _trained(index: int) -> tuple[TrainingRunRecord, tuple[InferenceBacktestRecord, ...]]:
    """Config ``index`` trained (DONE) and its inference grid backtested on real BTC 1h."""
    config = _config(index)
    candles, regimes = _market()
    close = candles["close"]
    fast, slow = (
        config["genome"]["lookback"],
        config["genome"]["lookback"] + config["genome"]["horizon"],
    )
    score = (close.rolling(fast).mean() / close.rolling(slow).mean() - 1.0).fillna(0.0).to_numpy()
    inference = [{"threshold": t, "size": s} for t in THRESHOLDS for s in SIZES]
    positions = np.stack(
        [
            np.where(np.abs(score) > i["threshold"], np.sign(score), 0.0) * i["size"]
            for i in inference
        ]
    )
    grid = backtest_many(candles, positions, fee_bps=config["fee_bps"], timeframe="1h")
    per = grid.metrics_by_regime(regimes)
    config_hash = _hash(config)
    backtests = tuple(
        InferenceBacktestRecord(
            config_hash=config_hash,
            inference_hash=_hash(i),
            inference=i,
            metrics={name: float(values[k]) for name, values in grid.metrics.items()},
            per_regime={
                regime: {name: float(values[k]) for name, values in metrics.items()}
                for regime, metrics in per.items()
            },
            sharpe=float(grid.metrics["sharpe"][k]),
        )
        for k, i in enumerate(inference)
    )
    best = max(backtests, key=lambda b: b.sharpe if b.sharpe is not None else -math.inf)
    record = TrainingRunRecord(
        config_hash=config_hash,
        experiment=EXPERIMENT,
        specialty=SPECIALTY,
        dataset=config["dataset"],
        config=config,
        seed=config["seed"],
        status="DONE",
        metrics=best.metrics,
        per_regime=best.per_regime,
        sharpe=best.metrics["sharpe"],
        max_drawdown=best.metrics["max_drawdown"],
        hit_rate=best.metrics["hit_rate"],
        model_path=f"checkpoints/tune/{config_hash}.pt",
        model_sha256=_hash({"weights": index}),
        dataset_digest=DATASET_DIGEST,
        train_seconds=1.5 + index,
    )
    return record, backtests


def _experiment(tstore: TrainingStore, run_id: str = EXPERIMENT) -> None:
    tstore.ensure_experiment(run_id, {"grid": GRID, "grid_hash": GRID_HASH}, 7)


# -- experiments and training runs ------------------------------------------------------------------


def test_ensure_experiment_is_idempotent(tstore: TrainingStore, store: Store) -> None:
    _experiment(tstore)
    _experiment(tstore)
    assert count_rows(store, Run) == 1
    run = tstore.runs.require_run(EXPERIMENT)
    assert (run.generations_planned, run.root_seed, run.config["grid_hash"]) == (0, 7, GRID_HASH)
    with pytest.raises(ValueError, match=rf"run_id '{EXPERIMENT}' already exists with config_hash"):
        tstore.ensure_experiment(EXPERIMENT, {"grid": {"name": "other"}}, 7)
    assert count_rows(store, Run) == 1


def test_finish_training_run_is_one_idempotent_transaction(
    tstore: TrainingStore, store: Store, clock: Clock
) -> None:
    _experiment(tstore)
    record, backtests = _trained(0)
    tstore.enqueue([_queue_item(0)])
    tstore.set_queue_status([record.config_hash], "RUNNING")
    tstore.upsert_training_run(replace(record, status="RUNNING", metrics={}, per_regime={}))
    assert tstore.require_training_run(record.config_hash).status == "RUNNING"

    finished_at = clock.tick()
    tstore.finish_training_run(record, backtests)
    clock.tick()
    tstore.finish_training_run(record, backtests)  # the trial reports again: nothing changes
    assert count_rows(store, TrainingRun) == 1
    assert count_rows(store, InferenceBacktest) == len(THRESHOLDS) * len(SIZES)
    stored = tstore.require_training_run(record.config_hash)
    assert record_content(stored) == record_content(record)
    assert stored.updated_at == finished_at and stored.agent_id == f"tr-{record.config_hash[:12]}"
    assert tstore.queue_items()[0].status == "DONE"
    assert {b.inference_hash for b in tstore.backtests(record.config_hash)} == {
        b.inference_hash for b in backtests
    }
    sharpes = [b.sharpe for b in tstore.backtests(record.config_hash)]
    assert sharpes == sorted(sharpes, reverse=True)  # type: ignore[type-var]

    # A rerun with a smaller inference grid leaves exactly its backtests.
    tstore.finish_training_run(record, backtests[:2])
    assert count_rows(store, InferenceBacktest) == 2
    tstore.finish_training_run(record, backtests)

    # DONE is final: a duplicate trial that failed, or a late RUNNING mark, keeps the result.
    tstore.finish_training_run(replace(record, status="FAILED", reason="OOM"), [])
    tstore.upsert_training_run(replace(record, status="RUNNING", sharpe=None))
    assert record_content(tstore.require_training_run(record.config_hash)) == record_content(stored)
    assert count_rows(store, InferenceBacktest) == 6 and tstore.queue_items()[0].status == "DONE"


def test_training_run_checks_and_lifecycle(tstore: TrainingStore, store: Store) -> None:
    record, backtests = _trained(1)
    with pytest.raises(
        NotFoundError, match=rf"experiment '{EXPERIMENT}' does not exist; ensure_experiment first"
    ):
        tstore.finish_training_run(record, backtests)
    assert count_rows(store, TrainingRun) == 0
    _experiment(tstore)
    with pytest.raises(ValueError, match=r"status must be DONE or FAILED; got 'RUNNING'"):
        tstore.finish_training_run(replace(record, status="RUNNING"), backtests)
    with pytest.raises(ValueError, match=r"the backtest '[0-9a-f]+' has config_hash '0{64}'"):
        tstore.finish_training_run(record, [replace(backtests[0], config_hash="0" * 64)])
    with pytest.raises(ValueError, match=r"inference_hash '[0-9a-f]+' is listed twice"):
        tstore.finish_training_run(record, [backtests[0], backtests[0]])
    with pytest.raises(ValueError, match=r"TrainingRunRecord.status must be one of PENDING"):
        replace(record, status="OK")
    with pytest.raises(ValueError, match=r"TrainingRunRecord.config_hash must be at most 64"):
        replace(record, config_hash="f" * 65)
    with pytest.raises(ValueError, match=r"TrainingRunRecord.kept must be True or False; got 1"):
        replace(record, kept=1)
    assert count_rows(store, TrainingRun) == 0

    tstore.finish_training_run(record, backtests)
    tstore.set_stage(record.config_hash, "VALIDATION")
    tstore.set_kept(record.config_hash, True)
    tstore.finish_training_run(record, backtests)  # stage and kept are not the trial's to reset
    again = tstore.require_training_run(record.config_hash)
    assert (again.stage, again.kept) == ("VALIDATION", True)
    with pytest.raises(ValueError, match=r"stage must be one of DISCOVERY, .*; got 'LIVE'"):
        tstore.set_stage(record.config_hash, "LIVE")
    with pytest.raises(NotFoundError, match=r"config_hash '0{64}' has no training run"):
        tstore.set_kept("0" * 64, True)

    failed = replace(_trained(2)[0], status="FAILED", reason="loss became NaN", sharpe=math.nan)
    tstore.finish_training_run(failed, [])
    assert tstore.require_training_run(failed.config_hash).sharpe is None
    assert [r.config_hash for r in tstore.training_runs(status="FAILED")] == [failed.config_hash]
    assert len(tstore.training_runs(experiment=EXPERIMENT, specialty=SPECIALTY)) == 2
    assert tstore.training_runs(specialty="volume_hunter") == []

    assert tstore.delete_training_run(record.config_hash) is True
    assert tstore.delete_training_run(record.config_hash) is False
    assert count_rows(store, InferenceBacktest) == 0 and count_rows(store, TrainingRun) == 1


# -- the queue -----------------------------------------------------------------------------------


def test_enqueue_skips_queued_and_done_configs(tstore: TrainingStore, store: Store) -> None:
    _experiment(tstore)
    items = [_queue_item(i) for i in range(6)]
    assert tstore.enqueue(items[:4]) == (4, 0)
    assert tstore.enqueue(items[:4]) == (0, 4)  # `queue add` of the same grid again
    # Config 4 was trained elsewhere (DONE) and config 5 is listed twice.
    tstore.finish_training_run(*_trained(4))
    assert tstore.enqueue([items[5], items[4], items[0], items[5]]) == (1, 3)
    assert count_rows(store, TrainingQueueItem) == 5
    queued = tstore.queue_items()
    assert [q.config_hash for q in queued] == [items[i].config_hash for i in (0, 1, 2, 3, 5)]
    assert [q.position for q in queued] == [0, 1, 2, 3, 4]
    assert queued[0].config == _config(0) and queued[0].grid_hash == GRID_HASH
    assert tstore.queue_counts() == {
        "QUEUED": 5, "RUNNING": 0, "PAUSED": 0, "DONE": 0, "FAILED": 0, "CANCELLED": 0,
    }  # fmt: skip

    # A failed config queued again goes to the end, keeping its attempts.
    tstore.set_queue_status([items[1].config_hash], "RUNNING")
    tstore.set_queue_status([items[1].config_hash], "FAILED", "worker died")
    assert tstore.enqueue(items[:2]) == (1, 1)
    again = tstore.queue_items(status="QUEUED")[-1]
    assert (again.config_hash, again.position, again.attempts, again.reason) == (
        items[1].config_hash, 5, 1, "",
    )  # fmt: skip
    with pytest.raises(
        ValueError, match=r"status of '[0-9a-f]+' must be QUEUED or PAUSED; got 'DONE'"
    ):
        tstore.enqueue([replace(_queue_item(7), status="DONE")])
    with pytest.raises(ValueError, match=r"status must be one of QUEUED, .*; got 'STOPPED'"):
        tstore.queue_items(status=["QUEUED", "STOPPED"])


def test_pause_resume_cancel(tstore: TrainingStore, store: Store) -> None:
    _experiment(tstore)
    items = [_queue_item(i) for i in range(5)]
    hashes = [item.config_hash for item in items]
    tstore.enqueue(items)
    # Config 0 finished, config 1 is mid-trial (a half-written RUNNING row), the rest wait.
    assert tstore.set_queue_status(hashes[:2], "RUNNING") == 2
    assert tstore.set_queue_status(hashes[:2], "RUNNING") == 0
    tstore.finish_training_run(*_trained(0))
    tstore.upsert_training_run(replace(_trained(1)[0], status="RUNNING"))

    assert tstore.pause_queue() == 3
    assert [q.status for q in tstore.queue_items()] == ["DONE", "RUNNING", *["PAUSED"] * 3]
    assert tstore.pause_queue() == 0
    # A `queue start` killed mid-trial left config 1 RUNNING: resume queues it again.
    assert tstore.resume_queue() == 4
    assert [q.status for q in tstore.queue_items()] == ["DONE", *["QUEUED"] * 4]
    assert tstore.queue_items()[1].attempts == 1

    tstore.set_queue_status([hashes[1]], "RUNNING")
    assert tstore.queue_items()[1].attempts == 2
    assert tstore.set_queue_status(hashes, "FAILED", "never") == 4  # DONE never changes
    tstore.set_queue_status(hashes[1:], "QUEUED")
    tstore.set_queue_status([hashes[1]], "RUNNING")
    assert tstore.cancel_queue() == hashes[1:]
    assert tstore.queue_counts()["CANCELLED"] == 4 and tstore.queue_counts()["DONE"] == 1
    # No half-written rows: config 1's RUNNING row is gone, config 0's result stays.
    assert [r.config_hash for r in tstore.training_runs()] == [hashes[0]]
    assert count_rows(store, InferenceBacktest) == 6
    assert tstore.cancel_queue() == []
    assert tstore.set_queue_status(hashes, "RUNNING") == 0  # cancelled: only back to QUEUED
    assert tstore.enqueue(items) == (4, 1)


# -- champions -------------------------------------------------------------------------------------


def _candidate(index: int, regime: str, run_id: str = EXPERIMENT) -> RegimeBestRecord:
    record, backtests = _trained(index)
    best = max(backtests, key=lambda b: b.per_regime[regime]["sharpe"])
    return RegimeBestRecord(
        run_id=run_id,
        specialty=SPECIALTY,
        regime=regime,
        agent_id=record.agent_id,
        sharpe=best.per_regime[regime]["sharpe"],
        metrics=best.per_regime[regime],
        source="tune",
        dsr=0.97,
        n_trials=12,
        checkpoint_path=record.model_path,
        checkpoint_sha256=record.model_sha256,
        inference=best.inference,
    )


def _decision(
    candidate: RegimeBestRecord, incumbent: RegimeBestRecord | None, decision: str = "PROMOTED"
) -> PromotionRecord:
    return PromotionRecord(
        specialty=candidate.specialty,
        regime=candidate.regime,
        decision=decision,
        challenger=candidate.model,
        incumbent=None if incumbent is None else incumbent.model,
        reason="beats the champion by the margin; DSR 0.97 >= 0.95",
        before={} if incumbent is None else {"sharpe": incumbent.sharpe},
        after={"sharpe": candidate.sharpe, "per_regime": candidate.metrics},
        dsr=candidate.dsr,
        n_trials=12,
        margin=0.25,
    )


def test_promote_swaps_the_champion_atomically(
    tstore: TrainingStore, store: Store, clock: Clock
) -> None:
    regime = "bull_trending"
    _experiment(tstore)
    _experiment(tstore, "tune-000000000002")
    first = _candidate(0, regime)
    second = _candidate(1, regime, "tune-000000000002")
    assert ChampionStore(tstore.database).champion(SPECIALTY, regime) is None

    ChampionStore(tstore.database).promote(first, _decision(first, None))
    crowned = ChampionStore(tstore.database).champion(SPECIALTY, regime)
    assert crowned is not None and crowned.model == first.model
    assert (crowned.is_champion, crowned.stage, crowned.source) == (True, "PAPER", "tune")
    assert (crowned.dsr, crowned.inference) == (0.97, first.inference)

    clock.tick()
    ChampionStore(tstore.database).promote(second, _decision(second, first))
    assert [c.model for c in ChampionStore(tstore.database).champions()] == [second.model]
    old = ChampionStore(tstore.database).regime_best(EXPERIMENT)[0]
    assert (old.agent_id, old.is_champion, old.stage) == (first.agent_id, False, "RETIRED")
    assert count_rows(store, RegimeBestModel, is_champion=True) == 1
    log = ChampionStore(tstore.database).promotions(specialty=SPECIALTY, regime=regime)
    assert [(p.decision, p.challenger, p.incumbent) for p in log] == [
        ("PROMOTED", first.model, None),
        ("PROMOTED", second.model, first.model),
    ]
    assert log[1].before == {"sharpe": first.sharpe} and log[1].created_at == clock.now
    assert log[1].after["per_regime"] == second.metrics

    # A promotion that fails part-way leaves everything as it was.
    with pytest.raises(NotFoundError, match=r"run_id 'tune-missing' does not exist"):
        ChampionStore(tstore.database).promote(
            replace(first, run_id="tune-missing"),
            _decision(replace(first, run_id="tune-missing"), second),
        )
    assert [c.model for c in ChampionStore(tstore.database).champions()] == [second.model]
    assert count_rows(store, Promotion) == 2

    # The partial unique index refuses a second champion, whatever writes it.
    with pytest.raises(IntegrityError), store.database.engine.begin() as connection:
        connection.execute(
            update(RegimeBestModel)
            .where(RegimeBestModel.run_id == EXPERIMENT)
            .values(is_champion=True)
        )
    assert count_rows(store, RegimeBestModel, is_champion=True) == 1
    # ... but not a champion of another regime.
    other = _candidate(0, "bear_trending")
    ChampionStore(tstore.database).promote(other, _decision(other, None))
    assert [(c.regime, c.model) for c in ChampionStore(tstore.database).champions()] == [
        ("bear_trending", other.model), ("bull_trending", second.model),
    ]  # fmt: skip


def test_refuse_logs_and_keeps_the_champion(tstore: TrainingStore, store: Store) -> None:
    regime = "calm_ranging"
    _experiment(tstore)
    _experiment(tstore, "tune-000000000002")
    champion = _candidate(0, regime)
    ChampionStore(tstore.database).promote(champion, _decision(champion, None))
    challenger = replace(_candidate(1, regime, "tune-000000000002"), dsr=0.4, stage="DISCOVERY")
    ChampionStore(tstore.database).refuse(
        challenger, replace(_decision(challenger, champion, "REFUSED"), reason="DSR 0.40 < 0.95")
    )
    assert [c.model for c in ChampionStore(tstore.database).champions()] == [champion.model]
    refused = ChampionStore(tstore.database).regime_best("tune-000000000002")[0]
    assert (refused.is_champion, refused.stage, refused.dsr) == (False, "DISCOVERY", 0.4)
    assert [p.decision for p in ChampionStore(tstore.database).promotions()] == [
        "PROMOTED",
        "REFUSED",
    ]
    assert ChampionStore(tstore.database).promotions(regime="bull_trending") == []

    # Refusing the champion's own row (a rerun judging it again) never dethrones it.
    ChampionStore(tstore.database).refuse(champion, _decision(champion, champion, "REFUSED"))
    assert (
        ChampionStore(tstore.database).champion(SPECIALTY, regime)
        == ChampionStore(tstore.database).regime_best(EXPERIMENT)[0]
    )
    assert ChampionStore(tstore.database).champion(SPECIALTY, regime).stage == "PAPER"  # type: ignore[union-attr]

    with pytest.raises(
        ValueError, match=r"promote: PromotionRecord.decision must be PROMOTED; got 'REFUSED'"
    ):
        ChampionStore(tstore.database).promote(
            challenger, _decision(challenger, champion, "REFUSED")
        )
    with pytest.raises(
        ValueError, match=r"challenger must be the candidate 'tune-000000000002/tr-"
    ):
        ChampionStore(tstore.database).promote(
            challenger, replace(_decision(challenger, champion), challenger="x/y")
        )
    with pytest.raises(
        ValueError, match=r"the promotion is for \(technical_analyst, bull_trending\)"
    ):
        ChampionStore(tstore.database).promote(
            challenger, replace(_decision(challenger, champion), regime="bull_trending")
        )
    with pytest.raises(
        ValueError, match=r"PromotionRecord.decision must be one of PROMOTED, REFUSED"
    ):
        replace(_decision(challenger, champion), decision="MAYBE")
    assert count_rows(store, Promotion) == 3


def test_the_mother_never_demotes_a_champion(tstore: TrainingStore, store: Store) -> None:
    runs = tstore.runs
    run_id = runs.create_run(_run()).run_id
    lineage = _lineage(run_id)
    g0 = [a for a in lineage.values() if a.generation == 0]
    regime = "bull_trending"
    best = max(g0, key=lambda a: a.per_regime[regime]["sharpe"])
    mothers = RegimeBestRecord(
        run_id, SPECIALTY, regime, best.agent_id, best.per_regime[regime]["sharpe"],
        best.per_regime[regime],
    )  # fmt: skip
    runs.record_generation_outcome(_generation(run_id, 0), g0, [], [mothers])
    ChampionStore(tstore.database).promote(
        replace(mothers, dsr=0.99, n_trials=4), replace(_decision(mothers, None), dsr=0.99)
    )
    crowned = ChampionStore(tstore.database).champion(SPECIALTY, regime)
    assert crowned is not None and (crowned.stage, crowned.source) == ("PAPER", "evolution")

    # The Mother resumes and writes its generation again, then a later best for the regime.
    runs.record_generation_outcome(_generation(run_id, 0), g0, [], [mothers])
    ChampionStore(runs.database).set_regime_best(
        replace(mothers, agent_id="ta-g000-003", sharpe=9.0)
    )
    assert ChampionStore(tstore.database).champion(SPECIALTY, regime) == crowned
    assert count_rows(store, RegimeBestModel) == 1
    with pytest.raises(ValueError, match=r"is_champion must be False; got True"):
        ChampionStore(runs.database).set_regime_best(replace(mothers, is_champion=True))
    # Rows that are not the champion still follow the Mother.
    ChampionStore(runs.database).set_regime_best(
        replace(mothers, regime="calm_ranging", sharpe=0.5)
    )
    ChampionStore(runs.database).set_regime_best(
        replace(mothers, regime="calm_ranging", sharpe=0.75)
    )
    assert [
        r.sharpe
        for r in ChampionStore(runs.database).regime_best(run_id)
        if r.regime == "calm_ranging"
    ] == [0.75]


# -- history and the number of trials ----------------------------------------------------------------


def test_search_sorts_by_a_regimes_metric(tstore: TrainingStore) -> None:
    _experiment(tstore)
    trained = {_trained(i)[0].config_hash: _trained(i)[1] for i in range(4)}
    for index in range(4):
        tstore.finish_training_run(*_trained(index))
    failed = replace(_trained(5)[0], status="FAILED", reason="loss became NaN")
    tstore.finish_training_run(failed, [])

    for regime in REGIMES:
        found = tstore.search(specialty=SPECIALTY, regime=regime)
        assert len(found) == 5 and found[-1] == (
            tstore.require_training_run(failed.config_hash), None,
        )  # fmt: skip
        keys = [b.per_regime[regime]["sharpe"] for _, b in found[:-1] if b is not None]
        assert keys == sorted(keys, reverse=True)
        for run, backtest in found[:-1]:  # each run's best inference config in that regime
            assert backtest is not None and backtest.config_hash == run.config_hash
            assert backtest.per_regime[regime]["sharpe"] == max(
                b.per_regime[regime]["sharpe"] for b in trained[run.config_hash]
            )
    overall = tstore.search(limit=2)
    assert len(overall) == 2
    assert (
        [b.sharpe for _, b in overall]
        == sorted(  # type: ignore[union-attr]
            (max(b.sharpe or -math.inf for b in _trained(i)[1]) for i in range(4)), reverse=True
        )[:2]
    )
    by_bars = tstore.search(sort="max_drawdown_bars", limit=4)  # lower is better
    bars = [b.metrics["max_drawdown_bars"] for _, b in by_bars]  # type: ignore[union-attr]
    assert bars == sorted(bars)
    assert tstore.search(specialty="volume_hunter") == []
    with pytest.raises(ValueError, match=r"limit must be a positive integer; got 0"):
        tstore.search(limit=0)


def test_regime_trial_sharpes_count_tune_and_evolution(tstore: TrainingStore) -> None:
    _experiment(tstore)
    for index in range(3):
        tstore.finish_training_run(*_trained(index))
    runs = tstore.runs
    run_id = runs.create_run(_run()).run_id
    agents = list(_lineage(run_id).values())
    failed = replace(agents[-1], status="FAILED", reason="loss became NaN at epoch 3")
    runs.upsert_agents([*agents[:-1], failed])

    regime = "bear_trending"
    expected_tune = [
        b.per_regime[regime]["sharpe"]
        for index in range(3)
        for b in sorted(_trained(index)[1], key=lambda b: (b.config_hash, b.inference_hash))
    ]
    expected_evolution = [
        a.per_regime[regime]["sharpe"] for a in sorted(agents[:-1], key=lambda a: a.agent_id)
    ]
    found = tstore.regime_trial_sharpes(SPECIALTY, regime)
    finite = [v for v in expected_tune + expected_evolution if math.isfinite(v)]
    assert sorted(found) == sorted(finite)
    assert len(found) == 3 * len(THRESHOLDS) * len(SIZES) + len(agents) - 1
    assert tstore.regime_trial_sharpes("volume_hunter", regime) == []
    assert tstore.regime_trial_sharpes(SPECIALTY, "no_such_regime") == []


# -- the migration -----------------------------------------------------------------------------------


def test_migration_0004_keeps_regime_best_rows_and_round_trips(fresh_url: str) -> None:
    # A database at 0003 holding an evolution run's best model per regime.
    assert migrate.upgrade(fresh_url, revision="0003") == "0003"
    now = bindparam("now", datetime(2024, 4, 1, tzinfo=UTC), type_=UTCDateTime())
    engine = create_store_engine(fresh_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO runs (run_id, created_at, updated_at, status, config_json,"
                    " config_hash, root_seed, generations_planned, generations_done,"
                    " dataset_digests) VALUES ('evo-old', :now, :now, 'finished', '{}',"
                    " :hash, 1, 3, 3, '{}')"
                ).bindparams(now),
                {"hash": "0" * 64},
            )
            connection.execute(
                text(
                    "INSERT INTO regime_best_models (run_id, specialty, regime, agent_id, sharpe,"
                    " metrics_json, stage, updated_at) VALUES ('evo-old', :specialty,"
                    " 'bull_trending', 'ta-g002-001', 1.5, :metrics, 'DISCOVERY', :now)"
                ).bindparams(now),
                {"specialty": SPECIALTY, "metrics": '{"sharpe":1.5}'},
            )
    finally:
        engine.dispose()
    assert not table_names(fresh_url) & TRAINING_TABLES

    with Store.open(fresh_url) as store:  # opening migrates to head
        assert migrate.current_revision(store.database.engine) == migrate.head_revision()
        tstore = store.training
        (old,) = ChampionStore(tstore.database).regime_best()
        assert (old.agent_id, old.sharpe, old.metrics) == ("ta-g002-001", 1.5, {"sharpe": 1.5})
        assert (old.source, old.is_champion, old.dsr, old.inference) == (
            "evolution",
            False,
            None,
            {},
        )
        ChampionStore(tstore.database).promote(old, _decision(old, None))
        _experiment(tstore)
        tstore.finish_training_run(*_trained(0))
        tstore.enqueue([_queue_item(1)])
    assert table_names(fresh_url) >= TRAINING_TABLES

    assert migrate.downgrade(fresh_url, revision="0003") == "0003"
    assert not table_names(fresh_url) & TRAINING_TABLES
    engine = create_store_engine(fresh_url)
    try:
        with engine.connect() as connection:
            columns = {c["name"] for c in inspect(connection).get_columns("regime_best_models")}
            rows = connection.execute(text("SELECT agent_id, stage FROM regime_best_models")).all()
    finally:
        engine.dispose()
    assert "is_champion" not in columns and "stage" in columns
    assert [tuple(row) for row in rows] == [("ta-g002-001", "PAPER")]
    with Store.open(fresh_url) as store:
        tstore = store.training
        assert ChampionStore(tstore.database).champions() == [] and tstore.queue_items() == []
        assert [r.agent_id for r in ChampionStore(tstore.database).regime_best()] == ["ta-g002-001"]
        assert tstore.runs.require_run(EXPERIMENT).generations_planned == 0
    assert migrate.downgrade(fresh_url) is None
    assert table_names(fresh_url) <= {"alembic_version"}
    assert migrate.upgrade(fresh_url) == migrate.head_revision()
    assert table_names(fresh_url) >= TRAINING_TABLES
