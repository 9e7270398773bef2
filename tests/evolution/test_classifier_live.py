"""The classifier champions' live rule (``evolution.champions.classifier_live_step``): a rug-pull
champion's live AUC over its labelled answers, with DeLong's interval, moves its stage. Pure,
exact reasons, the boundaries."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from agents.scoring import auc_interval
from cluster.config import ConfigError, load_config
from evolution.champions import (
    ChampionPolicy,
    ClassifierLiveRecord,
    ClassifierPolicy,
    classifier_live_record,
    classifier_live_step,
    next_stage,
)
from store.records.champions import Stage

POLICY = ClassifierPolicy()  # floor 0.85 at 95%, 50 labelled answers
Z = NormalDist().inv_cdf(0.975)


def _record(auc: float, se: float, n_pos: int = 270, n_neg: int = 30) -> ClassifierLiveRecord:
    return ClassifierLiveRecord(auc, se, n_pos, n_neg)


def test_the_default_is_50_labelled_answers_and_the_config_has_it() -> None:
    assert POLICY.min_live_labels == 50
    assert load_config().champions.to_policy().classifier == POLICY
    with pytest.raises(ConfigError, match=r"champions\.classifier\.min_live_labels"):
        load_config().champions.to_policy({"classifier": {"min_live_labels": 3}})
    with pytest.raises(ValueError, match=r"min_live_labels must be an integer >= 4; got 2"):
        ClassifierPolicy(min_live_labels=2)


def test_paper_to_mature_when_the_lower_bound_reaches_the_floor_saying_the_numbers() -> None:
    step = classifier_live_step(Stage.PAPER, _record(0.97, 0.01), POLICY)
    assert step.stage == Stage.MATURE
    assert step.reason == (
        "MATURE: live AUC 0.970 [0.950, 0.990] at 95% over 300 labelled answers (270 rug pulls, "
        "30 not), lower bound 0.950 >= 0.850"
    )


def test_the_lower_bound_exactly_at_the_floor_is_mature() -> None:
    step = classifier_live_step(Stage.PAPER, _record(0.9, 0.05 / Z), POLICY)
    assert step.stage == Stage.MATURE and "lower bound 0.850 >= 0.850" in step.reason


def test_an_interval_straddling_the_floor_stays() -> None:
    record = _record(0.86, 0.03)
    step = classifier_live_step(Stage.PAPER, record, POLICY)
    assert step.stage == Stage.PAPER
    assert step.reason == (
        "stays PAPER: live AUC 0.860 [0.801, 0.919] at 95% over 300 labelled answers (270 rug "
        "pulls, 30 not), the interval straddles 0.850"
    )
    assert classifier_live_step(Stage.MATURE, record, POLICY).stage == Stage.MATURE


def test_paper_or_mature_to_decay_when_the_upper_bound_falls_below_the_floor() -> None:
    record = _record(0.42, 0.05)
    reason = (
        "DECAY: live AUC 0.420 [0.322, 0.518] at 95% over 300 labelled answers (270 rug pulls, "
        "30 not), upper bound 0.518 < 0.850"
    )
    for stage in (Stage.PAPER, Stage.MATURE):
        step = classifier_live_step(stage, record, POLICY)
        assert (step.stage, step.reason) == (Stage.DECAY, reason)


def test_the_upper_bound_exactly_at_the_floor_is_not_decay() -> None:
    step = classifier_live_step(Stage.MATURE, _record(0.8, 0.05 / Z), POLICY)
    assert step.stage == Stage.MATURE and "straddles" in step.reason


def test_decay_still_failing_is_retired_and_a_recovered_one_stays_decay() -> None:
    step = classifier_live_step(Stage.DECAY, _record(0.42, 0.05), POLICY)
    assert step.stage == Stage.RETIRED
    assert step.reason == (
        "RETIRED: still failing: live AUC 0.420 [0.322, 0.518] at 95% over 300 labelled answers "
        "(270 rug pulls, 30 not), upper bound 0.518 < 0.850"
    )
    step = classifier_live_step(Stage.DECAY, _record(0.97, 0.01), POLICY)
    assert step.stage == Stage.DECAY
    assert step.reason.endswith(
        "upper bound 0.990 >= 0.850 (a decayed champion is never promoted back)"
    )


def test_fewer_labelled_answers_than_the_minimum_is_not_evidence() -> None:
    hopeless = _record(0.1, 0.01, n_pos=44, n_neg=5)  # 49 labels
    step = classifier_live_step(Stage.PAPER, hopeless, POLICY)
    assert step.stage == Stage.PAPER
    assert step.reason == (
        "stays PAPER: 49 labelled answers (44 rug pulls, 5 not) < 50 required (min_live_labels)"
    )
    judged = classifier_live_step(Stage.PAPER, _record(0.1, 0.01, n_pos=45, n_neg=5), POLICY)
    assert judged.stage == Stage.DECAY  # exactly 50: judged


def test_one_outcome_only_gives_no_interval_and_the_stage_stays() -> None:
    record = classifier_live_record([True] * 60, np.linspace(0.5, 1.0, 60))
    assert (record.n_pos, record.n_neg) == (60, 0) and math.isnan(record.auc)
    step = classifier_live_step(Stage.MATURE, record, POLICY)
    assert step.stage == Stage.MATURE
    assert step.reason == (
        "stays MATURE: no live AUC interval over 60 labelled answers (60 rug pulls, 0 not): it "
        "needs at least 2 answers of each outcome"
    )


def test_next_stage_takes_the_classifier_record_as_an_event() -> None:
    policy = ChampionPolicy(classifier=ClassifierPolicy(min_live_labels=400))
    record = _record(0.42, 0.05)  # 300 labelled answers
    assert next_stage(Stage.PAPER, record) == Stage.DECAY
    assert next_stage(Stage.PAPER, record, policy=policy) == Stage.PAPER
    with pytest.raises(ValueError, match=r"a live record needs a champion that answers .*got "
                                         r"stage 'RETIRED'"):  # fmt: skip
        next_stage(Stage.RETIRED, record)
    with pytest.raises(ValueError, match=r"got stage 'VALIDATION'"):
        classifier_live_step(Stage.VALIDATION, record, POLICY)


def test_the_record_is_delongs_interval_of_real_outcomes(shared_data: Path) -> None:
    """Real tokens' outcomes against a real signal of them (a rule on one feature): the record is
    ``auc_interval``'s."""
    tokens = pd.read_csv(shared_data / "rugpull_uniswapv2_tokens.csv.gz").iloc[::25]
    outcomes = tokens["is_rugpull"].to_numpy().astype(bool)
    signal = tokens.select_dtypes("number").drop(columns="is_rugpull").iloc[:, 0].to_numpy()
    record = classifier_live_record(outcomes, signal)
    expected = auc_interval(outcomes.astype(int), signal)
    assert (record.auc, record.auc_se, record.n_pos, record.n_neg) == (
        expected.auc, expected.se, expected.n_pos, expected.n_neg,
    )  # fmt: skip
    assert record.labels == len(tokens)


def test_a_bad_record_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"ClassifierLiveRecord.n_neg must be a non-negative "
                                         r"integer; got -1"):  # fmt: skip
        ClassifierLiveRecord(0.9, 0.01, 10, -1)
    with pytest.raises(
        ValueError, match=r"ClassifierLiveRecord.auc must be between 0 and 1; got 1.5"
    ):
        ClassifierLiveRecord(1.5, 0.01, 10, 10)
