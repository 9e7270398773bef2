"""The gradient-boosted tree family (``family: gbm``): a LightGBM booster behind the same score
conventions as the torch models of ``agents.models``.

- ``direction`` and ``rank``: an L2 regressor of the same target the MLP learns; its raw
  prediction ``h`` is calibrated like ``ChildNet``'s: ``score = tanh(h * out_scale / 2)`` with
  ``out_scale = 1 / rms(h)`` over the training rows, so a ``threshold`` gene means the same thing
  for every family;
- ``classify``: a binary classifier; the model's output is the logit (raw score), which the
  trainer maps to ``2p - 1`` as for the MLP.

Training is deterministic (``deterministic=True``, row-wise histograms, every seed from the
child's seed): the same rows, genes and seed give the same booster, bit for bit.

Genes (defaults :data:`GBM_DEFAULTS`; bounds in ``agents.specialties.base.gbm_genes``, sized so a
child on ~30k rows trains in a few seconds on a 2-core CPU): ``num_leaves``, ``n_estimators``,
``learning_rate`` (the shrinkage; ``lr`` is the torch optimiser's), ``min_child_samples``,
``feature_fraction``.

Checkpoints stay weights only: :meth:`GbmModel.state_dict` holds the booster's model text
(``Booster.model_to_string()``) as a uint8 tensor ``model_text``, with ``out_scale`` and
``n_inputs``; :meth:`GbmModel.from_state` parses it back into a Booster (no pickle).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import lightgbm as lgb
import numpy as np
import torch

from agents.genome import Genome

__all__ = ["GBM_DEFAULTS", "GbmModel", "fit_gbm"]

GBM_DEFAULTS: dict[str, int | float] = {
    "num_leaves": 15, "n_estimators": 100, "learning_rate": 0.05, "min_child_samples": 50,
    "feature_fraction": 0.5,
}  # fmt: skip
"""GBM genes a genome may leave out, and the values used then."""
_INT_GENES = ("num_leaves", "n_estimators", "min_child_samples")
_LOWS = {"num_leaves": 2, "n_estimators": 1, "min_child_samples": 1}


def _genes(genome: Genome) -> dict[str, Any]:
    values = genome.as_dict()
    out: dict[str, Any] = {}
    for name, default in GBM_DEFAULTS.items():
        value = values.get(name, default)
        if name in _INT_GENES:
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or (
                value < _LOWS[name]
            ):  # fmt: skip
                raise ValueError(f"gene {name} must be an integer >= {_LOWS[name]}; got {value!r}")
            out[name] = int(value)
            continue
        number = (float(value) if isinstance(value, int | float | np.number)
                  and not isinstance(value, bool) else math.nan)  # fmt: skip
        if not (math.isfinite(number) and 0 < number <= 1):
            raise ValueError(f"gene {name} must be a number in (0, 1]; got {value!r}")
        out[name] = number
    return out


class GbmModel:
    """A trained booster with its calibration; called like an eval-mode ``ChildNet``.

    ``model(x)`` takes raw flattened windows (a torch tensor or a numpy array, rows x
    ``n_inputs``) and returns the scores (``direction``/``rank``) or logits (``classify``) as
    float32, of the same kind as ``x``.
    """

    family = "gbm"

    def __init__(self, booster: lgb.Booster, task: str, n_inputs: int, out_scale: float) -> None:
        if booster.num_feature() != n_inputs:
            raise ValueError(
                f"booster reads {booster.num_feature()} inputs; n_inputs is {n_inputs}"
            )
        self.booster, self.task = booster, task
        self.n_inputs, self.out_scale = int(n_inputs), float(out_scale)

    def raw(self, x: np.ndarray) -> np.ndarray:
        """The booster's raw prediction ``h`` (float64): a regression value or a logit."""
        return np.asarray(self.booster.predict(np.asarray(x), raw_score=True), dtype=np.float64)

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Scores (or logits to classify) float32 of raw flattened windows ``x``."""
        h = self.raw(x)
        out = h if self.task == "classify" else np.tanh(h * self.out_scale * 0.5)
        return out.astype(np.float32)

    def __call__(self, x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return torch.from_numpy(self.scores(x.detach().cpu().numpy()))
        return self.scores(x)

    def eval(self) -> GbmModel:
        return self

    def contributions(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """Per-input contributions (SHAP values, ``pred_contrib``) of one row to its raw score,
        and the expected value; they add up to the raw score."""
        out = np.asarray(self.booster.predict(np.asarray(x).reshape(1, -1), pred_contrib=True))
        return out[0, :-1].astype(np.float64), float(out[0, -1])

    def state_dict(self) -> dict[str, torch.Tensor]:
        text = self.booster.model_to_string().encode()
        return {
            "model_text": torch.frombuffer(bytearray(text), dtype=torch.uint8).clone(),
            "out_scale": torch.tensor(self.out_scale, dtype=torch.float64),
            "n_inputs": torch.tensor(self.n_inputs, dtype=torch.int64),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, torch.Tensor], task: str) -> GbmModel:
        missing = [k for k in ("model_text", "out_scale", "n_inputs") if k not in state]
        if missing:
            raise ValueError(f"gbm checkpoint lacks {missing[0]!r}; has {sorted(state)}")
        text = bytes(state["model_text"].numpy().tobytes()).decode()
        booster = lgb.Booster(model_str=text)
        return cls(booster, task, int(state["n_inputs"]), float(state["out_scale"]))


def fit_gbm(
    x: np.ndarray, y: np.ndarray, genome: Genome, task: str, seed: int, threads: int
) -> tuple[GbmModel, float]:
    """A booster trained on ``(x, y)`` and calibrated (module doc); returns it with its in-sample
    loss (MSE, or the binary log loss to classify)."""
    genes = _genes(genome)
    params = {
        "objective": "binary" if task == "classify" else "regression",
        "num_leaves": genes["num_leaves"],
        "learning_rate": genes["learning_rate"],
        "min_data_in_leaf": genes["min_child_samples"],
        "feature_fraction": genes["feature_fraction"],
        "max_bin": 63,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": threads,
        "seed": int(seed) % (2**31 - 1),
        "verbosity": -1,
    }
    data = lgb.Dataset(x, label=y.astype(np.float64), params={"max_bin": 63, "verbosity": -1},
                       free_raw_data=True)  # fmt: skip
    booster = lgb.train(params, data, num_boost_round=genes["n_estimators"])
    model = GbmModel(booster, task, x.shape[1], 1.0)
    h = model.raw(x)
    if not np.isfinite(h).all():
        raise ValueError("gbm predictions are non-finite")
    if task == "classify":
        p = 1.0 / (1.0 + np.exp(-h))
        eps = 1e-12
        loss = float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
    else:
        rms = float(np.sqrt(np.mean(h**2)))
        model.out_scale = 1.0 / rms if rms > 0 else 1.0
        loss = float(np.mean((h - y) ** 2))
    return model, loss
