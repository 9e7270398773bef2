"""The live ensemble's positions: each member's own rule replayed over its recent scores.

Without Ray: a real champion with position genes (trained on the shipped sample like the others
of ``tests/serving/trained.py``), crowned in a copy of the champions' store.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from agents.banks import technical_dataset
from agents.dataset import Dataset
from agents.genome import Genome
from agents.models import FrozenNet, load_model
from agents.positions import WARMUP_SLACK, PositionRule
from agents.training import window_inputs
from serving.ensemble import Ensemble
from store.db import Store
from store.records.champions import ModelSource
from tests.serving.trained import (
    BTC,
    SERIES_GENES,
    SIZE,
    THRESHOLD,
    TRAIN_BARS,
    Champions,
    champions_fixture,  # noqa: F401  (the session fixture `champions`)
    copy_home,
    promote,
    row_for,
    sqlite_url,
    train,
    window_ending_in,
)

RULE_GENES = {"band": 0.1, "min_hold": 6, "levels": 2, "vol_target": 0.5}


def test_ensemble_serves_each_members_rule_over_its_recent_scores(
    champions: Champions, tmp_path: Path
) -> None:
    home = copy_home(champions, tmp_path / "positions")
    recent = champions.candles.iloc[-TRAIN_BARS:].reset_index(drop=True)
    dataset = technical_dataset(recent, name=BTC.file_stem, timeframe="1h")
    trained = train(dataset, SERIES_GENES | RULE_GENES, home, "ta-positions", 5)
    regime = sorted(champions.busiest())[0]
    store = Store.open(sqlite_url(home), home=home)
    promote(store.training, replace(row_for(trained, regime, home), sharpe=5.0))
    ensemble = Ensemble.load(store, home)
    candles = window_ending_in(champions, {regime}, bars=800)  # the whole warm-up has features
    answer = ensemble.predict(candles, exchange="binance", symbol="BTC/USDT", timeframe="1h",
                              request_id="p1")  # fmt: skip

    assert answer.regime.name == regime and answer.combiner == "sharpe_weighted_vote"
    served = {m.agent_id: m for m in answer.members}
    member = served["ta-positions"]
    # The same candles' scores, its rule (the row's threshold), replayed over the warm-up.
    rule = replace(PositionRule.from_genome(trained.report.genome), threshold=THRESHOLD)
    assert rule.warmup == rule.vol_window + 6 + WARMUP_SLACK
    ds = technical_dataset(candles, name="live", timeframe="1h")
    rows = np.arange(ds.n_rows)[-rule.warmup :]
    scores = FrozenNet(load_model(trained.path)[0])(
        window_inputs(ds, trained.report.genome, rows)
    ).astype(np.float64)
    assert ds.close is not None
    expected = SIZE * rule.positions(scores, ds.close[rows], timeframe="1h", ts=ds.ts[rows])[-1]
    assert member.position == pytest.approx(expected, abs=1e-12)
    assert member.score == pytest.approx(scores[-1], abs=1e-12)
    assert member.vote == np.sign(expected)
    # The other members keep the plain threshold rule: their position is their vote times size.
    for other in answer.members:
        if other.agent_id != "ta-positions":
            assert other.position == pytest.approx(SIZE * other.vote)
    # The ensemble holds the Sharpe-weighted mean of the members' positions.
    net = sum(m.weight * m.position for m in answer.members)
    assert answer.signal.direction == int(np.sign(net))
    assert answer.position_size == pytest.approx(min(abs(net), 1.0))

    # Fewer candles than the warm-up needs: the rows that have a full window are replayed.
    short = candles.iloc[-500:].reset_index(drop=True)
    answer = ensemble.predict(short, exchange="binance", symbol="BTC/USDT", timeframe="1h",
                              request_id="p2")  # fmt: skip
    ds = technical_dataset(short, name="live", timeframe="1h")
    rows = np.arange(ds.n_rows)[-rule.warmup :]
    rows = rows[[_has_window(ds, trained.report.genome, r) for r in rows].index(True) :]
    assert 0 < len(rows) < rule.warmup
    scores = FrozenNet(load_model(trained.path)[0])(
        window_inputs(ds, trained.report.genome, rows)
    ).astype(np.float64)
    assert ds.close is not None
    expected = SIZE * rule.positions(scores, ds.close[rows], timeframe="1h", ts=ds.ts[rows])[-1]
    served = {m.agent_id: m for m in answer.members}
    assert served["ta-positions"].position == pytest.approx(expected, abs=1e-12)


def _has_window(ds: Dataset, genome: Genome, row: int) -> bool:
    try:
        window_inputs(ds, genome, np.array([row]))
    except ValueError:
        return False
    return True


def test_ensemble_serves_a_tune_model_with_the_rule_it_was_judged_by(
    champions: Champions, tmp_path: Path
) -> None:
    # Tune judges a model by its inference config's plain threshold rule (agents.inference), not
    # by its genome's position genes: Serve keeps that rule.
    home = copy_home(champions, tmp_path / "tuned")
    recent = champions.candles.iloc[-TRAIN_BARS:].reset_index(drop=True)
    dataset = technical_dataset(recent, name=BTC.file_stem, timeframe="1h")
    trained = train(dataset, SERIES_GENES | RULE_GENES, home, "ta-tuned", 5)
    regime = sorted(champions.busiest())[0]
    store = Store.open(sqlite_url(home), home=home)
    row = row_for(trained, regime, home)
    promote(store.training, replace(row, sharpe=5.0, source=ModelSource.TUNE,
                                    checkpoint_path=str(trained.path.relative_to(home))))  # fmt: skip
    members = {m.row.agent_id: m for m in Ensemble.load(store, home).members[regime]}
    assert members["ta-tuned"].rule == PositionRule(THRESHOLD)
    promote(store.training, replace(row, sharpe=6.0))  # the same model found by evolution
    members = {m.row.agent_id: m for m in Ensemble.load(store, home).members[regime]}
    assert members["ta-tuned"].rule == PositionRule(
        THRESHOLD, band=0.1, min_hold=6, levels=2, vol_target=0.5
    )
