"""A rug-pull champion's lifecycle follows feedback, on real Serve: the crowned detector (a real
evolution on the real Uniswap V2 tokens, ``crowned_rugpull``) answers held-out tokens no child saw,
each answer carries a request id and is remembered, and ``POST /v1/rugpull/feedback`` reports what
each token turned out to be. Fed the tokens' true outcomes the champion moves to MATURE; fed them
inverted it moves to DECAY, stops answering (``/v1/rugpull`` says why, with its live numbers), and
the next failing outcome retires it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from agents.banks import RUGPULL_FEATURES
from agents.scoring import auc_interval
from serving.client import RedlineClient
from store.db import Store
from store.records.champions import ALL_REGIMES, Stage
from tests.evolution import classifier_scenario
from tests.serving.conftest import TOKEN, Served, run_redline
from tests.serving.crowned_rugpull import (
    Crowned,
    copy_crowned,
    crowned_fixture,  # noqa: F401  (the session fixture `crowned`)
)
from tests.support.waiting import wait_for

AUTH = {"Authorization": f"Bearer {TOKEN}"}
NAMES = [raw for group in RUGPULL_FEATURES.values() for raw in group]
ASKED = 150  # held-out tokens asked per scenario
RUGPULL = "rugpull_detector"


def _open(home: Path) -> Store:
    return Store.open(f"sqlite:///{home / 'redline.db'}", home=home)


def _features(token: Any) -> dict[str, float]:
    return {name: float(getattr(token, name)) for name in NAMES}


def _ask(served: Served, token: Any) -> dict[str, Any]:
    answer = httpx.post(f"{served.url}/v1/rugpull", json={"features": _features(token)},
                        headers=AUTH, timeout=60)  # fmt: skip
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _report(served: Served, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{served.url}/v1/rugpull/feedback", json=body, headers=AUTH, timeout=60)


def _tokens(crowned: Crowned) -> pd.DataFrame:
    asked = crowned.held_out.iloc[:ASKED]
    assert asked["is_rugpull"].nunique() == 2  # both outcomes among the tokens asked
    return asked


@pytest.fixture(scope="module")
def served_true(serve_port: int, crowned: Crowned, tmp_path_factory: Any) -> Iterator[Served]:
    from ray import serve

    home = copy_crowned(crowned, tmp_path_factory.mktemp("rug-true") / "redline_data")
    app = run_redline(serve_port, home, "rugtrue", reload_interval_s=0.5)
    yield app
    serve.delete(app.name)


@pytest.fixture(scope="module")
def served_flip(serve_port: int, crowned: Crowned, tmp_path_factory: Any) -> Iterator[Served]:
    from ray import serve

    from serving.app import build_app

    home = copy_crowned(crowned, tmp_path_factory.mktemp("rug-flip") / "redline_data")
    # Once its only champion decays the replica holds none that answers, so it is unhealthy
    # (serving.app, "Health") and Serve would replace it after three failed checks: a long
    # period between checks keeps it while the test reads why.
    app = build_app(f"sqlite:///{home / 'redline.db'}", home, token=TOKEN, reload_interval_s=0.5,
                    deployment={"ray_actor_options": {"num_cpus": 0},
                                "health_check_period_s": 600})  # fmt: skip
    serve.run(app, name="rugflip", route_prefix="/rugflip")
    served = Served(f"http://127.0.0.1:{serve_port}/rugflip", home, "rugflip")
    wait_for("the rugflip application", lambda: _healthy(served), 120)
    yield served
    serve.delete(served.name)


def _healthy(served: Served) -> bool:
    try:
        return httpx.get(f"{served.url}/healthz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_answers_carry_a_request_id_and_are_remembered(
    served_true: Served, crowned: Crowned
) -> None:
    token = next(crowned.held_out.itertuples(index=False))
    body = _ask(served_true, token)
    assert body["request_id"] and body["reason"] is None
    with _open(served_true.home) as store:
        stored = wait_for("the answer's row", lambda: store.rugpulls.answer(body["request_id"]), 10)
    assert (stored.run_id, stored.agent_id) == (classifier_scenario.RUN_ID,
                                                crowned.champion.agent_id)  # fmt: skip
    assert (stored.probability, stored.is_rugpull, stored.threshold) == (
        body["probability"], body["is_rugpull"], body["threshold"],
    )  # fmt: skip
    assert stored.model_version == body["model_version"]


def test_true_outcomes_of_held_out_tokens_make_the_champion_mature(
    served_true: Served, crowned: Crowned
) -> None:
    probabilities: list[float] = []
    outcomes: list[bool] = []
    replies = []
    for token in _tokens(crowned).itertuples(index=False):
        answer = _ask(served_true, token)
        truth = bool(token.is_rugpull)
        reply = _report(served_true, {"request_id": answer["request_id"], "is_rugpull": truth})
        assert reply.status_code == 200, reply.text
        replies.append(reply.json())
        probabilities.append(answer["probability"])
        outcomes.append(truth)
        if reply.json()["stage"] == Stage.MATURE:
            break
    first = replies[0]
    assert (first["stage"], first["duplicate"]) == ("PAPER", False)
    assert first["reason"].startswith("stays PAPER: 1 labelled answers (")
    assert first["reason"].endswith("< 50 required (min_live_labels)")
    last = replies[-1]
    assert last["stage"] == "MATURE", last
    live = auc_interval(np.array(outcomes, dtype=int), np.array(probabilities))
    labelled = len(outcomes)
    assert labelled >= 50
    assert last["reason"] == (
        f"MATURE: live AUC {live.auc:.3f} [{live.low:.3f}, {live.high:.3f}] at 95% over "
        f"{labelled:,} labelled answers ({live.n_pos:,} rug pulls, {live.n_neg:,} not), lower "
        f"bound {live.low:.3f} >= 0.850"
    )
    with _open(served_true.home) as store:
        champion = store.champions.champion(RUGPULL, ALL_REGIMES)
    assert champion is not None and champion.stage == Stage.MATURE
    assert champion.agent_id == crowned.champion.agent_id
    # A MATURE champion still answers (after the hot swap that its stage change causes).
    models = wait_for("the MATURE champion listed", lambda: _listed(served_true, "MATURE"), 30)
    assert models["rugpull"]["agent_id"] == crowned.champion.agent_id
    token = crowned.held_out.iloc[ASKED]
    assert _ask(served_true, token)["probability"] is not None


def _listed(served: Served, stage: str) -> dict[str, Any] | None:
    models = httpx.get(f"{served.url}/v1/models", headers=AUTH, timeout=30).json()
    entry = models["rugpull"]
    return models if entry is not None and entry["stage"] == stage else None


def test_inverted_outcomes_decay_the_champion_which_stops_answering_then_retires(
    served_flip: Served, crowned: Crowned
) -> None:
    tokens = list(_tokens(crowned).itertuples(index=False))
    answered = [(_ask(served_flip, token), not bool(token.is_rugpull)) for token in tokens]
    decayed = None
    for n, (answer, wrong) in enumerate(answered, start=1):
        reply = _report(served_flip, {"request_id": answer["request_id"], "is_rugpull": wrong})
        assert reply.status_code == 200, reply.text
        if reply.json()["stage"] == "DECAY":
            decayed = n, reply.json()
            break
    assert decayed is not None, "inverted outcomes never decayed the champion"
    n, reply = decayed
    assert n >= 50
    outcomes = np.array([wrong for _, wrong in answered[:n]], dtype=int)
    probabilities = np.array([answer["probability"] for answer, _ in answered[:n]])
    live = auc_interval(outcomes, probabilities)
    evidence = (
        f"live AUC {live.auc:.3f} [{live.low:.3f}, {live.high:.3f}] at 95% over {n:,} labelled "
        f"answers ({live.n_pos:,} rug pulls, {live.n_neg:,} not)"
    )
    assert reply["reason"] == f"DECAY: {evidence}, upper bound {live.high:.3f} < 0.850"

    # The replica swaps to an ensemble where the DECAY champion does not answer, and says why.
    def refused() -> dict[str, Any] | None:
        body = _ask(served_flip, tokens[0])
        return body if body["probability"] is None else None

    body = wait_for("the DECAY champion to stop answering", refused, 30)
    champion = f"{classifier_scenario.RUN_ID}/{crowned.champion.agent_id}"
    assert body["request_id"] is None and body["agent_id"] is None
    assert body["reason"] == (
        f"no validated rugpull_detector champion: {champion} does not answer: stage DECAY: only "
        f"PAPER and MATURE champions answer; its {evidence}, upper bound {live.high:.3f} < 0.850"
    )
    # Its only champion does not answer: the replica says it cannot serve (serving.app "Health").
    health = httpx.get(f"{served_flip.url}/healthz", timeout=30)
    assert health.status_code == 503 and health.json()["champions"] == 0
    # An outcome on an earlier answer, still failing: RETIRED.
    answer, wrong = answered[n]
    reply = _report(served_flip, {"request_id": answer["request_id"], "is_rugpull": wrong}).json()
    assert reply["stage"] == "RETIRED" and reply["reason"].startswith("RETIRED: still failing: ")
    with _open(served_flip.home) as store:
        row = store.champions.champion(RUGPULL, ALL_REGIMES)
    assert row is not None and row.stage == Stage.RETIRED


def test_feedback_is_idempotent_and_names_what_is_wrong(
    served_true: Served, crowned: Crowned
) -> None:
    token = crowned.held_out.iloc[ASKED + 1]
    answer = _ask(served_true, token)
    body = {"request_id": answer["request_id"], "is_rugpull": True, "note": "liquidity pulled"}
    first = _report(served_true, body)
    assert first.status_code == 200 and not first.json()["duplicate"]
    with RedlineClient(served_true.url, token=TOKEN, timeout=60) as client:  # a bot's retry
        again = client.rugpull_feedback(answer["request_id"], True, note="liquidity pulled")
    assert again.duplicate and again.stage is None  # a replay moves nothing
    conflict = _report(served_true, {**body, "is_rugpull": False})
    assert conflict.status_code == 409
    assert conflict.json()["detail"].startswith(
        f"request_id {answer['request_id']!r} already has another outcome (a rug pull"
    )
    # Schemathesis found a blank note refused by the record after validation: a 500.
    blank = _report(served_true, {"request_id": "not-an-answer", "is_rugpull": True, "note": ""})
    assert blank.status_code == 404, blank.text
    unknown = _report(served_true, {"request_id": "not-an-answer", "is_rugpull": True})
    assert unknown.status_code == 404
    assert unknown.json()["detail"].startswith(
        "request_id 'not-an-answer' is not a rug-pull answer"
    )
    bad = _report(served_true, {"request_id": answer["request_id"], "is_rugpull": "yes"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "is_rugpull"]
    bad = _report(served_true, {**body, "note": "a\x00b"})  # PostgreSQL's text cannot hold NUL
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "note"]
    bad = _report(served_true, {"request_id": "a b", "is_rugpull": True})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "request_id"]
    unauthorized = httpx.post(f"{served_true.url}/v1/rugpull/feedback", json=body, timeout=30)
    assert unauthorized.status_code == 401
