"""Inference grids on a real trained model: hand-checked positions, no look-ahead, and the 2-D
backtest equal to one ``market.backtest.backtest`` per config over the out-of-sample rows."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from agents.banks import technical_dataset
from agents.dataset import Dataset
from agents.genome import Genome
from agents.inference import evaluate_inference_grid, inference_positions, oos_breaks
from agents.scoring import positions_from_scores
from agents.sources import SAMPLE_DIR
from agents.training import ChildReport, train_child
from market.backtest import backtest
from market.regimes import RegimeRules
from market.splits import WalkForward

CONFIGS = [
    {"threshold": t, "horizon": h, "size": s}
    for t in (0.0, 0.2, 0.5)
    for h in (1, 3)
    for s in (1.0, 0.5)
]


def test_positions_by_hand() -> None:
    scores = np.array([0.1, 0.6, -0.2, 0.05, -0.7, 0.0, 0.3, 0.4])
    configs = [
        {"threshold": 0.25, "horizon": 1, "size": 1.0},
        {"threshold": 0.25, "horizon": 3, "size": 0.5},
        {"threshold": 0.0, "horizon": 2, "size": 1.0},
    ]
    out = inference_positions(scores, configs)
    # Signals above 0.25 at rows 1 (+), 4 (-), 6 (+), 7 (+).
    assert out[0].tolist() == [0, 1, 0, 0, -1, 0, 1, 1]
    # Held 3 rows from each signal, a new signal replacing the old one, scaled by 0.5.
    assert out[1].tolist() == [0, 0.5, 0.5, 0.5, -0.5, -0.5, 0.5, 0.5]
    # Threshold 0: every non-zero score signals; row 5 (score 0) keeps row 4's short one more row.
    assert out[2].tolist() == [1, 1, -1, 1, -1, -1, 1, 1]


def test_breaks_close_the_position_and_cut_the_hold() -> None:
    scores = np.array([0.9, 0.0, 0.0, 0.0, 0.0, -0.9, 0.0])
    breaks = np.array([False, True, False, False, False, False, False])
    out = inference_positions(
        scores, [{"threshold": 0.5, "horizon": 4, "size": 1.0}], breaks=breaks
    )
    # Held at row 0, closed at the break (row 1), not carried into row 2 after it.
    assert out[0].tolist() == [1, 0, 0, 0, 0, -1, -1]
    assert oos_breaks(np.array([10, 11, 12, 20, 21])).tolist() == [False, False, True, False, False]


def test_horizon_one_is_the_training_rule() -> None:
    rng = np.random.default_rng(3)
    scores = np.tanh(rng.normal(size=500))
    out = inference_positions(scores, [{"threshold": 0.3, "horizon": 1, "size": 1.0}])
    np.testing.assert_array_equal(out[0], positions_from_scores(scores, 0.3))


def test_no_look_ahead() -> None:
    rng = np.random.default_rng(5)
    scores = np.tanh(rng.normal(size=400))
    breaks = rng.random(400) < 0.02
    full = inference_positions(scores, CONFIGS, breaks=breaks)
    for k in (1, 17, 123, 399):
        prefix = inference_positions(scores[:k], CONFIGS, breaks=breaks[:k])
        np.testing.assert_array_equal(prefix, full[:, :k])


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"threshold": -0.1, "horizon": 1, "size": 1.0}, "threshold must be >= 0"),
        ({"threshold": 0.1, "horizon": 0, "size": 1.0}, "horizon must be an integer >= 1"),
        ({"threshold": 0.1, "horizon": 1, "size": 1.5}, r"size must be in \(0, 1\]"),
        ({"threshold": 0.1, "horizon": 1}, "must have threshold, horizon and size"),
    ],
)
def test_bad_configs_are_named(config: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        inference_positions(np.zeros(3), [config])


@lru_cache(maxsize=1)
def trained() -> tuple[ChildReport, Dataset]:
    """A real technical_analyst trained on the shipped sample's BTC/USDT 1h (2023 on)."""
    candles = pd.read_csv(SAMPLE_DIR / "binance_BTC-USDT_1h.csv.gz").rename(
        columns={"timestamp": "ts"}
    )
    candles = candles[candles["ts"] >= 1_672_531_200_000].reset_index(drop=True)
    dataset = technical_dataset(
        candles, name="binance_BTC-USDT_1h", timeframe="1h", rules=RegimeRules()
    )
    genome = Genome(
        "technical_analyst",
        (("lookback", 4), ("feature_set", "all"), ("horizon", 4), ("hidden", 16), ("depth", 1),
         ("lr", 3e-3), ("epochs", 2), ("batch_size", 256), ("threshold", 0.2)),
    )  # fmt: skip
    report, _ = train_child(dataset, genome, seed=3, agent_id="ta-inf", generation=0)
    assert report.ok, report.reason
    return report, dataset


