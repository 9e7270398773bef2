"""The classifier champion rules (``evolution.champions.decide_classifier``): pure, exact reasons."""

from __future__ import annotations

import math

import pytest

from cluster.config import ConfigError, load_config
from evolution.champions import (
    ChampionPolicy,
    ClassifierCandidate,
    ClassifierPolicy,
    decide_classifier,
)
from store.records.champions import Stage

POLICY = ClassifierPolicy()  # the defaults: floor 0.85, margin 0.01, 95%
STRONG = ClassifierCandidate("r2/rd-1", auc=0.98, auc_se=0.002, n_pos=13_166, n_neg=1_462)
EVIDENCE = "AUC 0.980 [0.976, 0.984] at 95% over 14,628 rows (13,166 positive, 1,462 negative)"


def test_the_defaults_are_the_config_defaults() -> None:
    assert (POLICY.auc_floor, POLICY.margin, POLICY.level) == (0.85, 0.01, 0.95)
    assert ChampionPolicy().classifier == POLICY
    assert load_config().champions.to_policy().classifier == POLICY


def test_promoted_with_no_champion_says_the_numbers() -> None:
    decision = decide_classifier(STRONG, None, POLICY)
    assert decision.promote and decision.stage == Stage.PAPER
    assert decision.reason == f"promoted: {EVIDENCE}, lower bound 0.976 >= 0.850, no champion yet"
    assert (decision.dsr, decision.n_trials) == (None, 1)


def test_promoted_over_a_champion_beaten_by_the_margin() -> None:
    incumbent = ClassifierCandidate("r1/rd-0", auc=0.95, auc_se=0.003, n_pos=100, n_neg=10)
    decision = decide_classifier(STRONG, incumbent, POLICY)
    assert decision.promote
    assert decision.reason == (
        f"promoted: {EVIDENCE}, lower bound 0.976 >= 0.850, beats the champion's 0.950 by "
        "0.030 >= 0.010"
    )


def test_a_lower_bound_under_the_floor_is_refused() -> None:
    weak = ClassifierCandidate("r2/rd-2", auc=0.90, auc_se=0.04, n_pos=900, n_neg=100)
    decision = decide_classifier(weak, None, POLICY)
    assert not decision.promote and decision.stage == Stage.DISCOVERY
    assert decision.reason == (
        "refused: AUC lower bound 0.822 < 0.850 (AUC 0.900 [0.822, 0.978] at 95% over 1,000 rows "
        "(900 positive, 100 negative))"
    )


def test_not_beating_the_champion_by_the_margin_is_refused_but_validated() -> None:
    incumbent = ClassifierCandidate("r1/rd-0", auc=0.975, auc_se=0.003, n_pos=100, n_neg=10)
    decision = decide_classifier(STRONG, incumbent, POLICY)
    assert not decision.promote and decision.stage == Stage.VALIDATION
    assert decision.reason == (
        "refused: AUC 0.980 does not beat the champion's 0.975 by the margin 0.010 (needs 0.985) "
        f"({EVIDENCE})"
    )


def test_both_failures_are_listed_and_the_margin_is_met_exactly() -> None:
    weak = ClassifierCandidate("r2/rd-2", auc=0.90, auc_se=0.04, n_pos=900, n_neg=100)
    incumbent = ClassifierCandidate("r1/rd-0", auc=0.95, auc_se=0.01, n_pos=900, n_neg=100)
    reason = decide_classifier(weak, incumbent, POLICY).reason
    assert reason.startswith(
        "refused: AUC lower bound 0.822 < 0.850; AUC 0.900 does not beat the champion's 0.950"
    )
    # 0.96 - 0.95 is 0.00999... in floats: the margin 0.01 is met.
    level = ClassifierCandidate("r2/rd-3", auc=0.96, auc_se=0.001, n_pos=900, n_neg=100)
    assert decide_classifier(level, incumbent, POLICY).promote


def test_a_stricter_level_widens_the_interval() -> None:
    borderline = ClassifierCandidate("r2/rd-4", auc=0.90, auc_se=0.02, n_pos=900, n_neg=100)
    assert decide_classifier(borderline, None, POLICY).promote  # 0.90 - 1.96 * 0.02 = 0.861
    strict = ClassifierPolicy(level=0.99)  # 0.90 - 2.576 * 0.02 = 0.848
    assert decide_classifier(borderline, None, strict).reason.startswith(
        "refused: AUC lower bound 0.848 < 0.850 (AUC 0.900 [0.848, 0.952] at 99% over"
    )


def test_no_interval_is_a_refusal_naming_the_counts() -> None:
    lonely = ClassifierCandidate.from_metrics("r2/rd-5", {"auc": 1.0, "n_pos": 40.0, "n_neg": 1.0})
    assert math.isnan(lonely.auc_se)
    decision = decide_classifier(lonely, None, POLICY)
    assert not decision.promote and decision.reason == (
        "refused: no AUC interval (it needs a finite AUC and standard error over at least 2 rows "
        "of each class; got AUC 1.000, 40 positive and 1 negative rows)"
    )


def test_bad_policies_and_candidates_are_named() -> None:
    with pytest.raises(
        ValueError, match=r"ClassifierPolicy\.auc_floor must be between 0 and 1; got 1\.2"
    ):
        ClassifierPolicy(auc_floor=1.2)
    with pytest.raises(
        ValueError, match=r"ClassifierPolicy\.margin must be a number >= 0 and < 1; got -0\.1"
    ):
        ClassifierPolicy(margin=-0.1)
    with pytest.raises(
        ValueError, match=r"ClassifierPolicy\.level must be strictly between 0 and 1; got 1"
    ):
        ClassifierPolicy(level=1)
    with pytest.raises(
        ValueError,
        match=r"ClassifierCandidate\.n_neg of 'x' must be a non-negative integer; got -1",
    ):
        ClassifierCandidate("x", auc=0.9, auc_se=0.01, n_pos=3, n_neg=-1)
    with pytest.raises(ValueError, match="is the incumbent champion: nothing to decide"):
        decide_classifier(STRONG, STRONG, POLICY)


def test_the_config_section_names_its_dotted_keys(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "c.yaml"
    path.write_text("champions:\n  classifier:\n    auc_floor: 1.5\n")
    with pytest.raises(
        ConfigError,
        match=r"champions\.classifier\.auc_floor: .*less than or equal to 1 \(got 1\.5\)",
    ):
        load_config(path)
    path.write_text("champions:\n  classifier:\n    floor: 0.9\n")
    with pytest.raises(
        ConfigError, match=r"champions\.classifier\.floor: Extra inputs are not permitted"
    ):
        load_config(path)
    path.write_text("champions:\n  classifier:\n    auc_floor: 0.9\n")
    policy = load_config(path).champions.to_policy()
    assert policy.classifier == ClassifierPolicy(auc_floor=0.9) and policy.margin == 0.25
    override = load_config().champions.to_policy({"classifier": {"margin": 0.02}})
    assert override.classifier == ClassifierPolicy(margin=0.02)
