"""Champions through ``TrainingStore`` on SQLite: promotions and refusals logged with before and
after, exactly one champion per (specialty, regime), evolution and Tune judged by the same rules.

The numbers are real: each "trained model" is an SMA-ratio signal on Binance BTC/USDT 1h (the
shipped sample, first half of 2023) whose windows come from its genome, standing in for a trained
network (training is tested in tests/agents); its inference grid (threshold x size) is backtested
with the 2-D path, per regime of the default regime rules.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from cluster.config import load_config
from evolution.champions import ChampionPolicy
from evolution.crowning import consider_evolution_run, consider_tune_run
from market.backtest import backtest_many
from market.regimes import REGIMES, classify_regimes
from store.champions import ChampionStore
from store.db import Store
from store.models import RegimeBestModel
from store.records.champions import PromotionRecord, RegimeBestRecord
from store.records.population import AgentRecord, RunRecord
from store.records.training import InferenceBacktestRecord, TrainingRunRecord
from store.training import TrainingStore
from tests.support.smoke import SMOKE_CONFIG, RunOnDisk, sqlite_url

REPO = Path(__file__).resolve().parents[2]
SPECIALTY = "technical_analyst"
EXPERIMENT = "tune-0a1b2c3d4e5f"
EVOLUTION = "r1711900000-5e6f7a"
THRESHOLDS = (0.0, 0.002, 0.01)
SIZES = (0.5, 1.0)
# Lenient enough for the sample's short regimes: every finite-Sharpe challenger is "validated",
# and only the margin decides.
LENIENT = ChampionPolicy(margin=0.25, dsr_threshold=0.0, min_regime_bars=50)
STRICT = ChampionPolicy()  # the defaults: margin 0.25, DSR 0.95, 200 bars


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'redline.db'}", home=tmp_path) as opened:
        yield opened


@pytest.fixture
def tstore(store: Store) -> TrainingStore:
    training = store.training
    training.ensure_experiment(EXPERIMENT, {"grid": {"name": "champions-test"}}, 7)
    return training


def _hash(value: Any) -> str:
    return hashlib.sha256(
        json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


# -- real "trained" models -------------------------------------------------------------------------


@cache
def _market() -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.read_csv(REPO / "market" / "sample" / "binance_BTC-USDT_1h.csv.gz")
    frame = frame.rename(columns={"timestamp": "ts"})
    start = pd.Timestamp("2023-01-01", tz="UTC").value // 1_000_000
    end = pd.Timestamp("2023-07-01", tz="UTC").value // 1_000_000
    candles = frame[(frame["ts"] >= start) & (frame["ts"] < end)].reset_index(drop=True)
    return candles, classify_regimes(candles, "1h")


def _genome(index: int) -> dict[str, int]:
    return {"lookback": 3 + 4 * index, "horizon": 8 + 7 * index}


def _signal(index: int) -> np.ndarray:
    candles, _ = _market()
    close = candles["close"]
    genes = _genome(index)
    fast, slow = genes["lookback"], genes["lookback"] + genes["horizon"]
    ratio = close.rolling(fast).mean() / close.rolling(slow).mean() - 1.0
    return np.asarray(ratio.fillna(0.0).to_numpy(), dtype=np.float64)


@cache
def _backtested(index: int) -> tuple[tuple[dict[str, float], dict[str, Any]], ...]:
    """Model ``index``'s inference grid: (inference config, its backtest's metrics and per-regime
    metrics) for each threshold x size."""
    candles, regimes = _market()
    score = _signal(index)
    inference = [{"threshold": t, "size": s} for t in THRESHOLDS for s in SIZES]
    positions = np.stack(
        [
            np.where(np.abs(score) > i["threshold"], np.sign(score), 0.0) * i["size"]
            for i in inference
        ]
    )
    grid = backtest_many(candles, positions, fee_bps=10.0, timeframe="1h")
    per = grid.metrics_by_regime(regimes)
    return tuple(
        (
            i,
            {
                "metrics": {name: float(values[k]) for name, values in grid.metrics.items()},
                "per_regime": {
                    regime: {name: float(values[k]) for name, values in metrics.items()}
                    for regime, metrics in per.items()
                },
            },
        )
        for k, i in enumerate(inference)
    )


def _trained(
    index: int, *, regimes: tuple[str, ...] = REGIMES
) -> tuple[TrainingRunRecord, list[InferenceBacktestRecord]]:
    """Model ``index`` as a finished Tune trial (scored in ``regimes`` only)."""
    config = {"specialty": SPECIALTY, "genome": _genome(index), "seed": 7, "regimes": regimes}
    config_hash = _hash(config)
    backtests = [
        InferenceBacktestRecord(
            config_hash=config_hash,
            inference_hash=_hash(inference),
            inference=inference,
            metrics=scores["metrics"],
            per_regime={r: v for r, v in scores["per_regime"].items() if r in regimes},
            sharpe=scores["metrics"]["sharpe"],
        )
        for inference, scores in _backtested(index)
    ]
    best = max(backtests, key=lambda b: -math.inf if b.sharpe is None else b.sharpe)
    record = TrainingRunRecord(
        config_hash=config_hash,
        experiment=EXPERIMENT,
        specialty=SPECIALTY,
        dataset="binance_BTC-USDT_1h",
        config=config,
        seed=7,
        status="DONE",
        metrics=best.metrics,
        per_regime=best.per_regime,
        sharpe=best.sharpe,
        model_path=f"checkpoints/tune/{config_hash}.pt",
        model_sha256=_hash({"weights": index}),
    )
    return record, backtests


def _finish(
    tstore: TrainingStore, index: int, policy: ChampionPolicy, **kw: Any
) -> list[PromotionRecord]:
    record, backtests = _trained(index, **kw)
    tstore.finish_training_run(record, backtests)
    return consider_tune_run(Store(tstore.database), record, backtests, policy, "1h")


def _regime_sharpe(index: int, regime: str) -> float:
    """Model ``index``'s best Sharpe in ``regime`` over its inference grid."""
    return max(
        scores["per_regime"][regime]["sharpe"]
        for _, scores in _backtested(index)
        if math.isfinite(scores["per_regime"][regime]["sharpe"])
    )


