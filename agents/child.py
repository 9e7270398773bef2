"""A child agent: trains one genome on a shared dataset, writes its playground and checkpoint.

``ChildWorker`` is the plain object (tests and the sequential benchmark run it in-process);
``ChildAgent`` is its Ray actor shell. Actors come from a fixed pool reused across generations, so
one actor trains many children in turn: while it trains one, its ``repr`` (what Ray prints before
its log lines and the dashboard shows) is ``child:<specialty>:<agent_id>``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.dataset import Dataset
from agents.genome import Genome
from agents.models import save_checkpoint
from agents.training import (
    ChildReport,
    Performance,
    checkpoint_meta,
    train_child,
    update_performance,
)
from market.backtest import DEFAULT_FEE_BPS
from store.paths import DataRoot

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainTask:
    """One child to train: everything needed to do it again and get the same result."""

    run_id: str
    agent_id: str
    generation: int
    genome: Genome
    seed: int
    dataset_name: str
    fee_bps: float = DEFAULT_FEE_BPS
    torch_threads: int = 1

    @property
    def specialty(self) -> str:
        return self.genome.specialty

    @property
    def actor_label(self) -> str:
        return f"child:{self.specialty}:{self.agent_id}"


@dataclass(frozen=True, eq=False)
class TrainOutcome:
    report: ChildReport
    checkpoint_path: str  # "" when the child failed
    checkpoint_sha256: str

    @classmethod
    def failed(cls, task: TrainTask, reason: str, seconds: float = 0.0) -> TrainOutcome:
        """A child that produced nothing (timed out, its actor died, its dataset could not be
        built): a FAILED report with ``reason`` and no checkpoint."""
        report = ChildReport.failed(
            agent_id=task.agent_id,
            generation=task.generation,
            genome=task.genome,
            seed=task.seed,
            reason=reason,
            train_seconds=seconds,
        )
        return cls(report, "", "")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def train_and_checkpoint(
    dataset: Dataset,
    genome: Genome,
    target: Path,
    *,
    seed: int,
    agent_id: str,
    generation: int,
    fee_bps: float,
    torch_threads: int,
    meta: Mapping[str, Any] | None = None,
) -> tuple[ChildReport, str]:
    """Train one genome (``agents.training.train_child``) and, when it trained, write its
    weights-only checkpoint at ``target`` (written beside it and renamed into place) with
    ``checkpoint_meta(report)`` and ``meta``: the one train-and-checkpoint step of evolution's
    children and Tune's trials. Returns the report and the checkpoint's SHA-256 ("" when the
    child failed and nothing was written)."""
    report, state = train_child(
        dataset,
        genome,
        seed=seed,
        agent_id=agent_id,
        generation=generation,
        torch_threads=torch_threads,
        fee_bps=fee_bps,
    )
    if not report.ok or state is None:
        return report, ""
    save_checkpoint(target, state, checkpoint_meta(report) | dict(meta or {}))
    return report, file_sha256(target)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class ChildWorker:
    """Trains children one after another; holds nothing between them but live performance."""

    def __init__(self, home: str | Path, *, clock: Any = time.time) -> None:
        self.root = DataRoot(Path(home))
        self.current = "child:idle"
        self._clock = clock
        self._performance: dict[str, Performance] = {}

    def train(self, task: TrainTask, dataset: Dataset) -> TrainOutcome:
        if dataset.name != task.dataset_name or dataset.specialty != task.specialty:
            raise ValueError(
                f"{task.agent_id} needs dataset {task.specialty}/{task.dataset_name}; "
                f"got {dataset.specialty}/{dataset.name}"
            )
        self.current = task.actor_label
        try:
            target = self.root.checkpoints / f"{task.agent_id}_gen{task.generation}.pt"
            report, sha = train_and_checkpoint(
                dataset,
                task.genome,
                target,
                seed=task.seed,
                agent_id=task.agent_id,
                generation=task.generation,
                torch_threads=task.torch_threads,
                fee_bps=task.fee_bps,
            )
            path = str(target) if sha else ""
            self._write_playground(task, report, path)
            return TrainOutcome(report, path, sha)
        finally:
            self.current = "child:idle"

    def update_performance(
        self, agent_id: str, was_correct: bool, profit_contribution: float
    ) -> dict[str, float | int]:
        """The product documents' method: one more live trade for ``agent_id``."""
        perf = update_performance(
            self._performance.get(agent_id, Performance()), was_correct, profit_contribution
        )
        self._performance[agent_id] = perf
        return perf.to_dict()

    def _write_playground(self, task: TrainTask, report: ChildReport, checkpoint: str) -> None:
        folder = self.root.playground(task.agent_id)
        logs = folder / "training_logs"
        logs.mkdir(parents=True, exist_ok=True)
        performance = {
            "agent_id": task.agent_id,
            "run_id": task.run_id,
            "specialty": task.specialty,
            "generation": task.generation,
            "status": report.status.value,
            "reason": report.reason,
            "objectives": [_finite(v) for v in report.objectives],
            "metrics": {k: _finite(v) for k, v in report.metrics.items()},
            "per_regime": {
                regime: {k: _finite(v) for k, v in values.items()}
                for regime, values in report.per_regime.items()
            },
            "genome": task.genome.as_dict(),
            "seed": task.seed,
            "dataset": task.dataset_name,
            "dataset_digest": report.dataset_digest,
            "checkpoint": checkpoint,
            "updated_at": self._clock(),
        }
        _write_json(folder / "performance.json", performance)
        if report.ok:  # the scores a report_coordinator stacks, kept for resumed runs
            oos_path(self.root, task.agent_id, task.generation).parent.mkdir(exist_ok=True)
            np.savez(
                oos_path(self.root, task.agent_id, task.generation),
                ts=report.oos_ts,
                score=report.oos_score,
                position=report.oos_position,
                rows=report.oos_rows,
            )
        _write_json(
            logs / f"gen{task.generation:03d}.json",
            {
                "train_seconds": report.train_seconds,
                "n_train_rows": report.n_train_rows,
                "n_test_rows": report.n_test_rows,
                "folds": [
                    {"train": [f.train.start, f.train.stop], "test": [f.test.start, f.test.stop]}
                    for f in report.folds
                ],
            },
        )

    def __repr__(self) -> str:
        return self.current


def oos_path(root: DataRoot, agent_id: str, generation: int) -> Path:
    """Where a child's out-of-sample scores live: ``playground/<agent_id>/oos_gen<N>.npz``."""
    return root.playground(agent_id) / f"oos_gen{generation:03d}.npz"


def read_oos(
    root: DataRoot,
    agent_id: str,
    generation: int,
    *,
    column: str = "score",
    pooled: tuple[Dataset, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(ts, <column>)`` a child predicted out of sample (``column``: ``score`` or
    ``position``). With ``pooled`` (the pooled dataset it trained on and a group of it), only the
    rows of that group's symbol: how a pooled member is read on one symbol's series."""
    with np.load(oos_path(root, agent_id, generation)) as data:
        ts, values = data["ts"].copy(), data[column].copy()
        if pooled is not None:
            pool, group = pooled
            assert pool.group is not None
            mine = pool.group[data["rows"]] == group
            ts, values = ts[mine], values[mine]
    return ts, values


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=False))
    os.replace(tmp, path)
