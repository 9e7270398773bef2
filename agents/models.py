"""The models a child trains, built from its genome, and their weights-only checkpoints.

A child's ``family`` gene (default ``mlp``, what every genome without the gene gets) picks its model:
``mlp`` (:class:`ChildNet`), ``tcn`` (:class:`TemporalNet`, a small causal temporal convolution)
or ``gbm`` (``agents.gbm.GbmModel``, LightGBM). All read the same input and give scores of the
same kind, described below for the MLP; :func:`scorer` gives the one numpy predictor serving
calls for every family.

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

The ``tcn`` family reshapes the window to ``(lookback, n_features)`` and runs ``depth`` causal
dilated ``Conv1d`` layers (kernel 3, dilations 1, 2, 4, ...; ``min(hidden, 16)`` channels, ReLU,
dropout, residual from the second layer on) over it; a Linear head reads the last (newest) step.
It keeps the same buffers, standardization and calibration, so training, ``out_scale`` and
serving are unchanged. ``gbm`` is described in ``agents.gbm``; its checkpoint holds the booster's
model text as a uint8 tensor.

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
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from agents.gbm import GbmModel
from agents.genome import Genome

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FORMAT",
    "MODEL_DEFAULTS",
    "MODEL_FAMILIES",
    "MODEL_TASKS",
    "ChildModel",
    "ChildNet",
    "FrozenNet",
    "GbmModel",
    "Scorer",
    "TemporalNet",
    "build_model",
    "family_of",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
    "scorer",
]

MODEL_TASKS: tuple[str, ...] = ("direction", "rank", "classify")
CHECKPOINT_FORMAT = "redline.child/1"
MODEL_FAMILIES: tuple[str, ...] = ("mlp", "tcn", "gbm")
MODEL_DEFAULTS: dict[str, int | float | str] = {
    "hidden": 32, "depth": 2, "dropout": 0.0, "family": "mlp",
}  # fmt: skip
"""Architecture genes a genome may leave out, and the values used then."""
TCN_KERNEL, TCN_MAX_CHANNELS = 3, 16


def _check_arch(task: str, n_inputs: int, hidden: int, depth: int, dropout: float) -> None:
    if task not in MODEL_TASKS:
        raise ValueError(f"task must be one of {', '.join(MODEL_TASKS)}; got {task!r}")
    for name, value, low in (("n_inputs", n_inputs, 1), ("hidden", hidden, 1),
                             ("depth", depth, 0)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); got {dropout!r}")


class _Calibrated(nn.Module):
    """What every torch family shares: input standardization and output calibration buffers,
    ``head`` (the raw prediction) and ``forward`` (the score, or the logit to classify)."""

    in_mean: torch.Tensor
    in_std: torch.Tensor
    out_scale: torch.Tensor
    family = "mlp"

    def __init__(self, task: str) -> None:
        super().__init__()
        self.task = task

    def _calibration(self, n_inputs: int) -> None:
        # Registered after the layers, so an MLP's state dict keeps the order it always had.
        self.register_buffer("in_mean", torch.zeros(n_inputs))
        self.register_buffer("in_std", torch.ones(n_inputs))
        self.register_buffer("out_scale", torch.ones(()))

    @property
    def n_inputs(self) -> int:
        return int(self.in_mean.shape[0])

    def body_of(self, z: torch.Tensor) -> torch.Tensor:
        """The raw prediction (batch,) of standardized inputs ``z``."""
        raise NotImplementedError

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """The raw prediction ``h`` (batch,) of raw (unstandardized) flattened windows."""
        return self.body_of((x - self.in_mean) / self.in_std)

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


class ChildNet(_Calibrated):
    """MLP: ``depth`` x (Linear(hidden), ReLU, Dropout), then Linear(1); see the module doc."""

    def __init__(
        self, n_inputs: int, *, hidden: int, depth: int, dropout: float, task: str
    ) -> None:
        _check_arch(task, n_inputs, hidden, depth, dropout)
        super().__init__(task)
        layers: list[nn.Module] = []
        width = n_inputs
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.body = nn.Sequential(*layers)
        self._calibration(n_inputs)

    def body_of(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z).squeeze(-1)


class TemporalNet(_Calibrated):
    """A small causal TCN over the window reshaped ``(lookback, n_features)`` (module doc)."""

    family = "tcn"

    def __init__(
        self, n_inputs: int, *, lookback: int, hidden: int, depth: int, dropout: float, task: str
    ) -> None:
        _check_arch(task, n_inputs, hidden, depth, dropout)
        if isinstance(lookback, bool) or not isinstance(lookback, int) or lookback < 1:
            raise ValueError(f"lookback must be an integer >= 1; got {lookback!r}")
        if n_inputs % lookback:
            raise ValueError(
                f"n_inputs ({n_inputs}) must be a multiple of lookback ({lookback}): "
                "a window of lookback rows x n_features"
            )
        super().__init__(task)
        self.lookback, self.n_features = lookback, n_inputs // lookback
        channels = min(hidden, TCN_MAX_CHANNELS)
        width = self.n_features
        convs = []
        for i in range(depth):
            convs.append(nn.Conv1d(width, channels, TCN_KERNEL, dilation=2**i))
            width = channels
        self.convs = nn.ModuleList(convs)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.out = nn.Linear(width, 1)
        self._calibration(n_inputs)

    def body_of(self, z: torch.Tensor) -> torch.Tensor:
        h = z.reshape(-1, self.lookback, self.n_features).transpose(1, 2)  # (batch, feat, time)
        # The head reads the newest step only, so each layer is computed over just the steps the
        # next one reads (the same numbers as the full sequences, 2-3x cheaper at lookback 24):
        # layer i's output over the last need[i] steps reads its input over need[i] + 2 d_i.
        need = [1] * len(self.convs)
        span = 1
        for i in reversed(range(len(self.convs))):
            need[i] = span
            span += (TCN_KERNEL - 1) * self._dilation(i)
        if span > self.lookback:  # steps before the window: zeros, as causal padding makes them
            h = nn.functional.pad(h, (span - self.lookback, 0))
        else:
            h = h[:, :, -span:]
        for i, conv in enumerate(self.convs):
            y = self.drop(torch.relu(conv(h)))  # (batch, channels, need[i])
            before = need[i] - self.lookback  # output steps before the window are padding: zero
            if before > 0:
                y = nn.functional.pad(y[:, :, before:], (before, 0))
            h = y + h[:, :, -need[i] :] if i > 0 else y
        return self.out(h[:, :, -1]).squeeze(-1)

    def _dilation(self, i: int) -> int:
        conv = self.convs[i]
        assert isinstance(conv, nn.Conv1d)
        return int(conv.dilation[0])


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


class _TorchScorer:
    """A torch family's eval forward as a numpy predictor (``tcn``: convolutions stay in torch)."""

    def __init__(self, model: _Calibrated) -> None:
        self.model = model.eval()
        self.task = model.task

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = self.model(torch.from_numpy(np.asarray(x, dtype=np.float32)))
        return np.asarray(out.numpy(), dtype=np.float32)


