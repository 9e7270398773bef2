"""Real champions from a tiny real training, for the serving tests that need them fast.

``champions`` (a session fixture: import ``champions_fixture`` into a test module) trains small technical_analyst,
volume_hunter and rugpull_detector children on the shipped sample (the last 3,000 BTC/USDT 1h
candles, the Uniswap tokens) with ``agents.training.train_child``, saves their weights-only
checkpoints (``agents.models.save_checkpoint``) and crowns them with ``TrainingStore.promote`` in
a SQLite store, in every regime where the child's out-of-sample Sharpe there is positive (where it
is not, the champion rules would refuse it: that regime gets no champion). The volume_hunter rows
carry a Tune-style path relative to the data root, the others absolute paths, so both are served.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.banks import rugpull_dataset, technical_dataset, volume_dataset
from agents.child import file_sha256
from agents.dataset import Dataset
from agents.genome import Genome
from agents.models import save_checkpoint
from agents.sources import SAMPLE_DIR
from agents.training import ChildReport, checkpoint_meta, train_child
from market.regimes import REGIMES, classify_regimes
from market.series import SeriesKey
from market.splits import WalkForward
from store.champions import ChampionStore
from store.db import Store
from store.ingest import ensure_sample
from store.records.champions import ALL_REGIMES, PromotionRecord, RegimeBestRecord
from store.training import TrainingStore

BTC = SeriesKey("binance", "BTC/USDT", "1h")
RUN_ID = "serving-test"
TRAIN_BARS = 3000
SERIES_GENES = {"lookback": 2, "feature_set": "fast", "horizon": 4, "hidden": 8, "depth": 1,
                "dropout": 0.0, "lr": 3e-3, "epochs": 2, "weight_decay": 1e-5,
                "batch_size": 256, "threshold": 0.05}  # fmt: skip
RUGPULL_GENES = {"feature_set": "all", "hidden": 8, "depth": 1, "dropout": 0.0, "lr": 3e-3,
                 "epochs": 3, "weight_decay": 1e-5, "batch_size": 128}  # fmt: skip
THRESHOLD, SIZE = 0.05, 0.5


def sqlite_url(home: Path) -> str:
    return f"sqlite:///{home / 'redline.db'}"


@dataclass(frozen=True)
class Trained:
    report: ChildReport
    path: Path
    sha256: str


@dataclass(frozen=True)
class Champions:
    home: Path
    candles: pd.DataFrame  # the sample's BTC/USDT 1h candles, from the store
    trained: dict[str, Trained]  # specialty -> its child
    regimes: dict[str, list[str]]  # regime -> specialties crowned there

    @property
    def url(self) -> str:
        return sqlite_url(self.home)

    def store(self) -> Store:
        return Store.open(self.url, home=self.home)

    def crowned(self) -> set[str]:
        return {regime for regime, found in self.regimes.items() if found}

    def busiest(self) -> set[str]:
        """The regimes with the most champions (both voting specialties, when any has both)."""
        most = max(len(found) for found in self.regimes.values())
        return {regime for regime, found in self.regimes.items() if len(found) == most}


def last_40_percent(ds: Dataset, genes: dict[str, object]) -> WalkForward | None:
    """The split these champions were first trained with (4 expanding folds tiling the last 40%
    of the rows): the serving tests need champions with a positive Sharpe in some regime, which
    the default whole-history walk-forward does not give these tiny 2-epoch children (classify
    datasets use K-fold: None)."""
    if ds.target is not None:
        return None
    horizon, lookback = int(genes["horizon"]), int(genes["lookback"])  # type: ignore[call-overload]
    units = len(np.unique(ds.ts))  # bars, or timestamps of a panel
    test = int(units * 0.4) // 4
    return WalkForward(train=units - 4 * test - horizon - lookback, test=test,
                       mode="expanding", purge=horizon, embargo=lookback)  # fmt: skip


def train(ds: Dataset, genes: dict[str, object], home: Path, agent_id: str, seed: int) -> Trained:
    report, state = train_child(ds, Genome(ds.specialty, tuple(genes.items())), seed=seed,
                                agent_id=agent_id, generation=3,
                                split=last_40_percent(ds, genes))  # fmt: skip
    assert report.ok and state is not None, report.reason
    path = save_checkpoint(home / "checkpoints" / f"{agent_id}_gen3.pt", state,
                           checkpoint_meta(report))  # fmt: skip
    return Trained(report, path, file_sha256(path))


def row_for(trained: Trained, regime: str, home: Path, **changes: object) -> RegimeBestRecord:
    """The champion row of ``trained`` in ``regime`` (volume_hunter: a relative path)."""
    report = trained.report
    relative = report.specialty == "volume_hunter"
    metrics = report.per_regime.get(regime) or report.metrics
    finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
    row = RegimeBestRecord(
        run_id=RUN_ID, specialty=report.specialty, regime=regime, agent_id=report.agent_id,
        sharpe=finite.get("sharpe"), metrics=finite, source="tune" if relative else "evolution",
        checkpoint_path=str(trained.path.relative_to(home)) if relative else str(trained.path),
        checkpoint_sha256=trained.sha256,
        inference={"threshold": THRESHOLD, "horizon": 4, "size": SIZE},
    )  # fmt: skip
    return replace(row, **changes)  # type: ignore[arg-type]


def promote(training: TrainingStore, row: RegimeBestRecord) -> None:
    training.ensure_experiment(RUN_ID, {"test": "serving"}, 11)
    incumbent = ChampionStore(training.database).champion(row.specialty, row.regime)
    ChampionStore(training.database).promote(row, PromotionRecord(
        specialty=row.specialty, regime=row.regime, decision="PROMOTED", challenger=row.model,
        incumbent=None if incumbent is None else incumbent.model, reason="test champion",
        before={}, after={"sharpe": row.sharpe}, dsr=None, n_trials=1, margin=0.25,
    ))  # fmt: skip


def _positive_sharpe(trained: Trained, regime: str) -> bool:
    sharpe = (trained.report.per_regime.get(regime) or {}).get("sharpe", math.nan)
    return math.isfinite(sharpe) and sharpe > 0


@pytest.fixture(scope="session", name="champions")
def champions_fixture(tmp_path_factory: pytest.TempPathFactory) -> Champions:
    home = tmp_path_factory.mktemp("trained") / "redline_data"
    home.mkdir()
    with Store.open(sqlite_url(home), home=home) as store:
        ensure_sample(store)
        candles = store.candles.load_candles(BTC)
        recent = candles.iloc[-TRAIN_BARS:].reset_index(drop=True)
        name = BTC.file_stem
        tokens = pd.read_csv(SAMPLE_DIR / "rugpull_uniswapv2_tokens.csv.gz")
        trained = {
            "technical_analyst": train(technical_dataset(recent, name=name, timeframe="1h"),
                                       SERIES_GENES, home, "ta-serving", 3),
            "volume_hunter": train(volume_dataset(recent, name=name, timeframe="1h"),
                                   SERIES_GENES, home, "vh-serving", 11),
            "rugpull_detector": train(rugpull_dataset(tokens), RUGPULL_GENES, home, "rp-serving", 11),
        }  # fmt: skip
        training = store.training
        crowned: dict[str, list[str]] = {regime: [] for regime in REGIMES}
        for specialty in ("technical_analyst", "volume_hunter"):
            for regime in REGIMES:
                if _positive_sharpe(trained[specialty], regime):
                    promote(training, row_for(trained[specialty], regime, home))
                    crowned[regime].append(specialty)
        promote(training, row_for(trained["rugpull_detector"], ALL_REGIMES, home, inference={}))
    assert any(crowned.values()), "no child had a positive Sharpe in any regime"
    return Champions(home, candles, trained, crowned)


def copy_home(champions: Champions, home: Path) -> Path:
    """The champions' data root copied into ``home``: for a test that changes it (trades move
    the champions' stages; emptying the store), leaving the session's as it is."""
    (home / "checkpoints").mkdir(parents=True)
    for checkpoint in (champions.home / "checkpoints").iterdir():
        (home / "checkpoints" / checkpoint.name).write_bytes(checkpoint.read_bytes())
    with sqlite3.connect(champions.home / "redline.db") as source, \
            sqlite3.connect(home / "redline.db") as copy:  # fmt: skip
        source.backup(copy)
    return home


def window_ending_in(champions: Champions, regimes: set[str], bars: int = 400) -> pd.DataFrame:
    """The last ``bars`` candles up to the latest bar whose regime is one of ``regimes``."""
    labels = classify_regimes(champions.candles, "1h")
    hits = np.flatnonzero(np.isin(labels, sorted(regimes)))
    assert hits.size, f"no bar of the sample is in {sorted(regimes)}"
    end = int(hits[-1]) + 1
    return champions.candles.iloc[end - bars : end].reset_index(drop=True)