def _champion_rows(store: Store) -> dict[tuple[str, str], int]:
    """Champion rows per (specialty, regime), counted in the table itself."""
    query = (
        select(RegimeBestModel.specialty, RegimeBestModel.regime, func.count())
        .where(RegimeBestModel.is_champion)
        .group_by(RegimeBestModel.specialty, RegimeBestModel.regime)
    )
    with store.database.engine.connect() as connection:
        return {(s, r): int(n) for s, r, n in connection.execute(query).all()}


def _content(promotion: PromotionRecord) -> tuple[Any, ...]:
    """A logged decision without the store's id and stamp; before/after as JSON text (NaN
    metrics would not compare equal as floats)."""
    plain = replace(promotion, id=None, created_at=None, before={}, after={})
    return (
        plain,
        json.dumps(promotion.before, sort_keys=True),
        json.dumps(promotion.after, sort_keys=True),
    )


def _check_log(promotion: PromotionRecord, policy: ChampionPolicy) -> None:
    """What every logged decision must show: before and after of both models, the rules' numbers."""
    before, after = promotion.before, promotion.after
    challenger = before["challenger"]
    assert challenger["model"] == after["challenger"]["model"] == promotion.challenger
    assert promotion.margin == policy.margin and promotion.n_trials >= 1
    assert after["challenger"]["dsr"] == promotion.dsr
    assert after["challenger"]["n_trials"] == promotion.n_trials
    assert set(challenger["metrics"]) >= {"sharpe", "bars", "hit_rate"}
    if promotion.incumbent is None:
        assert before["incumbent"] is None and after["incumbent"] is None
    else:
        assert before["incumbent"]["model"] == promotion.incumbent
        assert before["incumbent"]["is_champion"] is True
    if promotion.decision == "PROMOTED":
        assert promotion.reason.startswith("promoted: ")
        assert after["challenger"]["is_champion"] is True
        assert after["challenger"]["stage"] == "PAPER"
        assert promotion.dsr is not None and promotion.dsr >= policy.dsr_threshold
        assert challenger["metrics"]["bars"] >= policy.min_regime_bars
        if promotion.incumbent is not None:
            gain = challenger["sharpe"] - before["incumbent"]["sharpe"]
            assert gain >= policy.margin
            assert after["incumbent"]["stage"] == "RETIRED"
            assert after["incumbent"]["is_champion"] is False
    else:
        assert promotion.reason.startswith("refused: ")
        assert after["challenger"]["is_champion"] is False
        assert after["challenger"]["stage"] in ("DISCOVERY", "VALIDATION")
        # the champion did not change (as JSON text: a NaN metric read back is a new NaN)
        assert json.dumps(after["incumbent"]) == json.dumps(before["incumbent"])


