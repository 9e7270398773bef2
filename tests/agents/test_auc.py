"""DeLong's AUC interval (agents.scoring.auc_interval): a hand-checked example, the O(mn)
definition on real rug-pull tokens, and the bootstrap on the same tokens."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from agents.banks import rugpull_dataset
from agents.scoring import auc_interval, auc_metrics, roc_auc
from agents.sources import SAMPLE_DIR


def test_a_hand_checked_example() -> None:
    # Positives 0.9, 0.8, 0.4; negatives 0.7, 0.3. Structural components by hand:
    # V10 = (1, 1, 1/2) (the share of negatives each positive beats), V01 = (2/3, 1);
    # AUC = 5/6; var(V10) = 1/12, var(V01) = 1/18; se^2 = (1/12)/3 + (1/18)/2 = 1/18.
    found = auc_interval(np.array([1, 1, 1, 0, 0]), np.array([0.9, 0.8, 0.4, 0.7, 0.3]))
    assert found.auc == pytest.approx(5 / 6)
    assert found.se == pytest.approx(math.sqrt(1 / 18))
    z = 1.959963984540054
    assert found.low == pytest.approx(5 / 6 - z * math.sqrt(1 / 18))
    assert found.high == 1.0  # 5/6 + 0.46 clipped
    assert (found.n_pos, found.n_neg, found.level) == (3, 2, 0.95)


def test_ties_count_half() -> None:
    # Positives 0.5, 0.5; negatives 0.5, 0.1: V10 = (3/4, 3/4), V01 = (1/2, 1); AUC 3/4;
    # var(V10) = 0, var(V01) = 1/8; se^2 = 0/2 + (1/8)/2 = 1/16.
    found = auc_interval(np.array([1, 1, 0, 0]), np.array([0.5, 0.5, 0.5, 0.1]))
    assert found.auc == pytest.approx(0.75)
    assert found.se == pytest.approx(0.25)


def test_one_class_or_a_single_row_of_it_has_no_interval() -> None:
    none = auc_interval(np.array([1, 1]), np.array([0.2, 0.3]))
    assert math.isnan(none.auc) and math.isnan(none.low) and (none.n_pos, none.n_neg) == (2, 0)
    single = auc_interval(np.array([1, 0, 0]), np.array([0.9, 0.1, 0.2]))
    assert single.auc == 1.0 and math.isnan(single.se) and math.isnan(single.low)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(
        ValueError, match=r"level must be a number strictly between 0 and 1; got 1\.5"
    ):
        auc_interval(np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.1, 0.2]), level=1.5)
    with pytest.raises(ValueError, match="score must be finite; 1 values are not"):
        auc_interval(np.array([1, 0]), np.array([0.9, math.nan]))


@pytest.fixture(scope="module")
def tokens_scored() -> tuple[np.ndarray, np.ndarray]:
    """Real tokens and a real, imperfect score: one log-scaled feature of the data set."""
    ds = rugpull_dataset(pd.read_csv(SAMPLE_DIR / "rugpull_uniswapv2_tokens.csv.gz"))
    assert ds.target is not None
    column = ds.feature_names.index(ds.feature_names[0])
    return np.asarray(ds.target), np.asarray(ds.features[:, column], dtype=np.float64)


def test_equals_the_definition_on_real_tokens(tokens_scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, score = tokens_scored
    rng = np.random.default_rng(7)
    rows = rng.choice(len(y), size=1500, replace=False)  # the O(mn) definition on a subset
    y, score = y[rows], score[rows]
    x, z = score[y == 1], score[y == 0]
    psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    se = math.sqrt(v10.var(ddof=1) / len(x) + v01.var(ddof=1) / len(z))
    found = auc_interval(y, score)
    assert found.auc == pytest.approx(psi.mean(), abs=1e-12)
    assert found.auc == pytest.approx(roc_auc(y, score), abs=1e-12)
    assert found.se == pytest.approx(se, rel=1e-9)


def test_agrees_with_the_bootstrap_on_real_tokens(
    tokens_scored: tuple[np.ndarray, np.ndarray],
) -> None:
    y, score = tokens_scored
    found = auc_interval(y, score)
    rng = np.random.default_rng(11)
    boot = []
    for _ in range(300):
        rows = rng.integers(0, len(y), len(y))
        boot.append(roc_auc(y[rows], score[rows]))
    assert 0.5 < found.auc < 0.99  # a real, imperfect score
    assert found.se == pytest.approx(float(np.std(boot, ddof=1)), rel=0.15)
    low, high = np.quantile(boot, [0.025, 0.975])
    assert found.low == pytest.approx(low, abs=0.01) and found.high == pytest.approx(high, abs=0.01)


def test_metrics_and_another_level() -> None:
    y, s = np.array([1, 1, 1, 0, 0]), np.array([0.9, 0.8, 0.4, 0.7, 0.3])
    metrics = auc_metrics(y, s)
    assert set(metrics) == {"auc_se", "auc_low", "auc_high", "n_pos", "n_neg"}
    assert metrics["n_pos"] == 3.0 and metrics["n_neg"] == 2.0
    found = auc_interval(y, s)
    low90, _ = found.at(0.90)
    assert found.low < low90 < found.auc
