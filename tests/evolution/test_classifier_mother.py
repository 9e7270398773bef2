"""A classify specialty through the Mother and the crowning, without Ray: a real rug-pull evolution
(``tests.evolution.classifier_scenario``, in a process where ``import ray`` raises, on the real
tokens of ../shared/data) writes one ``ALL_REGIMES`` row, its best child by the AUC's lower bound,
and ``evolution.crowning`` judges it by the classifier rules, through the store's one writer."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from evolution.champions import ChampionPolicy, ClassifierPolicy
from evolution.crowning import consider_evolution_run
from store.db import Store
from store.records.champions import ALL_REGIMES
from tests.evolution.classifier_scenario import POPULATION, RUN_ID

REPO = Path(__file__).resolve().parents[2]
PROCESS_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def evolved(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    home = tmp_path_factory.mktemp("rugpull-evolution")
    tokens = shared_data / "rugpull_uniswapv2_tokens.csv.gz"
    done = subprocess.run(
        [sys.executable, "-m", "tests.evolution.classifier_scenario", str(home), str(tokens), "0"],
        cwd=REPO, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return home


def open_store(home: Path) -> Store:
    return Store.open(f"sqlite:///{home / 'redline.db'}", home=home)


def _evidence(metrics: dict[str, float]) -> str:
    n = int(metrics["n_pos"] + metrics["n_neg"])
    return (
        f"AUC {metrics['auc']:.3f} [{metrics['auc_low']:.3f}, {metrics['auc_high']:.3f}] at 95% "
        f"over {n:,} rows ({int(metrics['n_pos']):,} positive, {int(metrics['n_neg']):,} negative)"
    )


def test_the_mother_writes_one_row_for_every_regime(evolved: Path) -> None:
    with open_store(evolved) as store:
        children = [a for a in store.runs.agents(RUN_ID) if a.status == "OK"]
        rows = store.champions.regime_best(RUN_ID)
    assert len(children) == POPULATION["rugpull_detector"]
    assert [(r.specialty, r.regime) for r in rows] == [("rugpull_detector", ALL_REGIMES)]
    (row,) = rows
    best = max(children, key=lambda a: (a.metrics["auc_low"], a.metrics["auc"], a.agent_id))
    assert row.agent_id == best.agent_id and row.sharpe is None and not row.is_champion
    assert row.metrics == best.metrics
    assert row.metrics["n_pos"] + row.metrics["n_neg"] == 14_628  # every token, out of fold
    assert row.metrics["auc_low"] < row.metrics["auc"] < row.metrics["auc_high"]
    assert 0 < row.metrics["auc_se"] < 0.01


def test_the_row_is_refused_then_crowned_by_the_classifier_rules(
    evolved: Path, tmp_path: Path
) -> None:
    home = tmp_path / "copy"
    home.mkdir()
    (home / "redline.db").write_bytes((evolved / "redline.db").read_bytes())
    with open_store(home) as store:
        (row,) = store.champions.regime_best(RUN_ID)
        metrics = dict(row.metrics)
        evidence = _evidence(metrics)
        # A floor above its lower bound: refused, naming the numbers.
        floor = math.ceil(metrics["auc_low"] * 1000 + 1) / 1000
        strict = ChampionPolicy(classifier=ClassifierPolicy(auc_floor=floor))
        (refusal,) = consider_evolution_run(store, RUN_ID, strict, "1h")
        assert refusal.decision == "REFUSED" and refusal.regime == ALL_REGIMES
        assert refusal.reason == (
            f"refused: AUC lower bound {metrics['auc_low']:.3f} < {floor:.3f} ({evidence})"
        )
        assert store.champions.champion("rugpull_detector", ALL_REGIMES) is None
        # The default rules crown it (its AUC's lower bound is far above 0.85).
        (promotion,) = consider_evolution_run(store, RUN_ID, ChampionPolicy(), "1h")
        assert promotion.decision == "PROMOTED"
        assert promotion.reason == (
            f"promoted: {evidence}, lower bound {metrics['auc_low']:.3f} >= 0.850, no champion yet"
        )
        assert (promotion.margin, promotion.dsr, promotion.n_trials) == (0.01, None, 1)
        champion = store.champions.champion("rugpull_detector", ALL_REGIMES)
        assert champion is not None and champion.agent_id == row.agent_id
        assert champion.stage == "PAPER" and champion.checkpoint_sha256
        assert champion.checkpoint_path and Path(champion.checkpoint_path).is_file()
        # Judged again: nothing logged twice.
        assert consider_evolution_run(store, RUN_ID, ChampionPolicy(), "1h") == []
        assert len(store.champions.promotions(specialty="rugpull_detector")) == 2