# -- Tune ------------------------------------------------------------------------------------------


def test_the_first_trial_is_crowned_in_every_regime_it_scored(
    tstore: TrainingStore, store: Store
) -> None:
    record, backtests = _trained(0)
    logged = _finish(tstore, 0, LENIENT)
    scored = [
        r for r in REGIMES if any(math.isfinite(b.per_regime[r]["sharpe"]) for b in backtests)
    ]
    assert len(scored) >= 3  # half a year of BTC visits most regimes

    def best_sharpe(regime: str) -> float:
        return max(
            b.per_regime[regime]["sharpe"]
            for b in backtests
            if math.isfinite(b.per_regime[regime]["sharpe"])
        )

    # Crowned wherever its best inference config made money; a loser is refused however lenient.
    won = [r for r in scored if best_sharpe(r) > 0]
    assert won and len(won) < len(scored)  # the real numbers give both
    assert [(p.regime, p.decision, p.incumbent) for p in logged] == [
        (r, "PROMOTED" if r in won else "REFUSED", None) for r in scored
    ]
    for promotion in logged:
        _check_log(promotion, LENIENT)
        if promotion.decision == "PROMOTED":
            assert promotion.reason.endswith(", no champion yet")
        else:
            assert re.search(r"Sharpe -\d+\.\d\d is not positive", promotion.reason)
        assert promotion.n_trials == len(tstore.regime_trial_sharpes(SPECIALTY, promotion.regime))
        assert promotion.before["challenger"]["stage"] == "DISCOVERY"
    assert [_content(p) for p in ChampionStore(tstore.database).promotions()] == [
        _content(p) for p in logged
    ]

    champions = ChampionStore(tstore.database).champions()
    assert [c.regime for c in champions] == sorted(won)
    for champion in champions:
        best = max(
            (b for b in backtests if math.isfinite(b.per_regime[champion.regime]["sharpe"])),
            key=lambda b: b.per_regime[champion.regime]["sharpe"],
        )
        assert (champion.run_id, champion.agent_id, champion.source) == (
            EXPERIMENT,
            f"tr-{record.config_hash[:12]}",
            "tune",
        )
        assert (champion.stage, champion.is_champion) == ("PAPER", True)
        assert champion.sharpe == best.per_regime[champion.regime]["sharpe"]
        assert champion.inference == best.inference
        assert champion.checkpoint_path == record.model_path
        assert champion.checkpoint_sha256 == record.model_sha256
        assert champion.dsr is not None and champion.n_trials == len(THRESHOLDS) * len(SIZES)
    assert tstore.require_training_run(record.config_hash).stage == "PAPER"
    assert set(_champion_rows(store).values()) == {1}


def test_challengers_replace_champions_only_by_the_rules(
    tstore: TrainingStore, store: Store
) -> None:
    logged: list[PromotionRecord] = []
    for index in range(6):
        logged += _finish(tstore, index, LENIENT)
        assert set(_champion_rows(store).values()) == {1}  # one champion per regime, always
    for promotion in logged:
        _check_log(promotion, LENIENT)
    assert [_content(p) for p in ChampionStore(tstore.database).promotions()] == [
        _content(p) for p in logged
    ]
    dethroned = [p for p in logged if p.decision == "PROMOTED" and p.incumbent is not None]
    refused = [p for p in logged if p.decision == "REFUSED"]
    assert dethroned and refused  # the real numbers give both
    assert any("does not beat the champion's" in p.reason for p in refused)

    # The champion of each regime is the first trial to beat every earlier champion by the margin.
    for regime in {p.regime for p in logged}:
        expected, best = None, -math.inf
        for index in range(6):
            sharpe = _regime_sharpe(index, regime)
            if expected is None or sharpe - best >= LENIENT.margin:
                expected, best = index, sharpe
        assert expected is not None
        champion = ChampionStore(tstore.database).champion(SPECIALTY, regime)
        assert champion is not None
        assert champion.agent_id == _trained(expected)[0].agent_id
        assert champion.sharpe == best
    # A Tune experiment keeps one row per regime: the champion where it holds one.
    rows = ChampionStore(tstore.database).regime_best(EXPERIMENT)
    assert len(rows) == len({(r.specialty, r.regime) for r in rows})


