"""Training's rows (``training_runs``, ``inference_backtests``, ``training_queue``) as frozen
records, and the statuses they may take: what ``store.training.TrainingStore`` takes and gives."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from store.records import checks as check
from store.records.champions import Stage

__all__ = [
    "InferenceBacktestRecord",
    "QueueItemRecord",
    "QueueStatus",
    "TrainingRunRecord",
    "TrainingStatus",
]


class TrainingStatus(StrEnum):
    """A trained config's row: PENDING/RUNNING while a trial works on it, then DONE or FAILED."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class QueueStatus(StrEnum):
    """A queued config: QUEUED until a trial takes it (RUNNING), then DONE or FAILED; PAUSED and
    CANCELLED by ``redline queue pause`` / ``cancel``."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class TrainingRunRecord:
    """One trained config of a Tune experiment: one row per ``config_hash``, ever.

    ``experiment`` is the ``runs`` row of the Tune experiment (``tune-<grid_hash[:12]>``).
    ``metrics``/``per_regime`` are the training report's out-of-sample scores; the inference grid's
    scores are ``InferenceBacktestRecord`` rows. ``model_path`` is relative to REDLINE_HOME.
    ``stage`` and ``kept`` are the model's lifecycle stage and the operator's "keep this file" flag:
    written when the row is created, changed only by ``TrainingStore.set_stage``/``set_kept``.
    """

    config_hash: str
    experiment: str
    specialty: str
    dataset: str
    config: dict[str, Any]
    seed: int
    status: TrainingStatus = TrainingStatus.PENDING
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    per_regime: dict[str, dict[str, float]] = field(default_factory=dict)
    sharpe: float | None = None
    max_drawdown: float | None = None
    hit_rate: float | None = None
    model_path: str | None = None
    model_sha256: str | None = None
    dataset_digest: str = ""
    train_seconds: float | None = None
    stage: Stage = Stage.DISCOVERY
    kept: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        check.key(self, "config_hash")
        check.key(self, "experiment")
        check.key(self, "specialty", length=32)
        check.key(self, "dataset", length=128)
        check.mapping(self, "config")
        check.seed(self, "seed")
        check.member(self, "status", TrainingStatus)
        check.text(self, "reason", empty=True)
        check.assign(self, "metrics", check.floats(self, "metrics", self.metrics))
        check.per_regime(self)
        for name in ("sharpe", "max_drawdown", "hit_rate", "train_seconds"):
            check.finite_or_none(self, name)
        check.optional_text(self, "model_path")
        check.optional_text(self, "model_sha256")
        check.text(self, "dataset_digest", empty=True)
        check.member(self, "stage", Stage)
        check.flag(self, "kept")
        check.stamp(self, "created_at")
        check.stamp(self, "updated_at")

    @property
    def agent_id(self) -> str:
        """The model's id in ``regime_best_models``: ``tr-<config_hash[:12]>``."""
        return f"tr-{self.config_hash[:12]}"


@dataclass(frozen=True)
class InferenceBacktestRecord:
    """One inference config (threshold, horizon, size) of a trained model, backtested out of sample.

    ``per_regime`` holds each regime's metrics (``bars``, ``sharpe``, and ``skew``/``kurtosis``
    when computable, for the Deflated Sharpe Ratio).
    """

    config_hash: str
    inference_hash: str
    inference: dict[str, float]
    metrics: dict[str, float]
    per_regime: dict[str, dict[str, float]]
    sharpe: float | None
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        check.key(self, "config_hash")
        check.key(self, "inference_hash")
        check.assign(self, "inference", check.floats(self, "inference", self.inference))
        check.assign(self, "metrics", check.floats(self, "metrics", self.metrics))
        check.per_regime(self)
        check.finite_or_none(self, "sharpe")
        check.stamp(self, "created_at")


@dataclass(frozen=True)
class QueueItemRecord:
    """One config of the training queue. ``position`` orders the queue (the store numbers new
    items after the last one); ``attempts`` counts the times a trial took it (moved to RUNNING)."""

    config_hash: str
    grid: str
    grid_hash: str
    specialty: str
    config: dict[str, Any]
    status: QueueStatus = QueueStatus.QUEUED
    position: int = 0
    attempts: int = 0
    reason: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        check.key(self, "config_hash")
        check.key(self, "grid", length=128)
        check.key(self, "grid_hash")
        check.key(self, "specialty", length=32)
        check.mapping(self, "config")
        check.member(self, "status", QueueStatus)
        check.count(self, "position")
        check.count(self, "attempts")
        check.text(self, "reason", empty=True)
        check.stamp(self, "created_at")
        check.stamp(self, "updated_at")