def test_grid_equals_a_backtest_per_config() -> None:
    report, dataset = trained()
    results = evaluate_inference_grid(report, dataset, CONFIGS, fee_bps=10.0)
    assert len(results) == len(CONFIGS)
    rows = report.oos_rows
    frame = pd.DataFrame({"ts": dataset.ts[rows], "close": np.asarray(dataset.close)[rows]})
    regimes = np.asarray(dataset.regimes)[rows].astype(str)
    positions = inference_positions(report.oos_score, CONFIGS, breaks=oos_breaks(rows))
    for (inference, metrics, per_regime), config, p in zip(
        results, CONFIGS, positions, strict=True
    ):
        assert inference == config
        one = backtest(frame, p, fee_bps=10.0, timeframe="1h")
        for name, value in one.metrics().items():
            assert metrics[name] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), name
        assert metrics["bars"] == len(rows)
        by_regime = one.metrics_by_regime(regimes)
        assert set(per_regime) == {name for name, m in by_regime.items() if m["bars"] > 0}
        for name, values in per_regime.items():
            assert values["bars"] == (regimes == name).sum()
            assert values["sharpe"] == pytest.approx(by_regime[name]["sharpe"], nan_ok=True)
            if values["bars"] > 2 and "skew" in values:
                assert values["kurtosis"] >= 1.0 + values["skew"] ** 2 - 1e-9
        if np.any(p != 0):
            assert {"skew", "kurtosis"} <= set(metrics)
    # threshold 0.2, horizon 1, size 1 is the training scorer's rule with the genome's threshold
    trained_rule = results[CONFIGS.index({"threshold": 0.2, "horizon": 1, "size": 1.0})][1]
    assert trained_rule["sharpe"] == pytest.approx(report.metrics["sharpe"], rel=1e-9)
    assert trained_rule["direction_hit_rate"] == pytest.approx(
        report.metrics["direction_hit_rate"], nan_ok=True
    )


def test_only_out_of_sample_rows_are_traded() -> None:
    report, dataset = trained()
    first_test = min(fold.test.start for fold in report.folds)
    assert int(report.oos_rows.min()) >= first_test
    (_, metrics, _), *_ = evaluate_inference_grid(report, dataset, CONFIGS[:1])
    assert metrics["bars"] == report.n_test_rows < dataset.n_rows


def test_refuses_a_report_of_another_dataset() -> None:
    report, dataset = trained()
    other = Dataset(
        dataset.specialty, "other", dataset.timeframe, dataset.features[:-1],
        dataset.feature_names, dataset.ts[:-1], np.asarray(dataset.close)[:-1],
    )  # fmt: skip
    with pytest.raises(ValueError, match="not on other"):
        evaluate_inference_grid(report, other, CONFIGS)
    assert math.isfinite(report.objectives[0])


def test_walk_forward_gaps_close_positions() -> None:
    """A split whose test segments are not adjacent: positions are flat at the gap."""
    _, dataset = trained()
    genome = Genome("technical_analyst", (("lookback", 2), ("feature_set", "fast"),
                                          ("horizon", 1), ("epochs", 2)))  # fmt: skip
    split = WalkForward(train=3000, test=300, step=600, mode="rolling", purge=1, embargo=2)
    report, _ = train_child(dataset, genome, seed=1, agent_id="ta-gap", generation=0, split=split)
    assert report.ok, report.reason
    breaks = oos_breaks(report.oos_rows)
    assert breaks.any()
    p = inference_positions(report.oos_score, [{"threshold": 0.0, "horizon": 5, "size": 1.0}],
                            breaks=breaks)  # fmt: skip
    assert (p[0, breaks] == 0).all()
