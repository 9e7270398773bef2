"""The live ensemble without Ray: real champions of a tiny real training, loaded from SQLite."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from agents.banks import RUGPULL_FEATURES
from agents.genome import Genome
from agents.models import ChildNet, load_model
from agents.sources import SAMPLE_DIR
from agents.specialties import get_specialty
from agents.training import window_inputs
from market.regimes import REGIMES, RegimeRules, regime_frame
from market.series import CANDLE_COLUMNS
from serving.ensemble import (
    Ensemble,
    _Coordinator,
    candle_columns,
    ensemble_version,
)
from store.db import Store
from tests.serving.trained import (
    Champions,
    champions_fixture,  # noqa: F401  (the session fixture `champions`)
    promote,
    row_for,
    sqlite_url,
    window_ending_in,
)


def predict(ensemble: Ensemble, candles: pd.DataFrame) -> object:
    return ensemble.predict(candles, exchange="binance", symbol="BTC/USDT", timeframe="1h",
                            request_id="r1")  # fmt: skip


def test_predict_reads_the_regime_and_the_champions_votes(champions: Champions) -> None:
    ensemble = Ensemble.load(champions.store(), champions.home)
    candles = window_ending_in(champions, champions.busiest())
    answer = predict(ensemble, candles)

    expected = regime_frame(candles, "1h").iloc[-1]
    assert answer.regime.name == expected["regime"]
    assert answer.regime.confidence == pytest.approx(expected["confidence"])
    assert answer.as_of == int(candles["ts"].iloc[-1])
    crowned = champions.regimes[expected["regime"]]
    assert sorted(m.specialty for m in answer.members) == sorted(crowned)
    assert sum(m.weight for m in answer.members) == pytest.approx(1.0)
    assert answer.combiner == "sharpe_weighted_vote"
    assert answer.model_version == ensemble.version
    for member in answer.members:
        trained = champions.trained[member.specialty]
        assert member.agent_id == trained.report.agent_id and member.generation == 3
        # The member's score is its model on the features its training dataset builder makes.
        live_dataset = get_specialty(member.specialty).live_dataset
        assert live_dataset is not None
        ds = live_dataset(candles, name="x", timeframe="1h")
        x = window_inputs(ds, trained.report.genome, np.array([ds.n_rows - 1]))
        model = load_model(trained.path)[0]
        with torch.no_grad():
            assert member.score == pytest.approx(float(model(torch.from_numpy(x))[0]))
        assert member.vote == (np.sign(member.score) if abs(member.score) > 0.05 else 0)
    votes = sum(m.weight * m.vote for m in answer.members)
    assert answer.signal.direction == int(np.sign(votes))
    assert answer.signal.confidence == pytest.approx(abs(votes))
    if answer.signal.direction:
        assert answer.position_size == pytest.approx(abs(votes) * 0.5)
        assert answer.signal.reason is None
    else:
        assert answer.position_size == 0.0 and answer.signal.reason


def test_candles_seen_before_get_the_answer_computed_afresh(champions: Champions) -> None:
    # The ensemble remembers the regime and features of recent candle sets: an answer from that
    # memory is the answer a cold ensemble computes, and other candles are never mistaken for them.
    warm = Ensemble.load(champions.store(), champions.home)
    candles = window_ending_in(champions, champions.busiest())
    nudged = candles.copy()
    nudged.loc[len(nudged) - 1, "volume"] *= 1.5
    for frame in (candles, nudged, candles.copy(), nudged):
        cold = Ensemble.load(champions.store(), champions.home)
        assert predict(warm, frame) == predict(cold, frame)
    before, after = ({m.specialty: m.score for m in predict(warm, frame).members}
                     for frame in (candles, nudged))  # fmt: skip
    if "volume_hunter" in before:  # it reads volume: its score moved with it
        assert before["volume_hunter"] != after["volume_hunter"]


def test_candle_columns_read_request_rows() -> None:
    rows = [(1_700_000_000_000 + i * 3_600_000, 10.0 + i, 11.0 + i, 9.0 + i, 10.5 + i, 3.0)
            for i in range(3)]  # fmt: skip
    columns = candle_columns(rows)
    assert list(columns) == ["ts", "open", "high", "low", "close", "volume"]
    assert columns["ts"].dtype == np.int64
    assert columns["ts"].tolist() == [1_700_000_000_000, 1_700_003_600_000, 1_700_007_200_000]
    assert columns["close"].tolist() == [10.5, 11.5, 12.5]
    assert columns["volume"].dtype == np.float64


def test_candle_columns_and_the_store_frame_give_the_same_answer(champions: Champions) -> None:
    frame = window_ending_in(champions, champions.busiest())
    rows = [(int(r[0]), *r[1:]) for r in frame[list(CANDLE_COLUMNS)].itertuples(index=False)]
    ensemble = Ensemble.load(champions.store(), champions.home)
    answers = [
        ensemble.predict(c, exchange="binance", symbol="BTC/USDT", timeframe="1h", request_id="r")
        for c in (frame, candle_columns(rows))
    ]
    assert answers[0].members, "the busiest regime has voting champions"
    assert answers[0].model_dump() == answers[1].model_dump()


def test_no_champion_for_the_live_regime_is_flat_with_the_reason(
    champions: Champions, tmp_path: Path
) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    ensemble = Ensemble.load(Store.open(sqlite_url(bare), home=bare), bare)
    candles = champions.candles.iloc[-400:].reset_index(drop=True)
    answer = predict(ensemble, candles)
    assert answer.regime.name in REGIMES
    assert answer.signal.direction == 0 and answer.position_size == 0.0
    assert answer.signal.reason == f"no validated champion for the live regime {answer.regime.name}"
    assert answer.members == []

    missing = set(REGIMES) - champions.crowned()
    if missing:  # the same answer from the real store, in a regime nobody was crowned in
        real = Ensemble.load(champions.store(), champions.home)
        answer = predict(real, window_ending_in(champions, missing))
        assert answer.signal.direction == 0 and "no validated champion" in answer.signal.reason


def test_too_few_candles_for_a_regime_is_flat_with_the_reason(champions: Champions) -> None:
    ensemble = Ensemble.load(champions.store(), champions.home)
    answer = predict(ensemble, champions.candles.iloc[-50:].reset_index(drop=True))
    assert answer.regime.name is None and answer.signal.direction == 0
    assert "regime window" in answer.signal.reason


def test_a_checkpoint_whose_hash_does_not_match_is_refused(
    champions: Champions, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "tampered"
    shutil.copytree(champions.home, home)
    trained = champions.trained["technical_analyst"]  # an absolute path on its row
    regime = next(r for r, found in champions.regimes.items() if "technical_analyst" in found)
    copy = home / "checkpoints" / trained.path.name
    with copy.open("ab") as handle:  # one byte more: a different file than the row's hash
        handle.write(b"\0")
    store = Store.open(sqlite_url(home), home=home)
    # The copied database still names the original file: point the row at the tampered copy.
    promote(store.training, row_for(trained, regime, champions.home, checkpoint_path=str(copy)))

    with caplog.at_level("ERROR", logger="serving.ensemble"):
        ensemble = Ensemble.load(store, home)
    refused = [e for e in ensemble.unavailable if e.agent_id == trained.report.agent_id
               and e.regime == regime]  # fmt: skip
    assert len(refused) == 1 and "does not match the row's" in (refused[0].reason or "")
    assert all(m.row.agent_id != trained.report.agent_id for m in ensemble.members[regime])
    assert "refused" in caplog.text
    assert ensemble_version(store, home) == ensemble.version


def test_version_changes_with_a_promotion(champions: Champions, tmp_path: Path) -> None:
    home = tmp_path / "copy"
    shutil.copytree(champions.home, home)
    store = Store.open(sqlite_url(home), home=home)
    before = ensemble_version(store, home)
    assert before == Ensemble.load(store, home).version
    trained = champions.trained["volume_hunter"]
    promote(store.training, row_for(trained, "bull_trending", champions.home, sharpe=9.0))
    after = ensemble_version(store, home)
    assert after != before and Ensemble.load(store, home).version == after
    # New regime rules alone (queue start syncs them from its config) rename live regimes: a swap.
    store.regimes.sync_regime_definitions(RegimeRules(window="3d"))
    renamed = ensemble_version(store, home)
    assert renamed != after
    assert Ensemble.load(store, home).rules.window == "3d"


def test_rugpull_scores_a_token_and_names_the_features_that_drove_it(
    champions: Champions,
) -> None:
    ensemble = Ensemble.load(champions.store(), champions.home)
    tokens = pd.read_csv(SAMPLE_DIR / "rugpull_uniswapv2_tokens.csv.gz")
    names = [n for group in RUGPULL_FEATURES.values() for n in group]
    token = {name: float(tokens[name].iloc[0]) for name in names}
    answer = ensemble.rugpull(token)
    assert answer.agent_id == "rp-serving" and 0.0 <= (answer.probability or -1) <= 1.0
    assert answer.threshold == 0.5 and answer.is_rugpull == (answer.probability > 0.5)
    assert len(answer.top_features) == 5
    assert {f.name for f in answer.top_features} <= set(names)
    magnitudes = [abs(f.attribution) for f in answer.top_features]
    assert magnitudes == sorted(magnitudes, reverse=True)
    # The probability is the model's on the dataset's transform of the token.
    genome = Genome.from_json(ensemble.rugpull_member.genome.to_json())  # type: ignore[union-attr]
    assert genome.as_dict()["feature_set"] == "all"

    with pytest.raises(ValueError, match="features: missing lp_avg"):
        ensemble.rugpull({k: v for k, v in token.items() if k != "lp_avg"})
    with pytest.raises(ValueError, match="features: unknown feature 'price'"):
        ensemble.rugpull({**token, "price": 1.0})


def test_models_lists_what_is_live_and_why_the_rest_is_not(champions: Champions) -> None:
    listing = Ensemble.load(champions.store(), champions.home).models(swaps=2)
    assert listing.swaps == 2
    for regime, found in champions.regimes.items():
        assert sorted(e.specialty for e in listing.regimes[regime].members) == sorted(found)
        assert all(e.live for e in listing.regimes[regime].members)
    assert listing.rugpull is not None and listing.rugpull.agent_id == "rp-serving"


def test_models_names_no_combiner_for_a_regime_without_members(champions: Champions) -> None:
    # A brain with a feedable coordinator in a crowned regime (the smoke brain reads named
    # members' scores, so it has none: an untrained consensus coordinator stands in for it).
    ensemble = Ensemble.load(champions.store(), champions.home)
    regime = sorted(champions.regimes)[0]
    assert ensemble.members[regime]
    coordinator = _Coordinator(ChildNet(2, hidden=4, depth=1, dropout=0.0, task="direction"),
                               lookback=1, threshold=0.0)  # fmt: skip
    braced = replace(ensemble, brain_version="b1", coordinators={regime: coordinator})
    assert braced.models().regimes[regime].combiner == "mother_brain:b1"
    emptied = replace(braced, members={**braced.members, regime: ()})
    listing = emptied.models()
    assert listing.regimes[regime].combiner == "none"
    assert listing.regimes[regime].members == []
    answer = predict(emptied, window_ending_in(champions, {regime}))
    assert answer.combiner == "none"
    assert answer.signal.reason == f"no validated champion for the live regime {regime}"
