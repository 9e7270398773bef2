"""A rug-pull champion's lifecycle through the store's one champion writer, on SQLite and
PostgreSQL: crowned by the classifier rules, its answers stored, the tokens' outcomes reported
(``serving.feedback.apply_rugpull_feedback``) move it by its live AUC.

The numbers are real: the champion is a fixed rule on the real Uniswap V2 tokens of ../shared/data
(the sum of two features' ranks, as in test_classifier_crowning.py), its "probability" for a
token the rule's rank scaled to [0, 1]; the outcomes are the tokens' true ``is_rugpull`` (or
their inverse)."""

from __future__ import annotations

import numpy as np

from evolution.champions import ChampionPolicy, ClassifierPolicy
from evolution.crowning import consider_evolution_run
from serving.feedback import apply_rugpull_feedback
from store.db import Store
from store.records.champions import ALL_REGIMES, PromotionRecord, Stage
from store.records.rugpulls import RugpullAnswerRecord, RugpullOutcomeRecord
from tests.store.test_classifier_crowning import SPECIALTY, _run, _tokens

ASKED = 400  # tokens answered, every 35th of the file (both outcomes among them)


def _crowned(store: Store) -> tuple[list[RugpullAnswerRecord], list[bool]]:
    _run(store, "r-c", "both")
    (decision,) = consider_evolution_run(store, "r-c", ChampionPolicy(), "1h")
    assert decision.decision == "PROMOTED"
    tokens = _tokens()
    creator = tokens["lp_creator_holding_ratio"].rank().to_numpy()
    swaps_out = (-tokens["swap_out_per_week"]).rank().to_numpy()
    rank = (creator + swaps_out) / (2 * len(tokens))
    picked = np.arange(0, len(tokens), 35)[:ASKED]
    answers = [RugpullAnswerRecord(f"rp-{i}", "v1", "r-c", "r-c.rd-0", float(rank[i]),
                                   bool(rank[i] > 0.5), 0.5) for i in picked]  # fmt: skip
    store.rugpulls.append_answers(answers)
    truth = [bool(v) for v in tokens["is_rugpull"].to_numpy()[picked]]
    assert True in truth and False in truth
    return answers, truth


def _stage(store: Store) -> Stage:
    champion = store.champions.champion(SPECIALTY, ALL_REGIMES)
    assert champion is not None
    return champion.stage


def test_true_outcomes_make_the_champion_mature(store: Store) -> None:
    answers, truth = _crowned(store)
    stages = []
    for answer, outcome in zip(answers, truth, strict=True):
        found = apply_rugpull_feedback(store, RugpullOutcomeRecord(answer.request_id, outcome))
        stages.append(found.stage)
        if found.stage == Stage.MATURE:
            assert found.reason is not None and found.reason.startswith("MATURE: live AUC ")
            break
    assert stages[-1] == Stage.MATURE and set(stages[:49]) == {Stage.PAPER}
    assert _stage(store) == Stage.MATURE


def test_inverted_outcomes_decay_then_retire_it(store: Store) -> None:
    answers, truth = _crowned(store)
    policy = ChampionPolicy(classifier=ClassifierPolicy(min_live_labels=60))
    moved = []
    for answer, outcome in zip(answers, truth, strict=True):
        found = apply_rugpull_feedback(
            store, RugpullOutcomeRecord(answer.request_id, not outcome), policy=policy
        )
        moved.append(found.stage)
        if found.stage != Stage.PAPER:
            break
    assert len(moved) >= 60 and moved[-1] == Stage.DECAY and _stage(store) == Stage.DECAY
    following = answers[len(moved)]
    found = apply_rugpull_feedback(
        store, RugpullOutcomeRecord(following.request_id, truth[len(moved)]), policy=policy
    )  # one true outcome does not rescue it
    assert found.stage == Stage.RETIRED and _stage(store) == Stage.RETIRED
    replay = apply_rugpull_feedback(
        store, RugpullOutcomeRecord(following.request_id, truth[len(moved)]), policy=policy
    )
    assert replay.duplicate and replay.stage is None
    # A retired champion's answers still take outcomes; its stage no longer moves.
    later = answers[len(moved) + 1]
    found = apply_rugpull_feedback(store, RugpullOutcomeRecord(later.request_id, True))
    assert found.stage is None and _stage(store) == Stage.RETIRED


def test_a_replaced_champions_answers_no_longer_move_a_stage(store: Store) -> None:
    answers, truth = _crowned(store)
    _run(store, "r-x", "both")  # another run's model, crowned by hand over it
    (challenger,) = [r for r in store.champions.regime_best("r-x") if r.specialty == SPECIALTY]
    store.champions.promote(challenger, PromotionRecord(
        specialty=SPECIALTY, regime=ALL_REGIMES, decision="PROMOTED", challenger=challenger.model,
        incumbent="r-c/r-c.rd-0", reason="by hand", before={}, after={}, dsr=None, n_trials=1,
        margin=0.01,
    ))  # fmt: skip
    for answer, outcome in list(zip(answers, truth, strict=True))[:60]:
        found = apply_rugpull_feedback(store, RugpullOutcomeRecord(answer.request_id, not outcome))
        assert not found.duplicate and found.stage is None and found.reason is None
    assert _stage(store) == Stage.PAPER  # the new champion's, untouched
