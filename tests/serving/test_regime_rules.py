"""A champion is served under the regime rules it was judged under (issue 13, point 4).

One real technical_analyst child is trained on the shipped sample and crowned in bull_trending by
a run that stored the built-in rules. The rules are then changed (the table synced to stricter
ones, as a later `redline --config` would): the served ensemble still names the live regime with
the run's rules, so the champion votes on a window its run calls bull. A second run under the new
rules is a new ensemble version (what replicas poll to hot swap), and its rules take over naming
the live regime while the first run's champion still votes only where its own rules say bull.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.banks import technical_dataset
from market.regimes import RegimeRule, RegimeRules, classify_regimes
from serving.ensemble import Ensemble, ensemble_version
from store.db import Store
from store.ingest import ensure_sample
from store.records.champions import PromotionRecord, RegimeBestRecord
from store.records.population import RunRecord
from tests.serving.trained import BTC, SERIES_GENES, TRAIN_BARS, row_for, sqlite_url, train

BUILT_IN = RegimeRules()
# Bull only from a 50% rise over the week: most of the built-in bull bars are something else.
STRICT = RegimeRules(
    window="7d",
    rules=(
        RegimeRule("bull_trending", trend_min=0.5, description="rose 50% or more"),
        RegimeRule("bear_trending", trend_max=-0.5, description="fell 50% or more"),
        RegimeRule("volatile_ranging", vol_min=0.6, description="no trend, vol >= 60%"),
        RegimeRule("calm_ranging", description="no trend, vol < 60%"),
    ),
)
HISTORY = 400


def crown(store: Store, row: RegimeBestRecord, rules: RegimeRules) -> None:
    """``row``'s run stores ``rules`` (as `redline evolve` does), then its champion is crowned."""
    store.runs.create_run(RunRecord(
        run_id=row.run_id, config={"test": row.run_id}, config_hash=row.run_id, root_seed=1,
        generations_planned=1, settings={"regimes": rules.to_dict()},
    ))  # fmt: skip
    store.champions.promote(row, PromotionRecord(
        specialty=row.specialty, regime=row.regime, decision="PROMOTED", challenger=row.model,
        incumbent=None, reason="test champion", before={}, after={"sharpe": row.sharpe}, dsr=None,
        n_trials=1, margin=0.25,
    ))  # fmt: skip


def bull_only_under(candles: pd.DataFrame, judged: RegimeRules, other: RegimeRules) -> pd.DataFrame:
    """The last ``HISTORY`` candles up to the latest bar ``judged`` calls bull and ``other`` not."""
    under_judged = classify_regimes(candles, "1h", judged)
    under_other = classify_regimes(candles, "1h", other)
    hits = np.flatnonzero((under_judged == "bull_trending") & (under_other != "bull_trending"))
    hits = hits[hits >= HISTORY - 1]
    assert hits.size, "no bar of the sample is bull under one rule set only"
    end = int(hits[-1]) + 1
    return candles.iloc[end - HISTORY : end].reset_index(drop=True)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("rules") / "redline_data"
    home.mkdir()
    with Store.open(sqlite_url(home), home=home) as store:
        ensure_sample(store)
    return home


def test_the_served_ensemble_keeps_the_rules_its_champion_was_judged_under(home: Path) -> None:
    with Store.open(sqlite_url(home), home=home) as store:
        candles = store.candles.load_candles(BTC)
        recent = candles.iloc[-TRAIN_BARS:].reset_index(drop=True)
        child = train(technical_dataset(recent, name=BTC.file_stem, timeframe="1h"),
                      SERIES_GENES, home, "ta-rules", 5)  # fmt: skip
        first = replace(row_for(child, "bull_trending", home), run_id="r-built-in", sharpe=1.0)
        crown(store, first, BUILT_IN)
        store.regimes.sync_regime_definitions(STRICT)  # the rules change after the run
        assert store.regimes.regime_rules() == STRICT

        ensemble = Ensemble.load(store, home)
        assert ensemble.rules == BUILT_IN  # the run's, not the table's
        (member,) = ensemble.members["bull_trending"]
        assert member.rules == BUILT_IN

        window = bull_only_under(candles, BUILT_IN, STRICT)
        answer = ensemble.predict(window, exchange=BTC.exchange, symbol=BTC.symbol,
                                  timeframe=BTC.timeframe, request_id="rules-1")  # fmt: skip
        assert answer.regime.name == "bull_trending"
        assert [m.agent_id for m in answer.members] == [first.agent_id]
        assert answer.combiner == "sharpe_weighted_vote"

        # A run under the new rules: a new version, and its rules name the live regime now.
        before = ensemble_version(store, home)
        assert before == ensemble.version
        second = replace(first, run_id="r-strict", agent_id="ta-rules-strict",
                         regime="calm_ranging")  # fmt: skip
        crown(store, second, STRICT)
        after = ensemble_version(store, home)
        assert after != before
        swapped = Ensemble.load(store, home)
        assert swapped.version == after
        assert swapped.rules == STRICT
        strict_regime = str(classify_regimes(window, "1h", STRICT)[-1])
        answer = swapped.predict(window, exchange=BTC.exchange, symbol=BTC.symbol,
                                 timeframe=BTC.timeframe, request_id="rules-2")  # fmt: skip
        assert answer.regime.name == strict_regime != "bull_trending"
        voters = {m.agent_id: m.regime for m in answer.members}
        # The first champion still votes: its own rules call the last candle bull.
        assert voters[first.agent_id] == "bull_trending"
        assert (second.agent_id in voters) == (strict_regime == "calm_ranging")


def test_a_new_run_id_for_new_rules(tmp_path: Path) -> None:
    """The rules are part of an evolve run's identity: same evolve section, other rules, other
    config hash (so `redline evolve` under new rules is a new run, never a resume of the old)."""
    from cluster.config import load_config
    from cluster.evolve import config_hash

    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "evolve-smoke.yaml")
    assert config.evolve is not None
    assert config_hash(config.evolve, BUILT_IN) != config_hash(config.evolve, STRICT)
    assert config_hash(config.evolve, BUILT_IN) == config_hash(config.evolve, RegimeRules())
