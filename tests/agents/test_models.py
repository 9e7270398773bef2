"""Child models built from genomes, and weights-only checkpoints that reproduce OOS scores."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.genome import ChoiceGene, Genome
from agents.models import (
    CHECKPOINT_FORMAT,
    MODEL_FAMILIES,
    TCN_KERNEL,
    ChildNet,
    FrozenNet,
    GbmModel,
    TemporalNet,
    build_model,
    load_checkpoint,
    load_model,
    save_checkpoint,
    scorer,
)
from agents.training import checkpoint_meta, plan_folds, train_child, window_inputs
from tests.agents.test_training import btc_dataset, genome


def test_build_model_follows_the_genome() -> None:
    g = Genome("technical_analyst", (("hidden", 12), ("depth", 3), ("dropout", 0.2)))
    model = build_model(g, 40, "direction")
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(40, 12), (12, 12), (12, 12),
                                                                  (12, 1)]  # fmt: skip
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.modules()) == 3
    model.eval()
    x = torch.randn(64, 40, generator=torch.Generator().manual_seed(0)) * 100
    score = model(x)
    # tanh of a large input rounds to exactly 1.0 in float32: bounded, not strictly inside
    assert score.shape == (64,) and bool((score.abs() <= 1).all())
    logits = build_model(g, 40, "classify").eval()(x)
    assert logits.shape == (64,)
    linear = build_model(Genome("x", (("depth", 0),)), 5, "rank")  # depth 0: a linear model
    assert [type(m) for m in linear.body] == [torch.nn.Linear]


def test_build_model_names_bad_genes() -> None:
    with pytest.raises(ValueError, match="task must be one of direction, rank, classify; got 'up'"):
        build_model(Genome("x", ()), 4, "up")
    with pytest.raises(ValueError, match="hidden must be an integer >= 1; got 0"):
        build_model(Genome("x", (("hidden", 0),)), 4, "direction")
    with pytest.raises(ValueError, match=r"gene depth must be an integer; got 1\.5"):
        build_model(Genome("x", (("depth", 1.5),)), 4, "direction")
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\); got 1.0"):
        build_model(Genome("x", (("dropout", 1.0),)), 4, "direction")


def test_standardization_lives_in_the_model() -> None:
    model = ChildNet(3, hidden=4, depth=1, dropout=0.0, task="direction")
    model.set_standardization(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 0.0, 1.0]))
    assert model.in_std.tolist() == [2.0, 1.0, 1.0]  # a constant input is not divided by 0
    with pytest.raises(ValueError, match=r"standardization must have shape \(3,\); got \(2,\)"):
        model.set_standardization(torch.zeros(2), torch.ones(2))


def test_checkpoint_round_trips_and_reproduces_the_last_folds_scores(tmp_path: Path) -> None:
    ds, g = btc_dataset(), genome()
    report, state = train_child(ds, g, seed=21, agent_id="ta-0042", generation=3)
    assert report.ok and state is not None
    path = save_checkpoint(tmp_path / "checkpoints" / "ta-0042_gen3.pt", state,
                           checkpoint_meta(report))  # fmt: skip
    # Weights only: plain torch.load with weights_only=True reads it.
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == CHECKPOINT_FORMAT
    assert json.loads(raw["meta_json"])["agent_id"] == "ta-0042"
    loaded, meta = load_checkpoint(path)
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[name], state[name]) for name in state)
    assert meta["generation"] == 3 and meta["seed"] == 21 and meta["task"] == "direction"
    assert Genome.from_json(meta["genome"]).as_dict() == g.as_dict()
    assert meta["dataset_digest"] == ds.digest()
    model, _ = load_model(path)
    last = plan_folds(ds, g)[-1]
    with torch.no_grad():
        scores = model(torch.from_numpy(window_inputs(ds, g, last.test_rows))).double().numpy()
    assert np.array_equal(scores, report.oos_score[-len(last.test_rows) :])
    assert not list(tmp_path.glob("checkpoints/.*.tmp"))
    # the live service's numpy forward: the same scores to float32 rounding
    frozen = FrozenNet(model)
    fast = frozen(window_inputs(ds, g, last.test_rows))
    assert fast.dtype == np.float32 and fast.shape == scores.shape
    np.testing.assert_allclose(fast, scores, rtol=1e-5, atol=1e-6)
    assert np.sign(fast).tolist() == np.sign(scores).tolist()


@pytest.mark.parametrize("task", ["direction", "classify"])
def test_frozen_net_follows_relu_depth_and_task(task: str) -> None:
    torch.manual_seed(7)
    model = ChildNet(6, hidden=5, depth=3, dropout=0.3, task=task)
    model.set_standardization(torch.linspace(-1, 1, 6), torch.linspace(0.5, 2, 6))
    model.out_scale.fill_(1.7)
    model.eval()
    x = torch.randn(40, 6) * 3
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(FrozenNet(model)(x.numpy()), expected, rtol=1e-5, atol=1e-6)


def test_checkpoint_errors_name_the_problem(tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match=r"not a redline\.child/1 checkpoint; format is None"):
        load_checkpoint(other)
    with pytest.raises(ValueError, match="checkpoint meta must be JSON-serializable"):
        save_checkpoint(tmp_path / "x.pt", {"w": torch.zeros(1)}, {"when": object()})
    with pytest.raises(ValueError, match="state_dict values must be tensors; 'w' is not"):
        save_checkpoint(tmp_path / "x.pt", {"w": [1.0]}, {})  # type: ignore[dict-item]
    save_checkpoint(tmp_path / "bare.pt", {"w": torch.zeros(1)}, {"task": "direction"})
    with pytest.raises(ValueError, match="checkpoint meta lacks 'genome'"):
        load_model(tmp_path / "bare.pt")


# -- families: tcn and gbm beside the mlp -----------------------------------------------------

FAMILY_GENES = {
    "mlp": {},
    "tcn": {"family": "tcn"},
    "gbm": {"family": "gbm", "num_leaves": 7, "n_estimators": 30, "learning_rate": 0.1,
            "min_child_samples": 40, "feature_fraction": 0.5},
}  # fmt: skip


def test_the_families_agree_with_the_gene() -> None:
    from agents.specialties import get_specialty

    family = {g.name: g for g in get_specialty("technical_analyst").space.genes}["family"]
    assert isinstance(family, ChoiceGene) and family.choices == MODEL_FAMILIES


def test_the_tcn_is_causal_within_its_window() -> None:
    """The newest step's output reads only steps at or before it; an older step changing moves it,
    and the convolution is the model's (not a flattening MLP)."""
    torch.manual_seed(3)
    g = Genome("x", (("family", "tcn"), ("lookback", 6), ("hidden", 8), ("depth", 3)))
    model = build_model(g, 6 * 4, "direction").eval()
    assert isinstance(model, TemporalNet) and (model.lookback, model.n_features) == (6, 4)
    assert sum(isinstance(m, torch.nn.Conv1d) for m in model.modules()) == 3
    x = torch.randn(5, 24)
    oldest = x.clone()
    oldest[:, :4] += 1.0  # the oldest row of each window
    with torch.no_grad():
        assert not torch.equal(model(x), model(oldest))  # receptive field 15 >= 6 rows
    with pytest.raises(ValueError, match=r"n_inputs \(25\) must be a multiple of lookback \(6\)"):
        build_model(g, 25, "direction")


