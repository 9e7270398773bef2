"""The population's rows as frozen dataclasses of plain Python values: what ``RunStore`` takes and gives.

One record per table (``runs``, ``agents``, ``generations``, ``kills``, ``regime_best_models``).
Fields have the column names, except that the JSON text columns ``config_json``, ``metrics_json``
and ``per_regime_json`` are the decoded ``config``, ``metrics`` and ``per_regime``; ``parents``,
``operators``, ``objectives``, ``hall_of_fame`` are tuples and ``dataset_digests`` a dict.
``genome_json`` stays text: it is the canonical JSON that ``genome_digest`` hashes
(``agents.genome.Genome.to_json`` / ``from_json``).

Records check themselves when built; errors name the record, the field and the value. Values are
normalized so that what goes in is what comes back on both backends: numpy numbers become Python
ones, and a non-finite Sharpe, drawdown, hit rate or fitness becomes None (SQLite stores NaN as
NULL; PostgreSQL would sort it above every number). JSON fields keep NaN and infinities as Python's
``json`` writes them (``NaN``, ``Infinity``): metrics such as a Sortino ratio can be infinite.

Timestamps (``created_at``, ``updated_at``, ``killed_at``, ``finished_at``) are stamped by the store
in UTC; leave them None when writing (``killed_at`` and ``finished_at`` may be given).
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "AGENT_STATUSES",
    "FINISHED_AGENT_STATUSES",
    "KILL_REASONS",
    "LIFECYCLE_STAGES",
    "RUN_STATUSES",
    "AgentRecord",
    "GenerationRecord",
    "KillRecord",
    "RegimeBestRecord",
    "RunRecord",
]

RUN_STATUSES: tuple[str, ...] = ("running", "finished", "failed")
#: PENDING: born, not scored yet. OK and FAILED are results (a failed child is a recorded result).
AGENT_STATUSES: tuple[str, ...] = ("PENDING", "OK", "FAILED")
FINISHED_AGENT_STATUSES: tuple[str, ...] = ("OK", "FAILED")
KILL_REASONS: tuple[str, ...] = ("FAILED", "LOW_HIT_RATE", "DOMINATED")
#: A model's lifecycle (DESIGN.md). Evolution's champions enter at DISCOVERY; the promotion rules
#: that move them on come with the Tune issue.
LIFECYCLE_STAGES: tuple[str, ...] = (
    "DISCOVERY",
    "VALIDATION",
    "PAPER",
    "MATURE",
    "DECAY",
    "RETIRED",
)

_MAX_SEED = 2**63  # a BIGINT column


# -- checks and normalization (shared by the records) --------------------------------------------


def _set(record: object, name: str, value: object) -> None:
    object.__setattr__(record, name, value)


def _text(record: object, name: str, *, empty: bool = False) -> None:
    value = getattr(record, name)
    if not isinstance(value, str) or (not empty and not value):
        kind = "a string" if empty else "a non-empty string"
        raise ValueError(f"{type(record).__name__}.{name} must be {kind}; got {value!r}")


def _optional_text(record: object, name: str) -> None:
    if getattr(record, name) is not None:
        _text(record, name)


def _count(record: object, name: str, *, optional: bool = False) -> None:
    value = getattr(record, name)
    if optional and value is None:
        return
    # numbers.Integral: numpy integers from the Mother's arrays are accepted as the ints they are.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(
            f"{type(record).__name__}.{name} must be a non-negative integer; got {value!r}"
        )
    _set(record, name, int(value))


def _seed(record: object, name: str) -> None:
    _count(record, name)
    value = getattr(record, name)
    if value >= _MAX_SEED:
        raise ValueError(f"{type(record).__name__}.{name} must be below 2**63; got {value}")


def _one_of(record: object, name: str, allowed: tuple[str, ...]) -> None:
    value = getattr(record, name)
    if value not in allowed:
        raise ValueError(
            f"{type(record).__name__}.{name} must be one of {', '.join(allowed)}; got {value!r}"
        )


def _finite_or_none(record: object, name: str) -> None:
    value = getattr(record, name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{type(record).__name__}.{name} must be a number or None; got {value!r}")
    number = float(value)
    _set(record, name, number if math.isfinite(number) else None)


def _floats(record: object, name: str, values: Mapping[str, Any]) -> dict[str, float]:
    try:
        return {str(key): float(value) for key, value in values.items()}
    except (TypeError, ValueError, AttributeError):
        raise ValueError(
            f"{type(record).__name__}.{name} must map names to numbers; got {values!r}"
        ) from None


def _strings(record: object, name: str) -> None:
    value = getattr(record, name)
    if isinstance(value, str) or not all(isinstance(item, str) and item for item in value):
        raise ValueError(
            f"{type(record).__name__}.{name} must be a sequence of non-empty strings; got {value!r}"
        )
    _set(record, name, tuple(value))


def _stamp(record: object, name: str) -> None:
    value = getattr(record, name)
    if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
        raise ValueError(
            f"{type(record).__name__}.{name} must be a timezone-aware datetime or None; "
            f"got {value!r}"
        )


# -- the records -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """One evolution run. ``config`` is the run's config as plain JSON values (its hash beside it);
    ``dataset_digests`` maps each specialty to the digest of the dataset its children ate."""

    run_id: str
    config: dict[str, Any]
    config_hash: str
    root_seed: int
    generations_planned: int
    status: str = "running"
    generations_done: int = 0
    dataset_digests: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        _text(self, "run_id")
        if not isinstance(self.config, Mapping):
            raise ValueError(f"RunRecord.config must be a mapping; got {self.config!r}")
        _set(self, "config", dict(self.config))
        _text(self, "config_hash")
        _seed(self, "root_seed")
        _count(self, "generations_planned")
        _one_of(self, "status", RUN_STATUSES)
        _count(self, "generations_done")
        digests = self.dataset_digests
        if not isinstance(digests, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in digests.items()
        ):
            raise ValueError(
                f"RunRecord.dataset_digests must map specialty names to digests; got {digests!r}"
            )
        _set(self, "dataset_digests", dict(digests))
        _stamp(self, "created_at")
        _stamp(self, "updated_at")


@dataclass(frozen=True)
class AgentRecord:
    """One child: birth certificate, then (status OK or FAILED) its out-of-sample result.

    ``parents`` are agent ids of the same run (empty in generation 0); ``operators`` the operator
    records that made it (``evolution.operators.OperatorRecord`` strings); ``objectives`` are all
    maximized (direction and rank: ``(sharpe, max_drawdown, hit_rate)``; classify: ``(auc,
    precision, recall)``). ``killed_generation`` is written by ``RunStore.record_kill`` only.
    """

    run_id: str
    agent_id: str
    specialty: str
    generation: int
    genome_json: str
    genome_digest: str
    seed: int
    parents: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()
    status: str = "PENDING"
    reason: str = ""
    objectives: tuple[float, ...] = ()
    sharpe: float | None = None
    max_drawdown: float | None = None
    hit_rate: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    per_regime: dict[str, dict[str, float]] = field(default_factory=dict)
    train_seconds: float | None = None
    checkpoint_path: str | None = None
    checkpoint_sha256: str | None = None
    dataset_digest: str = ""
    config_hash: str = ""
    killed_generation: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("run_id", "agent_id", "specialty", "genome_json"):
            _text(self, name)
        _count(self, "generation")
        expected = hashlib.sha256(self.genome_json.encode()).hexdigest()
        if self.genome_digest != expected:
            raise ValueError(
                f"AgentRecord.genome_digest of {self.agent_id!r} must be the SHA-256 of its "
                f"genome_json ({expected}); got {self.genome_digest!r}"
            )
        _seed(self, "seed")
        _strings(self, "parents")
        if self.agent_id in self.parents:
            raise ValueError(
                f"AgentRecord.parents of {self.agent_id!r} must not name the agent itself; "
                f"got {self.parents!r}"
            )
        if self.parents and self.generation == 0:
            raise ValueError(
                f"AgentRecord.parents of {self.agent_id!r} must be empty in generation 0; "
                f"got {self.parents!r}"
            )
        _strings(self, "operators")
        _one_of(self, "status", AGENT_STATUSES)
        _text(self, "reason", empty=True)
        try:
            _set(self, "objectives", tuple(float(value) for value in self.objectives))
        except (TypeError, ValueError):
            raise ValueError(
                f"AgentRecord.objectives must be a sequence of numbers; got {self.objectives!r}"
            ) from None
        for name in ("sharpe", "max_drawdown", "hit_rate", "train_seconds"):
            _finite_or_none(self, name)
        _set(self, "metrics", _floats(self, "metrics", self.metrics))
        if not isinstance(self.per_regime, Mapping):
            raise ValueError(
                f"AgentRecord.per_regime must map regimes to metrics; got {self.per_regime!r}"
            )
        _set(
            self,
            "per_regime",
            {
                str(regime): _floats(self, f"per_regime[{regime!r}]", values)
                for regime, values in self.per_regime.items()
            },
        )
        _optional_text(self, "checkpoint_path")
        _optional_text(self, "checkpoint_sha256")
        _text(self, "dataset_digest", empty=True)
        _text(self, "config_hash", empty=True)
        _count(self, "killed_generation", optional=True)
        _stamp(self, "created_at")
        _stamp(self, "updated_at")


@dataclass(frozen=True)
class GenerationRecord:
    """One generation of one specialty as the Mother closed it: counts, fitness, hall of fame.

    ``best_fitness``/``median_fitness`` are the weighted scores of the usable children (None when
    none was usable); ``hall_of_fame`` lists agent ids, best first.
    """

    run_id: str
    generation: int
    specialty: str
    born: int
    evaluated: int
    failed: int
    killed: int
    alive: int
    best_fitness: float | None = None
    median_fitness: float | None = None
    best_agent_id: str | None = None
    hall_of_fame: tuple[str, ...] = ()
    finished_at: datetime | None = None

    def __post_init__(self) -> None:
        _text(self, "run_id")
        _text(self, "specialty")
        for name in ("generation", "born", "evaluated", "failed", "killed", "alive"):
            _count(self, name)
        _finite_or_none(self, "best_fitness")
        _finite_or_none(self, "median_fitness")
        _optional_text(self, "best_agent_id")
        _strings(self, "hall_of_fame")
        _stamp(self, "finished_at")


@dataclass(frozen=True)
class KillRecord:
    """One death: the child, the generation whose scores killed it, the reason and its detail."""

    run_id: str
    agent_id: str
    generation: int
    reason: str
    detail: str = ""
    killed_at: datetime | None = None

    def __post_init__(self) -> None:
        _text(self, "run_id")
        _text(self, "agent_id")
        _count(self, "generation")
        _one_of(self, "reason", KILL_REASONS)
        _text(self, "detail", empty=True)
        _stamp(self, "killed_at")


@dataclass(frozen=True)
class RegimeBestRecord:
    """A run's best out-of-sample child for one (specialty, regime), and its lifecycle stage."""

    run_id: str
    specialty: str
    regime: str
    agent_id: str
    sharpe: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    stage: str = "DISCOVERY"
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("run_id", "specialty", "regime", "agent_id"):
            _text(self, name)
        _finite_or_none(self, "sharpe")
        _set(self, "metrics", _floats(self, "metrics", self.metrics))
        _one_of(self, "stage", LIFECYCLE_STAGES)
        _stamp(self, "updated_at")
