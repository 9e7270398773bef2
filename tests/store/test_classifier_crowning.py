"""Classifier champions through the store's one writer, on SQLite and PostgreSQL: rug-pull rows
(regime ``ALL_REGIMES``) judged by ``evolution.champions.decide_classifier`` via
``evolution.crowning.consider_evolution_run``.

The numbers are real: each "classifier" is a fixed rule on the real Uniswap V2 tokens of
../shared/data (one feature, or the sum of two features' ranks), its AUC and DeLong interval
computed over every token (``agents.scoring.auc_metrics``), standing in for a trained network
(training is tested in tests/agents and tests/evolution).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from agents.scoring import auc_metrics, roc_auc
from evolution.champions import ChampionPolicy
from evolution.crowning import consider_evolution_run
from store.db import Store
from store.records.champions import ALL_REGIMES, RegimeBestRecord
from store.records.population import RunRecord
from tests.conftest import shared_data_dir

SPECIALTY = "rugpull_detector"


@cache
def _tokens() -> pd.DataFrame:
    return pd.read_csv(shared_data_dir() / "rugpull_uniswapv2_tokens.csv.gz")


def _metrics(rule: str) -> dict[str, float]:
    tokens = _tokens()
    creator = tokens["lp_creator_holding_ratio"].rank().to_numpy()
    swaps_out = (-tokens["swap_out_per_week"]).rank().to_numpy()
    score = {"creator": creator, "swaps_out": swaps_out, "both": creator + swaps_out}[rule]
    y = tokens["is_rugpull"].to_numpy()
    return {"auc": roc_auc(y, score), **auc_metrics(y, score)}


def _run(store: Store, run_id: str, rule: str) -> dict[str, float]:
    """Run ``run_id``, finished, whose best rug-pull child is the rule ``rule``."""
    store.runs.create_run(RunRecord(run_id, {"rule": rule}, rule, 7, 1, status="finished"))
    metrics = _metrics(rule)
    store.champions.set_regime_best(
        RegimeBestRecord(run_id=run_id, specialty=SPECIALTY, regime=ALL_REGIMES,
                         agent_id=f"{run_id}.rd-0", metrics=metrics,
                         checkpoint_path=f"/checkpoints/{run_id}.pt", checkpoint_sha256="0" * 64)
    )  # fmt: skip
    return metrics


def test_classifier_champions_through_the_store(store: Store) -> None:
    policy = ChampionPolicy()  # the default rules: floor 0.85, margin 0.01
    creator = _run(store, "r-a", "creator")
    assert creator["auc_low"] > 0.85  # lp_creator_holding_ratio alone: AUC 0.899
    (first,) = consider_evolution_run(store, "r-a", policy, "1h")
    assert first.decision == "PROMOTED" and first.reason.endswith("no champion yet")

    weak = _run(store, "r-b", "swaps_out")
    assert weak["auc_low"] < 0.85  # swap_out_per_week alone: AUC 0.845
    (refused,) = consider_evolution_run(store, "r-b", policy, "1h")
    assert refused.decision == "REFUSED" and refused.reason.startswith(
        f"refused: AUC lower bound {weak['auc_low']:.3f} < 0.850; AUC {weak['auc']:.3f} does not "
        f"beat the champion's {creator['auc']:.3f} by the margin 0.010"
    )
    assert store.champions.champion(SPECIALTY, ALL_REGIMES).run_id == "r-a"  # type: ignore[union-attr]

    both = _run(store, "r-c", "both")
    assert both["auc"] - creator["auc"] >= 0.01
    (second,) = consider_evolution_run(store, "r-c", policy, "1h")
    assert second.decision == "PROMOTED" and second.incumbent == "r-a/r-a.rd-0"
    assert second.reason.endswith(
        f"beats the champion's {creator['auc']:.3f} by {both['auc'] - creator['auc']:.3f} >= 0.010"
    )
    again = _run(store, "r-d", "creator")  # the first champion's rule again: validated, no margin
    (third,) = consider_evolution_run(store, "r-d", policy, "1h")
    assert third.decision == "REFUSED" and third.reason.startswith(
        f"refused: AUC {again['auc']:.3f} does not beat the champion's {both['auc']:.3f}"
    )

    rows = {r.run_id: r for r in store.champions.regime_best() if r.specialty == SPECIALTY}
    assert {k: (r.stage, r.is_champion) for k, r in rows.items()} == {
        "r-a": ("RETIRED", False), "r-b": ("DISCOVERY", False),
        "r-c": ("PAPER", True), "r-d": ("VALIDATION", False),
    }  # fmt: skip
    assert [c.model for c in store.champions.champions()] == ["r-c/r-c.rd-0"]
    log = store.champions.promotions(specialty=SPECIALTY, regime=ALL_REGIMES)
    assert [p.decision for p in log] == ["PROMOTED", "REFUSED", "PROMOTED", "REFUSED"]
    assert {(p.margin, p.dsr, p.n_trials) for p in log} == {(0.01, None, 1)}
    assert log[2].after["incumbent"]["stage"] == "RETIRED"
    assert np.isclose(log[2].after["challenger"]["metrics"]["auc_low"], both["auc_low"])
    # A finished run judged again logs nothing.
    assert consider_evolution_run(store, "r-d", policy, "1h") == []