def test_the_tcn_computes_only_the_steps_its_head_reads_and_gets_the_full_convolution() -> None:
    """Each layer over just the steps the next one reads equals the plain causal TCN: every layer
    over the whole window, zero-padded on the left by (kernel - 1) x dilation."""

    def full(m: TemporalNet, z: torch.Tensor) -> torch.Tensor:
        h = z.reshape(-1, m.lookback, m.n_features).transpose(1, 2)
        for i, conv in enumerate(m.convs):
            assert isinstance(conv, torch.nn.Conv1d)
            pad = (TCN_KERNEL - 1) * int(conv.dilation[0])
            y = torch.relu(conv(torch.nn.functional.pad(h, (pad, 0))))
            h = y + h if i > 0 else y
        return m.out(h[:, :, -1]).squeeze(-1)

    torch.manual_seed(0)
    for lookback in (1, 2, 3, 5, 8, 15, 24):  # spans of 1, 3, 7 and 15 steps, short and long
        for depth in (0, 1, 2, 3):
            model = TemporalNet(lookback * 4, lookback=lookback, hidden=8, depth=depth,
                                dropout=0.0, task="direction").eval()  # fmt: skip
            z = torch.randn(7, lookback * 4)
            with torch.no_grad():
                torch.testing.assert_close(model.body_of(z), full(model, z), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("family", ["mlp", "tcn", "gbm"])
def test_each_family_trains_reproduces_and_round_trips_its_checkpoint(
    family: str, tmp_path: Path
) -> None:
    ds, g = btc_dataset(2000), genome(**FAMILY_GENES[family])  # type: ignore[arg-type]
    report, state = train_child(ds, g, seed=5, agent_id="ta-0005", generation=1)
    assert report.ok, report.reason
    assert all(np.isfinite(report.objectives)) and np.all(np.abs(report.oos_score) <= 1.0)
    again, state_again = train_child(ds, g, seed=5, agent_id="ta-0005", generation=1)
    assert state is not None and state_again is not None
    assert np.array_equal(report.oos_score, again.oos_score)  # bit for bit
    assert all(torch.equal(state[k], state_again[k]) for k in state)
    path = save_checkpoint(tmp_path / f"{family}.pt", state, checkpoint_meta(report))
    raw = torch.load(path, weights_only=True)  # weights only, for every family
    assert raw["format"] == CHECKPOINT_FORMAT
    model, meta = load_model(path)
    assert model.family == family and model.task == "direction" and meta["seed"] == 5
    last = plan_folds(ds, g)[-1]
    x = window_inputs(ds, g, last.test_rows)
    assert model.n_inputs == x.shape[1]
    with torch.no_grad():
        scores = model(torch.from_numpy(x)).double().numpy()
    assert np.array_equal(scores, report.oos_score[-len(last.test_rows) :])
    # The one predictor serving calls: the same scores (to float32 rounding for the MLP's numpy).
    served = scorer(model)(x)
    assert served.dtype == np.float32
    np.testing.assert_allclose(served, scores, rtol=1e-5, atol=1e-6)


def test_a_gbm_checkpoint_holds_the_booster_text_and_its_calibration(tmp_path: Path) -> None:
    ds, g = btc_dataset(2000), genome(**FAMILY_GENES["gbm"])  # type: ignore[arg-type]
    report, state = train_child(ds, g, seed=2, agent_id="ta-0002", generation=0)
    assert report.ok and state is not None
    assert set(state) == {"model_text", "out_scale", "n_inputs"}
    assert state["model_text"].dtype == torch.uint8
    text = state["model_text"].numpy().tobytes().decode()
    assert text.startswith("tree\n") and "num_leaves=" in text
    model = GbmModel.from_state(state, "direction")
    assert model.booster.num_trees() == 30 and model.n_inputs == int(state["n_inputs"])
    # Calibrated like the MLP: the in-sample raw predictions have an RMS of 1 / out_scale.
    fit_rows = plan_folds(ds, g)[-1].train_rows
    h = model.raw(window_inputs(ds, g, fit_rows))
    assert float(np.sqrt(np.mean(h**2))) * model.out_scale == pytest.approx(1.0, rel=1e-9)
    # A different seed draws other features per tree: other scores.
    other, _ = train_child(ds, g, seed=3, agent_id="ta-0002", generation=0)
    assert not np.array_equal(other.oos_score, report.oos_score)


def test_a_gbm_rugpull_detector_classifies_real_tokens() -> None:
    from tests.agents.test_training import rugpull_dataset

    g = Genome("rugpull_detector", (("feature_set", "all"), *FAMILY_GENES["gbm"].items()))  # type: ignore[arg-type]
    report, state = train_child(rugpull_dataset(), g, seed=1, agent_id="rd-1", generation=0)
    assert report.ok, report.reason
    assert report.metrics["auc"] > 0.9  # trees on tabular tokens
    assert state is not None and GbmModel.from_state(state, "classify").task == "classify"


def test_bad_family_genes_are_named() -> None:
    ds = btc_dataset(2000)
    for genes, message in (
        ({"family": "xgb"}, "gene family must be one of mlp, tcn, gbm; got 'xgb'"),
        ({"family": "gbm", "num_leaves": 1}, "gene num_leaves must be an integer >= 2; got 1"),
        ({"family": "gbm", "feature_fraction": 1.5},
         r"gene feature_fraction must be a number in \(0, 1\]; got 1.5"),
    ):  # fmt: skip
        report, state = train_child(ds, genome(**genes), seed=1, agent_id="x", generation=0)
        assert not report.ok and state is None
        assert re.search(message, report.reason), report.reason
    with pytest.raises(ValueError, match="gene family 'gbm' is not a torch model"):
        build_model(Genome("x", (("family", "gbm"),)), 4, "direction")
