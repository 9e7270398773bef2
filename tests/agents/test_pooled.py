"""Pooled multi-symbol training: one model over every symbol's rows, each symbol traded by its
own score, on real candles (a short span of three symbols)."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.banks import technical_dataset
from agents.dataset import Dataset
from agents.datasets import pool_datasets, read_dataset, write_dataset
from agents.genome import Genome
from agents.scoring import independent_bets, score_pooled
from agents.training import checkpoint_meta, infer_task, plan_folds, train_child
from market.regimes import REGIMES, RegimeRules
from tests.conftest import shared_data_dir

SYMBOLS = ("BTC", "ETH", "SOL")
ROWS = 3000


@lru_cache(maxsize=4)
def own(symbol: str) -> Dataset:
    path = Path(shared_data_dir()) / f"binance_{symbol}-USDT_1h.csv.gz"
    frame = pd.read_csv(path).rename(columns={"timestamp": "ts"})
    frame = frame[frame["ts"] < 1_680_307_200_000].iloc[-ROWS:].reset_index(drop=True)  # < 2023-04
    name = f"binance_{symbol}-USDT_1h"
    return technical_dataset(frame, name=name, timeframe="1h", rules=RegimeRules())


@lru_cache(maxsize=1)
def pooled() -> Dataset:
    names = tuple(f"{s}/USDT" for s in SYMBOLS)
    return pool_datasets([own(s) for s in SYMBOLS], names, name="binance_pooled_1h")


def genome(**genes: object) -> Genome:
    values: dict[str, object] = {
        "lookback": 6, "feature_set": "all", "horizon": 8, "hidden": 16, "depth": 1,
        "dropout": 0.1, "lr": 3e-3, "epochs": 2, "threshold": 0.1, "weight_decay": 1e-5,
        "batch_size": 256,
    }  # fmt: skip
    values.update(genes)
    return Genome("technical_analyst", tuple(values.items()))  # type: ignore[arg-type]


def test_each_symbols_rows_of_the_pooled_dataset_are_its_own_dataset() -> None:
    ds = pooled()
    assert ds.pooled and infer_task(ds) == "direction"
    assert ds.group_names == ("BTC/USDT", "ETH/USDT", "SOL/USDT")
    assert ds.group is not None and ds.close is not None and ds.regimes is not None
    for g, symbol in enumerate(SYMBOLS):
        mine, rows = own(symbol), np.flatnonzero(ds.group == g)
        assert np.array_equal(ds.features[rows], mine.features)  # exactly: same bytes
        assert np.array_equal(ds.ts[rows], mine.ts)
        assert np.array_equal(ds.close[rows], np.asarray(mine.close))
        assert np.array_equal(ds.regimes[rows], np.asarray(mine.regimes))


def test_a_pooled_dataset_reads_back_pooled(tmp_path: Path) -> None:
    ds = pooled()
    back = read_dataset(write_dataset(ds, tmp_path))
    assert back.pooled and back.digest() == ds.digest()
    unpooled = Dataset(ds.specialty, ds.name, ds.timeframe, ds.features, ds.feature_names, ds.ts,
                       close=ds.close, group=ds.group)  # fmt: skip
    assert unpooled.digest() != ds.digest() and infer_task(unpooled) == "rank"


def test_a_pooled_dataset_needs_a_group() -> None:
    ds = own("BTC")
    with pytest.raises(ValueError, match="pooled needs a group column"):
        Dataset(ds.specialty, ds.name, ds.timeframe, ds.features, ds.feature_names, ds.ts,
                close=ds.close, pooled=True)  # fmt: skip


def test_pooled_folds_run_over_timestamps_and_no_label_reaches_a_held_out_bar() -> None:
    ds = pooled()
    assert ds.group is not None
    units = np.unique(ds.ts, return_inverse=True)[1]
    reach = np.full(ds.n_rows, np.iinfo(np.int64).max)
    for g in range(len(SYMBOLS)):
        rows = np.flatnonzero(ds.group == g)
        reach[rows[:-8]] = units[rows[8:]]
    for plan in plan_folds(ds, genome()):
        assert plan.fold is not None
        assert np.all(reach[plan.train_rows] < plan.fold.test.start)
        assert set(np.unique(ds.group[plan.train_rows])) == {0, 1, 2}  # every symbol trains
        assert set(np.unique(ds.group[plan.test_rows])) == {0, 1, 2}  # and is scored


def test_a_pooled_child_reports_per_symbol_metrics_and_independent_bets() -> None:
    ds = pooled()
    report, state = train_child(ds, genome(), seed=3, agent_id="ta-p", generation=0)
    assert report.ok, report.reason
    assert state is not None and report.task == "direction"
    assert report.symbols == ("BTC/USDT", "ETH/USDT", "SOL/USDT")
    assert checkpoint_meta(report)["symbols"] == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    m = report.metrics
    for symbol in report.symbols:
        for name in ("sharpe", "total_return", "max_drawdown", "direction_hit_rate"):
            assert math.isfinite(m[f"{name}@{symbol}"]), f"{name}@{symbol}"
    assert m["n_symbols"] == 3.0
    assert m["n_oos_bars"] == len(np.unique(report.oos_ts))
    assert 1.0 <= m["n_eff_symbols"] <= 3.0 and 0.0 <= m["mean_symbol_corr"] <= 1.0
    assert m["n_eff_bets"] == pytest.approx(m["n_eff_symbols"] * m["n_oos_bars"])
    assert set(REGIMES) <= set(report.per_regime)
    # Each symbol is traded by its own score (not ranked across symbols): long everywhere at once
    # happens, which a market-neutral panel never does.
    frame = pd.DataFrame({"ts": report.oos_ts, "p": report.oos_position})
    assert (frame.groupby("ts")["p"].min() > 0).any()


def test_score_pooled_takes_a_position_rule() -> None:
    ds = own("BTC")
    close = np.asarray(ds.close, dtype=np.float64)[-500:]
    ts = ds.ts[-500:]
    two = np.concatenate([ts, ts])
    group = np.repeat([0, 1], 500)
    scores = np.tile(np.linspace(-1, 1, 500), 2)

    def half(s: np.ndarray, c: np.ndarray, b: np.ndarray) -> np.ndarray:
        return 0.5 * np.sign(s)

    out = score_pooled(two, np.concatenate([close, close]), group, scores, 0.0,
                       names=("A", "B"), positions=half, timeframe="1h")  # fmt: skip
    assert set(np.unique(out.position)) == {-0.5, 0.5}
    # Two identical strategies are one bet.
    assert out.metrics["mean_symbol_corr"] == pytest.approx(1.0)
    assert out.metrics["n_eff_symbols"] == pytest.approx(1.0)
    assert out.metrics["sharpe@A"] == pytest.approx(out.metrics["sharpe@B"])


def test_independent_bets_of_uncorrelated_symbols_count_each() -> None:
    ds = own("BTC")
    r = pd.Series(np.diff(np.log(np.asarray(ds.close, dtype=np.float64))))
    rho, n_eff = independent_bets({0: r, 1: -r})
    assert rho == 0.0 and n_eff == 2.0  # anti-correlated pairs are clipped at 0