def test_a_better_challenger_with_a_poor_dsr_is_refused(tstore: TrainingStore) -> None:
    _finish(tstore, 0, LENIENT)
    # A later model that beats the champion by the margin somewhere: the strict default still
    # refuses it, as half a year of hourly bars split in four regimes cannot carry a DSR of 0.95.
    index, regime = next(
        (i, r)
        for i in range(1, 6)
        for r in REGIMES
        if _regime_sharpe(i, r) - _regime_sharpe(0, r) >= STRICT.margin
    )
    champion = ChampionStore(tstore.database).champion(SPECIALTY, regime)
    logged = {p.regime: p for p in _finish(tstore, index, STRICT)}
    refusal = logged[regime]
    _check_log(refusal, STRICT)
    assert refusal.decision == "REFUSED"
    assert refusal.dsr is not None and refusal.dsr < 0.95
    n_trials = len(tstore.regime_trial_sharpes(SPECIALTY, regime))
    assert refusal.n_trials == n_trials == 2 * len(THRESHOLDS) * len(SIZES)
    assert f"DSR {refusal.dsr:.2f} < 0.95 over {n_trials} trials" in refusal.reason
    assert "does not beat" not in refusal.reason  # it did beat the champion
    assert ChampionStore(tstore.database).champion(SPECIALTY, regime) == champion
    assert refusal.before["incumbent"]["sharpe"] == champion.sharpe  # type: ignore[union-attr]
    assert refusal.before["challenger"]["sharpe"] == _regime_sharpe(index, regime)
    assert all(p.decision == "REFUSED" for p in logged.values())
    assert tstore.require_training_run(_trained(index)[0].config_hash).stage == "DISCOVERY"


def test_a_refused_trial_does_not_replace_a_better_row_of_its_experiment(
    tstore: TrainingStore,
) -> None:
    # Strict from the start: nobody is crowned, each regime's row is the experiment's best so far.
    for index in range(4):
        _finish(tstore, index, STRICT)
    assert ChampionStore(tstore.database).champions() == []
    rows = {r.regime: r for r in ChampionStore(tstore.database).regime_best(EXPERIMENT)}
    for regime, row in rows.items():
        best = max(range(4), key=lambda i: (_regime_sharpe(i, regime), -i))
        assert row.agent_id == _trained(best)[0].agent_id, regime
        assert row.sharpe == _regime_sharpe(best, regime)
        assert (row.is_champion, row.source) == (False, "tune")
        assert row.stage == "DISCOVERY"  # its DSR does not pass: not validated
    assert len(ChampionStore(tstore.database).promotions()) == sum(
        len(_regime_list(i)) for i in range(4)
    )


def _regime_list(index: int) -> list[str]:
    return [
        r
        for r in REGIMES
        if any(math.isfinite(s["per_regime"][r]["sharpe"]) for _, s in _backtested(index))
    ]


def test_judging_again_logs_nothing_new(tstore: TrainingStore) -> None:
    for index in range(3):
        logged = _finish(tstore, index, LENIENT)
        before = ChampionStore(tstore.database).promotions()
        record, backtests = _trained(index)
        # A trial reported twice (a resumed queue): the same decisions, logged once.
        assert consider_tune_run(Store(tstore.database), record, backtests, LENIENT, "1h") == []
        assert ChampionStore(tstore.database).promotions() == before and logged
    # Judged again after later trials, an old trial meets more trials and a new champion: new
    # refusals are logged, but no champion changes.
    champions = ChampionStore(tstore.database).champions()
    record, backtests = _trained(0)
    for promotion in consider_tune_run(Store(tstore.database), record, backtests, LENIENT, "1h"):
        assert promotion.decision == "REFUSED"
    assert ChampionStore(tstore.database).champions() == champions


