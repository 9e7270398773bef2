"""Every model family and a meta-labelling child served by the live ensemble, without Ray: real
children trained on the shipped sample, crowned in a copy of the serving champions' store."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from agents.banks import RUGPULL_FEATURES, rugpull_dataset, technical_dataset, volume_dataset
from agents.genome import Genome
from agents.models import GbmModel, TemporalNet
from agents.sources import SAMPLE_DIR
from agents.specialties import get_specialty
from agents.training import meta_scores, window_inputs
from serving.ensemble import Ensemble
from store.db import Store
from store.records.champions import ALL_REGIMES
from tests.serving.trained import (
    BTC,
    RUGPULL_GENES,
    SERIES_GENES,
    TRAIN_BARS,
    Champions,
    Trained,
    champions_fixture,  # noqa: F401  (the session fixture `champions`)
    copy_home,
    promote,
    row_for,
    sqlite_url,
    train,
    window_ending_in,
)

GBM_GENES = {"family": "gbm", "num_leaves": 7, "n_estimators": 30, "learning_rate": 0.1,
             "min_child_samples": 40, "feature_fraction": 0.5}  # fmt: skip


def crown(champions: Champions, home: Path, children: dict[str, tuple[str, dict[str, object]]],
          regime: str) -> dict[str, Trained]:  # fmt: skip
    """Train each ``specialty: (agent_id, extra genes)`` on the sample's last candles and crown it
    in ``regime`` of the store in ``home`` (a positive Sharpe, so it carries weight)."""
    recent = champions.candles.iloc[-TRAIN_BARS:].reset_index(drop=True)
    builders = {"technical_analyst": technical_dataset, "volume_hunter": volume_dataset}
    out = {}
    with Store.open(sqlite_url(home), home=home) as store:
        for specialty, (agent_id, genes) in children.items():
            ds = builders[specialty](recent, name=BTC.file_stem, timeframe="1h")
            out[specialty] = train(ds, SERIES_GENES | genes, home, agent_id, 5)
            promote(store.training, row_for(out[specialty], regime, home, sharpe=1.0))
    return out


def live_scores(candles: pd.DataFrame, trained: Trained) -> tuple[np.ndarray, float]:
    """The model's raw output and the member's score at the last candle, recomputed here."""
    report = trained.report
    live_dataset = get_specialty(report.specialty).live_dataset
    assert live_dataset is not None
    ds = live_dataset(candles, name="x", timeframe="1h")
    x = window_inputs(ds, report.genome, np.array([ds.n_rows - 1]))
    from agents.models import load_model

    model = load_model(trained.path)[0]
    with torch.no_grad():
        raw = model(torch.from_numpy(x)).double().numpy()
    score = meta_scores(report.genome, candles["close"].to_numpy(np.float64), raw)
    return raw, float(score[-1])


def test_gbm_and_tcn_champions_vote_with_their_models_scores(
    champions: Champions, tmp_path: Path
) -> None:
    home = copy_home(champions, tmp_path / "families")
    regime = sorted(champions.busiest())[0]
    crowned = crown(champions, home, {"technical_analyst": ("ta-gbm", GBM_GENES),
                                      "volume_hunter": ("vh-tcn", {"family": "tcn"})},
                    regime)  # fmt: skip
    ensemble = Ensemble.load(Store.open(sqlite_url(home), home=home), home)
    live = {m.row.specialty: m for m in ensemble.members[regime]}
    assert isinstance(live["technical_analyst"].model, GbmModel)
    assert isinstance(live["volume_hunter"].model, TemporalNet)
    candles = window_ending_in(champions, {regime})
    answer = ensemble.predict(candles, exchange="binance", symbol="BTC/USDT", timeframe="1h",
                              request_id="f1")  # fmt: skip
    assert answer.regime.name == regime
    by_agent = {m.agent_id: m for m in answer.members}
    for specialty, trained in crowned.items():
        member = by_agent[trained.report.agent_id]
        _, expected = live_scores(candles, trained)
        assert member.score == pytest.approx(expected, rel=1e-5, abs=1e-6), specialty
        assert -1.0 <= member.score <= 1.0


def test_a_meta_labelling_champion_takes_its_rules_side_live(
    champions: Champions, tmp_path: Path
) -> None:
    home = copy_home(champions, tmp_path / "meta")
    regime = sorted(champions.busiest())[0]
    crowned = crown(champions, home, {"technical_analyst": ("ta-meta", {"primary": "momentum"})},
                    regime)["technical_analyst"]  # fmt: skip
    ensemble = Ensemble.load(Store.open(sqlite_url(home), home=home), home)
    candles = window_ending_in(champions, {regime})
    answer = ensemble.predict(candles, exchange="binance", symbol="BTC/USDT", timeframe="1h",
                              request_id="m1")  # fmt: skip
    member = next(m for m in answer.members if m.agent_id == "ta-meta")
    raw, expected = live_scores(candles, crowned)
    close = candles["close"].to_numpy(np.float64)
    rule = math.copysign(1.0, close[-1] / close[-25] - 1)  # momentum over 24 bars, known now
    assert expected == pytest.approx(rule * max(float(raw[-1]), 0.0))
    assert member.score == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert member.score == 0.0 or math.copysign(1.0, member.score) == rule


def test_a_damaged_gbm_checkpoint_is_refused_by_its_hash(
    champions: Champions, tmp_path: Path
) -> None:
    home = copy_home(champions, tmp_path / "damaged")
    regime = sorted(champions.busiest())[0]
    trained = crown(champions, home, {"technical_analyst": ("ta-gbm-bad", GBM_GENES)},
                    regime)["technical_analyst"]  # fmt: skip
    data = bytearray(trained.path.read_bytes())
    middle = len(data) // 2  # inside the booster's model text
    data[middle] = (data[middle] + 1) % 256
    trained.path.write_bytes(bytes(data))
    ensemble = Ensemble.load(Store.open(sqlite_url(home), home=home), home)
    refused = [e for e in ensemble.unavailable if e.agent_id == "ta-gbm-bad"]
    assert len(refused) == 1 and "does not match the row's" in (refused[0].reason or "")
    assert all(m.row.agent_id != "ta-gbm-bad" for m in ensemble.members[regime])


def test_a_gbm_rugpull_champion_answers_with_its_trees_contributions(
    champions: Champions, tmp_path: Path
) -> None:
    home = copy_home(champions, tmp_path / "rug")
    tokens = pd.read_csv(SAMPLE_DIR / "rugpull_uniswapv2_tokens.csv.gz")
    genes = {k: v for k, v in RUGPULL_GENES.items()} | GBM_GENES
    trained = train(rugpull_dataset(tokens), genes, home, "rp-gbm", 3)
    assert trained.report.metrics["auc"] > 0.9
    with Store.open(sqlite_url(home), home=home) as store:
        promote(store.training, row_for(trained, ALL_REGIMES, home, inference={},
                                        metrics={"auc": 1.0}))  # fmt: skip
    ensemble = Ensemble.load(Store.open(sqlite_url(home), home=home), home)
    assert ensemble.rugpull_member is not None
    model = ensemble.rugpull_member.model
    assert isinstance(model, GbmModel) and ensemble.rugpull_member.row.agent_id == "rp-gbm"
    names = [n for group in RUGPULL_FEATURES.values() for n in group]
    token = {name: float(tokens[name].iloc[3]) for name in names}
    answer = ensemble.rugpull(token)
    assert answer.agent_id == "rp-gbm" and answer.probability is not None
    # The probability is the booster's on the dataset's transform of the token.
    row = rugpull_dataset(tokens.iloc[[3]])
    logit = float(model.raw(row.features)[0])
    assert answer.probability == pytest.approx(1 / (1 + math.exp(-logit)), rel=1e-9)
    contributions, expected = model.contributions(row.features[0])
    assert contributions.sum() + expected == pytest.approx(logit, rel=1e-9, abs=1e-12)
    top = sorted(np.abs(contributions), reverse=True)[:5]
    assert [abs(f.attribution) for f in answer.top_features] == pytest.approx(top)
    assert Genome.from_json(ensemble.rugpull_member.genome.to_json())["family"] == "gbm"
