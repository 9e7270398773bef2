"""The specialties fed from beside the request: the sentiment scout (its run's daily fear & greed)
and the market scanner (the store's candles of its panel's other symbols), on real data.

Each trains one tiny real child on the shipped sample, crowns it in every regime of a real
evolution run whose ``data`` config names its sources, and checks that a prediction on real BTC
candles carries its vote, with the score its model gives the features its training builder
makes; then the cases where it must abstain, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from agents.banks import panel_dataset, sentiment_dataset
from agents.models import load_model
from agents.sources import SAMPLE_DIR
from agents.training import window_inputs
from market.regimes import REGIMES, classify_regimes
from market.sentiment import read_sentiment
from market.series import SeriesKey
from serving.app import ServeOptions
from serving.ensemble import Ensemble
from store.champions import ChampionStore
from store.db import Store
from store.ingest import ensure_sample
from store.records.champions import PromotionRecord, RegimeBestRecord
from store.records.population import RunRecord
from tests.serving.trained import SERIES_GENES, Trained, sqlite_url, train

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
FEAR_GREED = SAMPLE_DIR / "feargreed_crypto_1d.csv.gz"
BARS = 2500  # per symbol: enough for the panel's 168-bar lookback and a short training


@dataclass(frozen=True)
class Sourced:
    home: Path
    candles: dict[str, pd.DataFrame]  # symbol -> its last BARS stored candles
    trained: dict[str, Trained]

    def store(self) -> Store:
        return Store.open(sqlite_url(self.home), home=self.home)


def _crown(store: Store, trained: Trained, run_id: str) -> None:
    report = trained.report
    training = store.training
    for regime in REGIMES:
        row = RegimeBestRecord(
            run_id=run_id, specialty=report.specialty, regime=regime, agent_id=report.agent_id,
            sharpe=1.0, metrics={"sharpe": 1.0}, source="evolution",
            checkpoint_path=str(trained.path), checkpoint_sha256=trained.sha256,
            inference={"threshold": 0.0, "size": 1.0},
        )  # fmt: skip
        ChampionStore(training.database).promote(row, PromotionRecord(
            specialty=row.specialty, regime=regime, decision="PROMOTED", challenger=row.model,
            incumbent=None, reason="test champion", before={}, after={"sharpe": 1.0}, dsr=None,
            n_trials=1, margin=0.25,
        ))  # fmt: skip


def _run(store: Store, run_id: str, data: dict[str, object]) -> None:
    store.runs.create_run(RunRecord(run_id=run_id, config={"data": data},
                                         config_hash=run_id, root_seed=5,
                                         generations_planned=1))  # fmt: skip


@pytest.fixture(scope="module")
def sourced(tmp_path_factory: pytest.TempPathFactory) -> Sourced:
    home = tmp_path_factory.mktemp("sourced") / "redline_data"
    home.mkdir()
    with Store.open(sqlite_url(home), home=home) as store:
        ensure_sample(store)
        candles = {
            s: store.candles.load_candles(SeriesKey("binance", s, "1h"))
            .iloc[-BARS:]
            .reset_index(drop=True)
            for s in SYMBOLS
        }
        genes = {**SERIES_GENES, "feature_set": "all"}
        trained = {
            "sentiment_scout": train(
                sentiment_dataset(candles["BTC/USDT"], read_sentiment(FEAR_GREED), name="btc",
                                  timeframe="1h"), genes, home, "ss-serving", 5),
            "market_scanner": train(
                panel_dataset(candles, name="panel", timeframe="1h"), genes, home,
                "ms-serving", 5),
        }  # fmt: skip
        data = {"exchange": "binance", "timeframe": "1h", "symbols": list(SYMBOLS),
                "fear_greed": str(FEAR_GREED), "social_sentiment": None}  # fmt: skip
        _run(store, "run-sourced", data)
        for specialty in trained:
            _crown(store, trained[specialty], "run-sourced")
    return Sourced(home, candles, trained)


def _score(trained: Trained, ds: object, rows: np.ndarray) -> float:
    model, _ = load_model(trained.path)
    x = window_inputs(ds, trained.report.genome, rows)  # type: ignore[arg-type]
    with torch.no_grad():
        return float(model(torch.from_numpy(x))[-1])


def test_the_sentiment_scout_and_the_market_scanner_vote_on_real_btc_candles(
    sourced: Sourced,
) -> None:
    window = sourced.candles["BTC/USDT"].iloc[-500:].reset_index(drop=True)
    regime = str(classify_regimes(window, "1h")[-1])
    assert regime in REGIMES
    with sourced.store() as store:
        ensemble = Ensemble.load(store, sourced.home)
        answer = ensemble.predict(window, exchange="binance", symbol="BTC/USDT", timeframe="1h",
                                  request_id="r1")  # fmt: skip
    votes = {m.specialty: m for m in answer.members}
    assert answer.regime.name == regime
    assert set(votes) == {"sentiment_scout", "market_scanner"}, answer.signal.reason

    sentiment = sentiment_dataset(window, read_sentiment(FEAR_GREED), name="x", timeframe="1h")
    expected = _score(
        sourced.trained["sentiment_scout"], sentiment, np.array([sentiment.n_rows - 1])
    )
    assert votes["sentiment_scout"].score == pytest.approx(expected, abs=1e-6)

    # The panel of the request's BTC window and the store's ETH and SOL over the same span.
    first, last = int(window["ts"].iloc[0]), int(window["ts"].iloc[-1])
    frames = {s: c[(c["ts"] >= first) & (c["ts"] <= last)].reset_index(drop=True)
              for s, c in sourced.candles.items()}  # fmt: skip
    panel = panel_dataset(frames, name="x", timeframe="1h")
    btc_rows = np.flatnonzero(panel.group == panel.group_names.index("BTC/USDT"))
    assert int(panel.ts[btc_rows[-1]]) == last
    expected = _score(sourced.trained["market_scanner"], panel, btc_rows[-1:])
    assert votes["market_scanner"].score == pytest.approx(expected, abs=1e-6)
    # It trades as it was trained: its score minus the panel's mean score at the last candle
    # (threshold 0, size 1, the plain rule).
    at_last = np.flatnonzero(panel.ts == last)
    everyone = [_score(sourced.trained["market_scanner"], panel, at_last[i : i + 1])
                for i in range(len(at_last))]  # fmt: skip
    relative = expected - float(np.mean(everyone))
    assert votes["market_scanner"].position == float(np.sign(relative))
    assert answer.signal.direction in (-1, 0, 1)


def test_a_series_outside_the_panel_or_past_the_store_abstains_with_the_reason(
    sourced: Sourced,
) -> None:
    window = sourced.candles["BTC/USDT"].iloc[-500:].reset_index(drop=True)
    with sourced.store() as store:
        ensemble = Ensemble.load(store, sourced.home)
        other = ensemble.predict(window, exchange="kraken", symbol="BTC/USDT", timeframe="1h",
                                 request_id="r2")  # fmt: skip
        # One hour later than anything stored: the panel's ETH and SOL have no candle there.
        later = window.assign(ts=window["ts"] + 3_600_000)
        ahead = ensemble.predict(later, exchange="binance", symbol="BTC/USDT", timeframe="1h",
                                 request_id="r3")  # fmt: skip
    assert [m.specialty for m in other.members] == ["sentiment_scout"]
    assert [m.specialty for m in ahead.members] == ["sentiment_scout"]
    for answer in (other, ahead):
        assert answer.signal.direction in (-1, 0, 1)
    only_scanner = replace(ensemble, members={r: tuple(m for m in ms if m.row.specialty ==
                                                         "market_scanner")
                                              for r, ms in ensemble.members.items()})  # fmt: skip
    flat = only_scanner.predict(window, exchange="kraken", symbol="BTC/USDT", timeframe="1h",
                                request_id="r4")  # fmt: skip
    assert flat.signal.direction == 0 and flat.members == []
    assert ("ms-serving: market_scanner: ranks BTC/USDT, ETH/USDT, SOL/USDT on binance 1h; "
            "kraken:BTC/USDT:1h is not in its panel") in str(flat.signal.reason)  # fmt: skip
    flat = only_scanner.predict(later, exchange="binance", symbol="BTC/USDT", timeframe="1h",
                                request_id="r5")  # fmt: skip
    assert flat.signal.direction == 0
    assert "the store has no ETH/USDT 1h candle at" in str(flat.signal.reason)


def test_a_sourced_champion_whose_files_are_gone_is_unavailable_with_the_reason(
    sourced: Sourced, tmp_path: Path
) -> None:
    with sourced.store() as store:
        _run(store, "run-moved", {"symbols": list(SYMBOLS),
                                  "fear_greed": str(tmp_path / "gone.csv.gz")})  # fmt: skip
        _crown(store, sourced.trained["sentiment_scout"], "run-moved")
        try:
            ensemble = Ensemble.load(store, sourced.home)
        finally:  # the other tests' champion again
            _crown(store, sourced.trained["sentiment_scout"], "run-sourced")
    [gone] = [u for u in ensemble.unavailable if u.run_id == "run-moved" and u.regime == REGIMES[0]]
    assert gone.specialty == "sentiment_scout" and not gone.live
    assert gone.reason is not None and "gone.csv.gz is not on this machine" in gone.reason


def test_a_sentiment_input_older_than_the_maximum_age_abstains_with_the_reason(
    sourced: Sourced,
) -> None:
    # The file's last day is 2024-03-31, known from 2024-04-01 00:00; the candles end at
    # 2024-03-31 23:00. The same real candles a day later still vote (0.96 days old), three days
    # later the input is 2.96 days old: past the default maximum of 2 days.
    window = sourced.candles["BTC/USDT"].iloc[-500:].reset_index(drop=True)
    with sourced.store() as store:
        ensemble = Ensemble.load(store, sourced.home)
    only_sentiment = replace(ensemble, members={r: tuple(m for m in ms if m.row.specialty ==
                                                           "sentiment_scout")
                                                for r, ms in ensemble.members.items()})  # fmt: skip
    day = 86_400_000
    fresh = only_sentiment.predict(window.assign(ts=window["ts"] + day), exchange="binance",
                                   symbol="BTC/USDT", timeframe="1h", request_id="s1")  # fmt: skip
    assert [m.specialty for m in fresh.members] == ["sentiment_scout"], fresh.signal.reason
    stale = only_sentiment.predict(window.assign(ts=window["ts"] + 3 * day), exchange="binance",
                                   symbol="BTC/USDT", timeframe="1h", request_id="s2")  # fmt: skip
    assert stale.members == [] and stale.signal.direction == 0
    assert stale.position_size == 0.0
    assert (
        "ss-serving: sentiment_scout: its fear & greed input is 3.0 days old at the last candle "
        "(the newest value is of 2024-03-31); the maximum age is 2 days "
        "(serve option max_input_age_days)"
    ) in str(stale.signal.reason)


def test_a_stale_sentiment_members_weight_goes_to_the_others(sourced: Sourced) -> None:
    # With a maximum age of half a day, the candle of 11:00 reads the value known since 00:00
    # (0.46 days old) and both members vote; at 23:00 (0.96 days) the scout abstains and the
    # market scanner carries the whole weight.
    candles = sourced.candles["BTC/USDT"]
    with sourced.store() as store:
        ensemble = Ensemble.load(store, sourced.home, max_input_age_days=0.5)
        morning = ensemble.predict(candles.iloc[-512:-12].reset_index(drop=True),
                                   exchange="binance", symbol="BTC/USDT", timeframe="1h",
                                   request_id="w1")  # fmt: skip
        night = ensemble.predict(candles.iloc[-500:].reset_index(drop=True), exchange="binance",
                                 symbol="BTC/USDT", timeframe="1h", request_id="w2")  # fmt: skip
    assert pd.Timestamp(morning.as_of, unit="ms").hour == 11
    assert {m.specialty: m.weight for m in morning.members} == {
        "sentiment_scout": pytest.approx(0.5),
        "market_scanner": pytest.approx(0.5),
    }
    assert {m.specialty: m.weight for m in night.members} == {"market_scanner": 1.0}


def test_the_maximum_input_age_is_a_serve_option_checked_by_name() -> None:
    assert ServeOptions.from_mapping({"max_input_age_days": 3}).max_input_age_days == 3
    with pytest.raises(ValueError, match=r"serve.max_input_age_days must be a number > 0; got 0"):
        ServeOptions.from_mapping({"max_input_age_days": 0})
