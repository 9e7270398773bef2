"""Child models built from genomes, and weights-only checkpoints that reproduce OOS scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.genome import Genome
from agents.models import (
    CHECKPOINT_FORMAT,
    ChildNet,
    FrozenNet,
    build_model,
    load_checkpoint,
    load_model,
    save_checkpoint,
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
