"""The small torch models a child trains, built from its genome, and their weights-only checkpoints.

A child's model is an MLP over the flattened window of ``lookback`` rows x the selected feature
columns (``n_inputs = lookback * n_features``, the oldest row first). It carries its own input
standardization and output calibration as buffers, so a state dict alone reproduces its scores:

- ``in_mean``, ``in_std`` (``n_inputs``): statistics of the training rows only; the network sees
  ``(x - in_mean) / in_std``.
- ``out_scale`` (scalar): for the ``direction`` and ``rank`` tasks the score is
  ``tanh(head(x) * out_scale / 2)``. While training ``out_scale`` is 1, so the net learns
  ``tanh(h / 2)``; afterwards the trainer sets it to ``1 / rms(h)`` over the training rows, so a
  score reads ``2 * sigmoid(z) - 1`` of the prediction ``z`` in units of its typical size. That
  keeps a ``threshold`` gene (``|score|`` needed to trade) meaningful whatever the scale of the
  regression target: ``|score| > 0.3`` means ``|z| > 0.62``.
- ``classify`` models output one logit (``out_scale`` is unused); the trainer maps the
  probability ``p`` to the score ``2p - 1``.

Checkpoints (``checkpoints/<agent_id>_gen<N>.pt``) hold only tensors and plain strings: a dict
``{"format": CHECKPOINT_FORMAT, "state_dict": {...tensors}, "meta_json": "<JSON text>"}``. The
metadata travels as JSON text inside the same file (no side file to lose), so the file loads with
``torch.load(path, weights_only=True)`` and no pickled Python objects are ever executed.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.genome import Genome

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FORMAT",
    "MODEL_DEFAULTS",
    "MODEL_TASKS",
    "ChildNet",
    "FrozenNet",
    "build_model",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
]

MODEL_TASKS: tuple[str, ...] = ("direction", "rank", "classify")
CHECKPOINT_FORMAT = "redline.child/1"
MODEL_DEFAULTS: dict[str, int | float] = {"hidden": 32, "depth": 2, "dropout": 0.0}
"""Architecture genes a genome may leave out, and the values used then."""


class ChildNet(nn.Module):
    """MLP: ``depth`` x (Linear(hidden), ReLU, Dropout), then Linear(1); see the module doc."""

    in_mean: torch.Tensor
    in_std: torch.Tensor
    out_scale: torch.Tensor

    def __init__(
        self, n_inputs: int, *, hidden: int, depth: int, dropout: float, task: str
    ) -> None:
        super().__init__()
        if task not in MODEL_TASKS:
            raise ValueError(f"task must be one of {', '.join(MODEL_TASKS)}; got {task!r}")
        for name, value, low in (("n_inputs", n_inputs, 1), ("hidden", hidden, 1),
                                 ("depth", depth, 0)):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {dropout!r}")
        self.task = task
        layers: list[nn.Module] = []
        width = n_inputs
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.body = nn.Sequential(*layers)
        self.register_buffer("in_mean", torch.zeros(n_inputs))
        self.register_buffer("in_std", torch.ones(n_inputs))
        self.register_buffer("out_scale", torch.ones(()))

    @property
    def n_inputs(self) -> int:
        return int(self.in_mean.shape[0])

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """The raw prediction ``h`` (batch,) of raw (unstandardized) flattened windows."""
        return self.body((x - self.in_mean) / self.in_std).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        if self.task == "classify":
            return h
        return torch.tanh(h * self.out_scale * 0.5)

    def set_standardization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Input statistics (of the training rows); a zero std is replaced by 1."""
        if mean.shape != self.in_mean.shape or std.shape != self.in_std.shape:
            raise ValueError(
                f"standardization must have shape {tuple(self.in_mean.shape)}; "
                f"got {tuple(mean.shape)} and {tuple(std.shape)}"
            )
        self.in_mean.copy_(mean)
        self.in_std.copy_(torch.where(std > 0, std, torch.ones_like(std)))


