"""What one trained model is, typed, and the one hash that names a spec.

:func:`spec_hash` is the identity of every spec Redline stores: a trial config
(:class:`TrainSpec`, ``tuning``), an evolution run (its evolve section and regime rules,
``cluster.evolve.config_hash``), an inference config. It is the SHA-256 hex of the canonical JSON
(sorted keys, no spaces, no NaN or infinity), numpy scalars, tuples and paths made plain.

:class:`TrainSpec` is one model to train and judge: specialty, dataset, the data spec it was built
from (the JSON of :class:`agents.sources.DataSources` minus the store: exchange, timeframe,
symbols, start, end, ...), genome, seed, fee and inference grid. Its JSON (:meth:`TrainSpec.to_json`)
is the trial config the training queue stores; :attr:`TrainSpec.hash` leaves out ``grid`` (which grid
added it), so the same config added by two grids trains once.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TrainSpec", "plain", "spec_hash"]


def plain(value: Any, where: str = "config") -> Any:
    """``value`` with numpy scalars, arrays, tuples and paths turned into plain Python (for JSON)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str | int | float):
        return value
    raise TypeError(f"{where}: {type(value).__name__} {value!r} is not a JSON value")


def spec_hash(value: Any) -> str:
    """SHA-256 hex of ``value``'s canonical JSON (see the module doc)."""
    try:
        text = json.dumps(plain(value), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:  # NaN or infinity
        raise ValueError(f"a config must hold finite numbers only: {exc}") from None
    return hashlib.sha256(text.encode()).hexdigest()


_KEYS = ("specialty", "dataset", "data", "genome", "seed", "inference", "fee_bps", "grid")
_INFERENCE = ("threshold", "horizon", "size")


@dataclass(frozen=True)
class TrainSpec:
    """One model to train (see the module doc); checks itself, errors name the key and value."""

    specialty: str
    dataset: str
    data: Mapping[str, Any]
    genome: Mapping[str, Any]
    seed: int
    inference: Mapping[str, tuple[Any, ...]]
    fee_bps: float
    grid: str = ""
    _hash: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("specialty", "dataset"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"train spec {name} must be a non-empty string; got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer):
            raise ValueError(f"train spec seed must be an integer; got {self.seed!r}")
        if not math.isfinite(float(self.fee_bps)) or self.fee_bps < 0:
            raise ValueError(
                f"train spec fee_bps must be a finite number >= 0; got {self.fee_bps!r}"
            )
        missing = [key for key in _INFERENCE if key not in self.inference]
        if missing:
            raise ValueError(
                f"train spec inference needs {', '.join(_INFERENCE)}; got {dict(self.inference)!r}"
            )
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "data", plain(self.data, "data"))
        object.__setattr__(self, "genome", plain(self.genome, "genome"))
        object.__setattr__(
            self, "inference", {k: tuple(plain(list(self.inference[k]))) for k in _INFERENCE}
        )
        object.__setattr__(self, "_hash", spec_hash(self._identity()))

    def _identity(self) -> dict[str, Any]:
        return {key: value for key, value in self.to_json().items() if key != "grid"}

    @property
    def hash(self) -> str:
        """Its identity: :func:`spec_hash` of its JSON without ``grid``."""
        return self._hash

    @property
    def key(self) -> str:
        """``"<specialty>/<dataset>"``: the key of its dataset among a run's datasets."""
        return f"{self.specialty}/{self.dataset}"

    def to_json(self) -> dict[str, Any]:
        """The trial config (plain JSON values, the queue's and the training run's ``config``)."""
        return {
            "specialty": self.specialty, "dataset": self.dataset, "data": dict(self.data),
            "genome": dict(self.genome), "seed": self.seed,
            "inference": {key: list(values) for key, values in self.inference.items()},
            "fee_bps": self.fee_bps, "grid": self.grid,
        }  # fmt: skip

    @classmethod
    def from_json(cls, payload: Mapping[str, Any] | TrainSpec) -> TrainSpec:
        """The spec of a trial config (a spec is returned as is); unknown or missing keys raise
        naming them."""
        if isinstance(payload, TrainSpec):
            return payload
        unknown = sorted(set(payload) - set(_KEYS))
        if unknown:
            raise ValueError(
                f"train spec: unknown key {unknown[0]!r}; known keys: {', '.join(_KEYS)}"
            )
        missing = [key for key in _KEYS[:-1] if key not in payload]
        if missing:
            raise ValueError(f"train spec: missing key {missing[0]!r} in {dict(payload)!r}")
        return cls(
            specialty=payload["specialty"], dataset=payload["dataset"], data=payload["data"],
            genome=payload["genome"], seed=payload["seed"], inference=payload["inference"],
            fee_bps=payload["fee_bps"], grid=str(payload.get("grid") or ""),
        )  # fmt: skip

    def inference_configs(self) -> list[dict[str, Any]]:
        """The inference grid: every threshold x horizon x size, in that nesting order."""
        return [
            {"threshold": float(t), "horizon": int(h), "size": float(s)}
            for t, h, s in itertools.product(*(self.inference[key] for key in _INFERENCE))
        ]