def test_a_trial_that_is_not_done_is_no_challenger(tstore: TrainingStore) -> None:
    record, backtests = _trained(0)
    failed = replace(record, status="FAILED", reason="trainer raised")
    tstore.finish_training_run(failed, [])
    assert consider_tune_run(Store(tstore.database), failed, backtests, LENIENT, "1h") == []
    assert (
        ChampionStore(tstore.database).promotions() == []
        and ChampionStore(tstore.database).regime_best(EXPERIMENT) == []
    )


def test_a_dethroned_tune_model_retires_when_it_holds_no_regime(tstore: TrainingStore) -> None:
    regime = next(
        r
        for r in REGIMES
        if any(_regime_sharpe(i, r) - _regime_sharpe(0, r) >= 0.25 for i in (1, 2, 3, 4, 5))
    )
    winner = next(
        i for i in range(1, 6) if _regime_sharpe(i, regime) - _regime_sharpe(0, regime) >= 0.25
    )
    first = _trained(0, regimes=(regime,))[0]
    _finish(tstore, 0, LENIENT, regimes=(regime,))
    assert tstore.require_training_run(first.config_hash).stage == "PAPER"
    (promotion,) = _finish(tstore, winner, LENIENT, regimes=(regime,))
    assert (promotion.decision, promotion.incumbent) == (
        "PROMOTED",
        f"{EXPERIMENT}/{first.agent_id}",
    )
    assert tstore.require_training_run(first.config_hash).stage == "RETIRED"
    assert (
        tstore.require_training_run(_trained(winner, regimes=(regime,))[0].config_hash).stage
        == "PAPER"
    )
    # Same experiment, same row: the new champion took it over.
    (row,) = ChampionStore(tstore.database).regime_best(EXPERIMENT)
    assert (row.agent_id, row.is_champion) == (
        _trained(winner, regimes=(regime,))[0].agent_id,
        True,
    )


# -- evolution -------------------------------------------------------------------------------------


def _evolution_run(tstore: TrainingStore, indices: tuple[int, ...]) -> list[AgentRecord]:
    """An evolution run whose scored children are models ``indices`` (their best inference
    config's scores), and its best child per regime written as the Mother writes it."""
    runs = tstore.runs
    runs.create_run(
        RunRecord(
            run_id=EVOLUTION,
            config={"seed": 7},
            config_hash=_hash({"seed": 7}),
            root_seed=7,
            generations_planned=1,
        )
    )
    agents = []
    for position, index in enumerate(indices):
        genome_json = json.dumps(_genome(index), sort_keys=True)
        _, scores = max(_backtested(index), key=lambda item: item[1]["metrics"]["sharpe"])
        agent_id = f"{EVOLUTION}.ta-g000-{position:03d}"
        agents.append(
            AgentRecord(
                run_id=EVOLUTION,
                agent_id=agent_id,
                specialty=SPECIALTY,
                generation=0,
                genome_json=genome_json,
                genome_digest=hashlib.sha256(genome_json.encode()).hexdigest(),
                seed=100 + index,
                status="OK",
                sharpe=scores["metrics"]["sharpe"],
                metrics=scores["metrics"],
                per_regime=scores["per_regime"],
                checkpoint_path=f"checkpoints/{agent_id}_gen0.pt",
                checkpoint_sha256=_hash({"agent": agent_id}),
            )
        )
    runs.upsert_agents(agents)
    for regime in REGIMES:
        scored = [a for a in agents if math.isfinite(a.per_regime[regime]["sharpe"])]
        best = max(scored, key=lambda a: (a.per_regime[regime]["sharpe"], a.agent_id))
        ChampionStore(runs.database).set_regime_best(
            RegimeBestRecord(
                run_id=EVOLUTION,
                specialty=SPECIALTY,
                regime=regime,
                agent_id=best.agent_id,
                sharpe=best.per_regime[regime]["sharpe"],
                metrics=best.per_regime[regime],
            )
        )
    return agents


