"""Serve says which symbols a member was trained on, and a member asked about another symbol
abstains naming both (never applied to it silently): a pooled model on real ETH and SOL candles,
and a single-symbol model whose run records the dataset it ate."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.banks import technical_dataset
from agents.child import file_sha256
from agents.datasets import pool_datasets
from agents.genome import Genome
from agents.models import save_checkpoint
from agents.training import checkpoint_meta, train_child
from market.regimes import classify_regimes
from market.series import SeriesKey
from serving.ensemble import Ensemble
from store.db import Store
from store.records.population import RunRecord
from tests.serving.trained import (
    SERIES_GENES,
    Champions,
    Trained,
    champions_fixture,  # noqa: F401  (the session fixture `champions`)
    copy_home,
    promote,
    row_for,
    window_ending_in,
)

POOLED = ("ETH/USDT", "SOL/USDT")


def _candles(store: Store, symbol: str, bars: int = 2500) -> pd.DataFrame:
    frame = store.candles.load_candles(SeriesKey("binance", symbol, "1h"))
    return frame.iloc[-bars:].reset_index(drop=True)


def _window_in(candles: pd.DataFrame, regime: str, bars: int = 400) -> pd.DataFrame | None:
    hits = np.flatnonzero(classify_regimes(candles, "1h") == regime)
    hits = hits[hits >= bars]
    if not hits.size:
        return None
    end = int(hits[-1]) + 1
    return candles.iloc[end - bars : end].reset_index(drop=True)


def test_a_pooled_member_lists_its_symbols_and_abstains_on_another(
    champions: Champions, tmp_path: Path
) -> None:
    home = copy_home(champions, tmp_path / "home")
    regime = sorted(champions.busiest())[0]
    with Store.open(f"sqlite:///{home / 'redline.db'}", home=home) as store:
        parts = [
            technical_dataset(_candles(store, s), name=SeriesKey("binance", s, "1h").file_stem,
                              timeframe="1h")
            for s in POOLED
        ]  # fmt: skip
        pooled = pool_datasets(parts, POOLED, name="binance_pooled_1h")
        report, state = train_child(pooled, Genome(pooled.specialty, tuple(SERIES_GENES.items())),
                                    seed=5, agent_id="ta-pooled", generation=3)  # fmt: skip
        assert report.ok and state is not None, report.reason
        path = save_checkpoint(home / "checkpoints" / "ta-pooled_gen3.pt", state,
                               checkpoint_meta(report))  # fmt: skip
        trained = Trained(report, path, file_sha256(path))
        assert trained.report.symbols == POOLED
        # Crowned where the BTC technical_analyst was (the test copy's store only).
        promote(store.training, replace(row_for(trained, regime, home), sharpe=1.0))
        ensemble = Ensemble.load(store, home)
        eth = _window_in(_candles(store, "ETH/USDT", 6000), regime)
    entries = {e.agent_id: e for e in ensemble.models().regimes[regime].members}
    assert entries["ta-pooled"].symbols == list(POOLED)
    assert entries["vh-serving"].symbols is None  # its run records no data: not recorded

    btc = window_ending_in(champions, {regime})
    answer = ensemble.predict(btc, exchange="binance", symbol="BTC/USDT", timeframe="1h",
                              request_id="r1")  # fmt: skip
    by_id = {m.agent_id: m for m in answer.members}
    out = by_id["ta-pooled"]
    assert (out.vote, out.weight, out.symbols) == (0, 0.0, list(POOLED))
    assert out.reason == (
        "trained on ETH/USDT, SOL/USDT, not BTC/USDT: a model is not applied to a symbol it was "
        "not trained on"
    )
    others = [m for m in answer.members if m.agent_id != "ta-pooled"]
    assert all(m.reason is None for m in others)
    if others:
        assert sum(m.weight for m in others) == pytest.approx(1.0)
    else:
        assert answer.signal.reason == f"no champion of {regime} was trained on BTC/USDT"

    assert eth is not None, f"no ETH bar of the sample is in {regime}"
    answer = ensemble.predict(eth, exchange="binance", symbol="ETH/USDT", timeframe="1h",
                              request_id="r2")  # fmt: skip
    assert answer.regime.name == regime
    voted = {m.agent_id: m for m in answer.members}["ta-pooled"]
    assert voted.reason is None and voted.symbols == list(POOLED) and voted.weight > 0


def test_a_single_symbol_member_knows_its_symbol_from_its_runs_datasets(
    champions: Champions, tmp_path: Path
) -> None:
    home = copy_home(champions, tmp_path / "home")
    regime = sorted(champions.busiest())[0]
    ta = champions.trained["technical_analyst"]
    with Store.open(f"sqlite:///{home / 'redline.db'}", home=home) as store:
        store.runs.create_run(RunRecord(
            run_id="btc-run", config={"data": {"symbols": ["BTC/USDT", "ETH/USDT"]}},
            config_hash="h", root_seed=0, generations_planned=1,
            dataset_digests={"technical_analyst/binance_BTC-USDT_1h": ta.report.dataset_digest},
        ))  # fmt: skip
        promote(store.training, row_for(ta, regime, home, run_id="btc-run", sharpe=1.0))
        ensemble = Ensemble.load(store, home)
        eth = _window_in(_candles(store, "ETH/USDT", 6000), regime)
    entries = ensemble.models().regimes[regime].members
    assert {e.specialty: e.symbols for e in entries}["technical_analyst"] == ["BTC/USDT"]
    assert eth is not None
    answer = ensemble.predict(eth, exchange="binance", symbol="ETH/USDT", timeframe="1h",
                              request_id="r3")  # fmt: skip
    assert answer.regime.name == regime
    out = {m.specialty: m for m in answer.members}["technical_analyst"]
    assert out.vote == 0 and out.reason is not None
    assert out.reason.startswith("trained on BTC/USDT, not ETH/USDT")
