"""A crowned rug-pull detector served by real Ray Serve: a real evolution on the real Uniswap V2
tokens of ../shared/data (1,000 tokens held out, drawn at random), its best child crowned by the
project's default classifier rules (``configs/defaults.yaml`` ``champions.classifier``), then
``/v1/models`` lists it with its AUC and interval and ``/v1/rugpull`` answers held-out tokens with
its agent id."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from agents.banks import RUGPULL_FEATURES
from agents.scoring import roc_auc
from store.db import Store
from store.records.champions import ALL_REGIMES
from tests.evolution import classifier_scenario
from tests.serving.conftest import TOKEN, Served, run_redline
from tests.serving.crowned_rugpull import (
    HELD_OUT,
    Crowned,
    crowned_fixture,  # noqa: F401  (the session fixture `crowned`)
)

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ASKED = 120  # held-out tokens sent over HTTP


@pytest.fixture(scope="module")
def served(serve_port: int, crowned: Crowned) -> Iterator[Served]:
    from ray import serve

    app = run_redline(serve_port, crowned.home, "rugclf")
    yield app
    serve.delete(app.name)


def test_the_default_rules_crown_it_saying_the_numbers(crowned: Crowned) -> None:
    metrics = crowned.champion.metrics
    assert crowned.reason.startswith(f"promoted: AUC {metrics['auc']:.3f} [")
    assert crowned.reason.endswith(
        f"lower bound {metrics['auc_low']:.3f} >= 0.850, no champion yet"
    )
    assert metrics["n_pos"] + metrics["n_neg"] == 14_628 - HELD_OUT


def test_models_lists_the_crowned_classifier_with_its_interval(
    served: Served, crowned: Crowned
) -> None:
    models = httpx.get(f"{served.url}/v1/models", headers=AUTH, timeout=30).json()
    entry = models["rugpull"]
    row = crowned.champion
    assert (entry["agent_id"], entry["run_id"], entry["regime"], entry["stage"]) == (
        row.agent_id, classifier_scenario.RUN_ID, ALL_REGIMES, "PAPER",
    )  # fmt: skip
    assert entry["live"] and entry["sharpe"] is None
    assert (entry["auc"], entry["auc_low"], entry["auc_high"]) == (
        row.metrics["auc"], row.metrics["auc_low"], row.metrics["auc_high"],
    )  # fmt: skip


def test_rugpull_answers_held_out_real_tokens_with_the_champion(
    served: Served, crowned: Crowned
) -> None:
    names = [raw for group in RUGPULL_FEATURES.values() for raw in group]
    # Half of each class (the file is ordered by class, so its first held-out rows are mostly
    # one), drawn with a fixed seed.
    held = crowned.held_out
    asked = pd.concat([
        held[held["is_rugpull"] == value].sample(ASKED // 2, random_state=7) for value in (0, 1)
    ])  # fmt: skip
    probabilities = []
    for token in asked.itertuples(index=False):
        features = {name: float(getattr(token, name)) for name in names}
        answer = httpx.post(f"{served.url}/v1/rugpull", json={"features": features},
                            headers=AUTH, timeout=60)  # fmt: skip
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["reason"] is None
        assert (body["agent_id"], body["run_id"]) == (
            crowned.champion.agent_id, classifier_scenario.RUN_ID,
        )  # fmt: skip
        assert body["is_rugpull"] == (body["probability"] > body["threshold"])
        assert len(body["top_features"]) == 5
        probabilities.append(body["probability"])
    y = asked["is_rugpull"].to_numpy()
    assert 0 < y.sum() < len(y)  # both classes among the tokens asked
    # No child saw these tokens: the served model still separates them.
    assert roc_auc(y, np.asarray(probabilities)) > 0.85


def test_only_the_classifier_rules_crown_what_rugpull_serves(
    crowned: Crowned, tmp_path: Path
) -> None:
    """A rug-pull champion of one market regime (crowned by hand: the classifier rules never write
    one) is listed as unavailable with the reason; the ``all`` champion answers."""
    from serving.ensemble import Ensemble
    from store.records.champions import PromotionRecord

    home = tmp_path / "redline_data"
    home.mkdir()
    (home / "redline.db").write_bytes((crowned.home / "redline.db").read_bytes())
    with Store.open(f"sqlite:///{home / 'redline.db'}", home=home) as store:
        legacy = replace(crowned.champion, regime="calm_ranging", is_champion=False)
        store.champions.promote(legacy, PromotionRecord(
            specialty=legacy.specialty, regime="calm_ranging", decision="PROMOTED",
            challenger=legacy.model, incumbent=None, reason="by hand", before={}, after={},
            dsr=None, n_trials=1, margin=0.25,
        ))  # fmt: skip
        ensemble = Ensemble.load(store, home)
    assert ensemble.rugpull_member is not None
    assert ensemble.rugpull_member.row.regime == ALL_REGIMES
    (refused,) = [e for e in ensemble.unavailable if e.specialty == "rugpull_detector"]
    assert refused.regime == "calm_ranging" and refused.reason == (
        "not crowned by the classifier rules (its regime is 'calm_ranging', not 'all')"
    )