def test_evolution_champions_enter_by_the_same_rules(tstore: TrainingStore, store: Store) -> None:
    agents = {a.agent_id: a for a in _evolution_run(tstore, (0, 1, 2))}
    logged = consider_evolution_run(Store(tstore.database), EVOLUTION, LENIENT, "1h")
    best = {r.regime: r.sharpe for r in ChampionStore(tstore.database).regime_best(EVOLUTION)}
    assert [p.decision for p in logged] == [
        "PROMOTED" if (best[p.regime] or 0.0) > 0 else "REFUSED" for p in logged
    ]
    assert "PROMOTED" in {p.decision for p in logged}
    for promotion in logged:
        _check_log(promotion, LENIENT)
    for champion in ChampionStore(tstore.database).champions():
        agent = agents[champion.agent_id]
        assert (champion.run_id, champion.source, champion.stage) == (
            EVOLUTION,
            "evolution",
            "PAPER",
        )
        assert champion.checkpoint_path == agent.checkpoint_path
        assert champion.checkpoint_sha256 == agent.checkpoint_sha256
        # every OK child of the run counts as a trial
        assert champion.n_trials == len(tstore.regime_trial_sharpes(SPECIALTY, champion.regime))
    # Judging the finished run again changes nothing.
    assert consider_evolution_run(Store(tstore.database), EVOLUTION, LENIENT, "1h") == []
    assert len(ChampionStore(tstore.database).promotions()) == len(logged)

    # Tune challengers meet the evolution champions under the same rules.
    for index in range(3, 6):
        for promotion in _finish(tstore, index, LENIENT):
            _check_log(promotion, LENIENT)
    assert set(_champion_rows(store).values()) == {1}
    retired = [
        r for r in ChampionStore(tstore.database).regime_best(EVOLUTION) if r.stage == "RETIRED"
    ]
    for row in retired:
        assert not row.is_champion
        champion = ChampionStore(tstore.database).champion(SPECIALTY, row.regime)
        assert champion is not None and champion.source == "tune"
        assert champion.sharpe is not None and row.sharpe is not None
        assert champion.sharpe - row.sharpe >= LENIENT.margin


def test_the_configured_policy() -> None:
    config = load_config()
    assert config.champions.to_policy() == STRICT
    smoke = load_config(REPO / "configs" / "evolve-smoke.yaml").champions.to_policy()
    assert smoke.dsr_threshold < STRICT.dsr_threshold  # lowered so that a champion exists
    with pytest.raises(ValueError, match=r"champions.dsr_threshold: Input should be less than"):
        config.champions.to_policy({"dsr_threshold": 1.5})


@pytest.mark.slow
def test_the_smoke_run_crowns_champions_by_its_config(smoke_run: RunOnDisk) -> None:
    """``redline evolve --config configs/evolve-smoke.yaml`` judges its best children at the end,
    under the smoke config's lowered DSR bar (0.5), and logs every decision."""
    policy = load_config(SMOKE_CONFIG).champions.to_policy()
    with Store.open(sqlite_url(smoke_run.home), home=smoke_run.home) as store:
        tstore = store.training
        rows = ChampionStore(tstore.database).regime_best(smoke_run.run_id)
        logged = ChampionStore(tstore.database).promotions()
        assert sorted((p.specialty, p.regime) for p in logged) == sorted(
            (r.specialty, r.regime) for r in rows
        )
        for promotion in logged:
            _check_log(promotion, policy)
            assert promotion.challenger.startswith(f"{smoke_run.run_id}/")
        champions = ChampionStore(tstore.database).champions()
        assert champions, "the smoke config lowers the DSR bar so that a champion exists"
        assert set(_champion_rows(store).values()) == {1}
        for champion in champions:
            agent = tstore.runs.require_agent(champion.agent_id, run_id=smoke_run.run_id)
            assert (champion.source, champion.stage) == ("evolution", "PAPER")
            assert champion.checkpoint_path == agent.checkpoint_path
            assert champion.checkpoint_sha256 == agent.checkpoint_sha256
            assert champion.dsr is not None and champion.dsr >= policy.dsr_threshold
        for row in rows:
            if not row.is_champion:
                assert row.stage in ("DISCOVERY", "VALIDATION")