class FrozenNet:
    """A ChildNet's eval-mode forward in numpy float32: the same scores without torch's per-call
    machinery (module hooks, dispatch), which for these small MLPs on a few rows costs more than
    the arithmetic; the live service scores with it (``serving.ensemble``).

    The weights are copied when it is made (a later change to the module is not seen). Dropout
    is the identity in eval mode, so only the Linear layers and ReLUs remain. Scores agree with
    the module's to float32 rounding (the matrix products may add in another order):
    ``tests/agents/test_models.py`` compares them on real inputs.
    """

    def __init__(self, model: ChildNet) -> None:
        def array(tensor: torch.Tensor) -> np.ndarray:
            return np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=np.float32)

        self.task = model.task
        self.in_mean, self.in_std = array(model.in_mean), array(model.in_std)
        self.half_scale = np.float32(float(model.out_scale) * 0.5)
        linears = [layer for layer in model.body if isinstance(layer, nn.Linear)]
        self.layers = [(np.ascontiguousarray(array(layer.weight).T), array(layer.bias))
                       for layer in linears]  # fmt: skip

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Scores (rows,) float32 of raw flattened windows ``x`` (rows, n_inputs), as
        ``ChildNet.forward`` in eval mode."""
        z = (np.asarray(x, dtype=np.float32) - self.in_mean) / self.in_std
        last = len(self.layers) - 1
        for i, (weight, bias) in enumerate(self.layers):
            z = z @ weight + bias
            if i < last:
                np.maximum(z, 0.0, out=z)
        h = z[:, 0]
        return h if self.task == "classify" else np.tanh(h * self.half_scale)


def _gene(genome: Genome, name: str) -> Any:
    return genome.as_dict().get(name, MODEL_DEFAULTS[name])


def build_model(genome: Genome, n_inputs: int, task: str) -> ChildNet:
    """The model a genome describes (genes ``hidden``, ``depth``, ``dropout``; defaults
    ``MODEL_DEFAULTS``) over ``n_inputs`` flattened inputs, for ``task``."""
    hidden, depth, dropout = (_gene(genome, name) for name in ("hidden", "depth", "dropout"))
    if isinstance(hidden, bool) or not isinstance(hidden, int):
        raise ValueError(f"gene hidden must be an integer; got {hidden!r}")
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise ValueError(f"gene depth must be an integer; got {depth!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, int | float):
        raise ValueError(f"gene dropout must be a number; got {dropout!r}")
    return ChildNet(n_inputs, hidden=hidden, depth=depth, dropout=float(dropout), task=task)


def save_checkpoint(
    path: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
) -> Path:
    """Write ``state_dict`` and JSON-ready ``meta`` to ``path`` (weights only; see the module doc).

    The file is written beside its final name and renamed into place, so a run killed mid-write
    never leaves a truncated checkpoint under the real name.
    """
    target = Path(path)
    bad = [name for name, value in state_dict.items() if not isinstance(value, torch.Tensor)]
    if bad:
        raise ValueError(f"state_dict values must be tensors; {bad[0]!r} is not")
    try:
        meta_json = json.dumps(dict(meta), sort_keys=True, allow_nan=True)
    except TypeError as exc:
        raise ValueError(f"checkpoint meta must be JSON-serializable: {exc}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "state_dict": {name: value.detach().cpu().clone() for name, value in state_dict.items()},
        "meta_json": meta_json,
    }
    torch.save(payload, tmp)
    os.replace(tmp, target)
    logger.debug("saved checkpoint %s (%d tensors)", target, len(state_dict))
    return target


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, meta)`` of a checkpoint written by :func:`save_checkpoint`."""
    payload = torch.load(Path(path), weights_only=True, map_location="cpu")
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint; format is {found!r}")
    return dict(payload["state_dict"]), json.loads(payload["meta_json"])


def load_model(path: str | os.PathLike[str]) -> tuple[ChildNet, dict[str, Any]]:
    """The model of a checkpoint whose meta holds ``genome`` (its JSON) and ``task``, in eval mode.

    ``agents.training.checkpoint_meta(report)`` writes such a meta.
    """
    state_dict, meta = load_checkpoint(path)
    missing = [key for key in ("genome", "task") if key not in meta]
    if missing:
        raise ValueError(f"{path}: checkpoint meta lacks {missing[0]!r}; has {sorted(meta)}")
    genome = Genome.from_json(meta["genome"])
    model = build_model(genome, int(state_dict["in_mean"].shape[0]), str(meta["task"]))
    model.load_state_dict(state_dict)
    model.eval()
    return model, meta