ChildModel = ChildNet | TemporalNet | GbmModel
"""A loaded child model of any family: ``model(x)`` of a torch tensor of raw flattened windows
gives its scores (logits to classify) as a float32 tensor; ``model.task``, ``model.n_inputs``."""


class Scorer(Protocol):
    """The one predictor serving calls for every family: raw flattened windows (rows,
    ``n_inputs``) in, scores (logits to classify) float32 (rows,) out."""

    def __call__(self, x: np.ndarray) -> np.ndarray: ...


def scorer(model: ChildModel) -> Scorer:
    """The numpy predictor of ``model``: :class:`FrozenNet` for the MLP, the booster for ``gbm``,
    the eval forward in torch for ``tcn``."""
    if isinstance(model, ChildNet):
        return FrozenNet(model)
    if isinstance(model, GbmModel):
        return model.scores
    return _TorchScorer(model)


def _gene(genome: Genome, name: str) -> Any:
    return genome.as_dict().get(name, MODEL_DEFAULTS[name])


def family_of(genome: Genome) -> str:
    """The genome's ``family`` gene (``mlp`` when it has none)."""
    family = _gene(genome, "family")
    if family not in MODEL_FAMILIES:
        raise ValueError(f"gene family must be one of {', '.join(MODEL_FAMILIES)}; got {family!r}")
    return str(family)


def build_model(genome: Genome, n_inputs: int, task: str) -> ChildNet | TemporalNet:
    """The torch model a genome describes (genes ``family``, ``hidden``, ``depth``, ``dropout``,
    and ``lookback`` for ``tcn``; defaults ``MODEL_DEFAULTS``) over ``n_inputs`` flattened inputs,
    for ``task``. A ``gbm`` genome has no torch model (``agents.gbm.fit_gbm`` trains it)."""
    family = family_of(genome)
    if family == "gbm":
        raise ValueError("gene family 'gbm' is not a torch model: agents.gbm.fit_gbm trains it")
    hidden, depth, dropout = (_gene(genome, name) for name in ("hidden", "depth", "dropout"))
    if isinstance(hidden, bool) or not isinstance(hidden, int):
        raise ValueError(f"gene hidden must be an integer; got {hidden!r}")
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise ValueError(f"gene depth must be an integer; got {depth!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, int | float):
        raise ValueError(f"gene dropout must be a number; got {dropout!r}")
    if family == "tcn":
        lookback = genome.as_dict().get("lookback", 1)
        if isinstance(lookback, bool) or not isinstance(lookback, int) or lookback < 1:
            raise ValueError(f"gene lookback must be an integer >= 1; got {lookback!r}")
        return TemporalNet(n_inputs, lookback=lookback, hidden=hidden, depth=depth,
                           dropout=float(dropout), task=task)  # fmt: skip
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


def load_model(path: str | os.PathLike[str]) -> tuple[ChildModel, dict[str, Any]]:
    """The model of a checkpoint whose meta holds ``genome`` (its JSON) and ``task``, in eval mode
    (its family from the genome's ``family`` gene; ``mlp`` when it has none).

    ``agents.training.checkpoint_meta(report)`` writes such a meta.
    """
    state_dict, meta = load_checkpoint(path)
    missing = [key for key in ("genome", "task") if key not in meta]
    if missing:
        raise ValueError(f"{path}: checkpoint meta lacks {missing[0]!r}; has {sorted(meta)}")
    genome = Genome.from_json(meta["genome"])
    if family_of(genome) == "gbm":
        return GbmModel.from_state(state_dict, str(meta["task"])), meta
    model = build_model(genome, int(state_dict["in_mean"].shape[0]), str(meta["task"]))
    model.load_state_dict(state_dict)
    model.eval()
    return model, meta
