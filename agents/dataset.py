"""The unit of training data a child receives: one frozen bundle of numpy arrays.

A ``Dataset`` is built once per specialty and run, written as Parquet under
``training_db/<specialty>/`` and put in Ray's object store once; every child gets the reference and
reads the arrays zero-copy (numpy arrays pickle out of band, so ``ray.get`` maps them read-only).

Rows are in time order (tokens for the rug-pull detector have no time: their order is fixed by
the builder). ``features`` at row t use only data known at the close of row t's bar: no look-ahead.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class Dataset:
    specialty: str
    name: str  # e.g. "binance_BTC-USDT_1h" or "panel_1h" or "uniswapv2_tokens"
    timeframe: str  # "1h", "5m", ... ("" for tokens)
    features: np.ndarray  # float32 (n_rows, n_features), causal
    feature_names: tuple[str, ...]
    ts: np.ndarray  # int64 (n_rows,), open time in ms UTC (row numbers for tokens)
    close: np.ndarray | None = None  # float64 (n_rows,): prices to label and backtest on
    regimes: np.ndarray | None = None  # str (n_rows,): the bar's regime ("" when unknown)
    group: np.ndarray | None = None  # int32 (n_rows,): symbol index for panels
    group_names: tuple[str, ...] = ()
    target: np.ndarray | None = None  # fixed labels (is_rugpull), when the label is not a return
    feature_sets: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """Named column subsets a ``feature_set`` gene picks from (e.g. "fast", "slow", "all")."""
    pooled: bool = False
    """Rows of several symbols (``group``), each traded by its own score (task ``direction``):
    a pooled dataset, not a panel ranked across symbols (task ``rank``)."""

    def __post_init__(self) -> None:
        n = len(self.ts)
        if self.features.ndim != 2 or self.features.shape[0] != n:
            raise ValueError(
                f"dataset {self.name}: features must be (n_rows={n}, n_features); "
                f"got {self.features.shape}"
            )
        if self.features.shape[1] != len(self.feature_names):
            raise ValueError(
                f"dataset {self.name}: {self.features.shape[1]} feature columns but "
                f"{len(self.feature_names)} feature_names"
            )
        for label, array in (("close", self.close), ("regimes", self.regimes),
                             ("group", self.group), ("target", self.target)):  # fmt: skip
            if array is not None and len(array) != n:
                raise ValueError(f"dataset {self.name}: {label} has {len(array)} rows, ts has {n}")
        if self.pooled and self.group is None:
            raise ValueError(f"dataset {self.name}: pooled needs a group column naming the symbol")

    @property
    def n_rows(self) -> int:
        return len(self.ts)

    def digest(self) -> str:
        """SHA-256 over the arrays' bytes and names: the dataset hash every model records."""
        h = hashlib.sha256()
        h.update(f"{self.specialty}|{self.name}|{self.timeframe}|{self.feature_names}".encode())
        if self.pooled:  # only then: the digests of every other dataset stay as they were
            h.update(b"|pooled")
        for array in (self.features, self.ts, self.close, self.regimes, self.group, self.target):
            if array is not None:
                h.update(np.ascontiguousarray(array).tobytes() if array.dtype != object
                         else "\x1f".join(map(str, array)).encode())  # fmt: skip
        return h.hexdigest()
