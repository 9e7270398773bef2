"""The population's rows (``runs``, ``agents``, ``generations``, ``kills``) as frozen records,
and the statuses they may take: what ``store.runs.RunStore`` takes and gives."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from market.regimes import RegimeRules
from store.records import checks as check

__all__ = [
    "ANCESTOR",
    "AgentRecord",
    "AgentStatus",
    "GenerationRecord",
    "KillReason",
    "KillRecord",
    "RunRecord",
    "RunStatus",
]


#: The operator of a generation-0 child carried over from an earlier run (the living loop's retrain
#: continues the hall of fame): its one parent is that run's agent, named by its full agent id.
ANCESTOR = "ancestor"


class RunStatus(StrEnum):
    """An evolution run's (or a Tune experiment's) status."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


class AgentStatus(StrEnum):
    """PENDING: born, not scored yet. OK and FAILED are results (a failed child is a recorded
    result)."""

    PENDING = "PENDING"
    OK = "OK"
    FAILED = "FAILED"


class KillReason(StrEnum):
    """Why the Mother killed a child."""

    FAILED = "FAILED"
    LOW_HIT_RATE = "LOW_HIT_RATE"
    DOMINATED = "DOMINATED"


@dataclass(frozen=True)
class RunRecord:
    """One evolution run. ``config`` is the run's config as plain JSON values (its hash beside it);
    ``dataset_digests`` maps each specialty to the digest of the dataset its children ate."""

    run_id: str
    config: dict[str, Any]
    config_hash: str
    root_seed: int
    generations_planned: int
    status: RunStatus = RunStatus.RUNNING
    generations_done: int = 0
    dataset_digests: dict[str, str] = field(default_factory=dict)
    # The rest of the run's config (champion rules, regime rules, ...: every section of
    # ``RedlineConfig`` but ``evolve``), so a resume judges as the run began; {} for older runs.
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        check.text(self, "run_id")
        if not isinstance(self.config, Mapping):
            raise ValueError(f"RunRecord.config must be a mapping; got {self.config!r}")
        check.assign(self, "config", dict(self.config))
        check.text(self, "config_hash")
        check.seed(self, "root_seed")
        check.count(self, "generations_planned")
        check.member(self, "status", RunStatus)
        check.count(self, "generations_done")
        digests = self.dataset_digests
        if not isinstance(digests, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in digests.items()
        ):
            raise ValueError(
                f"RunRecord.dataset_digests must map specialty names to digests; got {digests!r}"
            )
        check.assign(self, "dataset_digests", dict(digests))
        if not isinstance(self.settings, Mapping):
            raise ValueError(f"RunRecord.settings must be a mapping; got {self.settings!r}")
        check.assign(self, "settings", dict(self.settings))

    @property
    def regime_rules(self) -> RegimeRules | None:
        """The regime rules the run was judged under (``settings["regimes"]``: an evolution run's
        config, a Tune experiment's from ``queue add``); None for a run from before they were
        stored."""
        raw = self.settings.get("regimes")
        if raw is None:
            return None
        return RegimeRules.from_dict(raw, where=f"run {self.run_id} settings.regimes")
        check.stamp(self, "created_at")
        check.stamp(self, "updated_at")


@dataclass(frozen=True)
class AgentRecord:
    """One child: birth certificate, then (status OK or FAILED) its out-of-sample result.

    ``parents`` are agent ids of the same run (empty in generation 0, except a child carried over
    from an earlier run: operators ``(ANCESTOR,)`` and one parent, that run's agent); ``operators``
    the operator records that made it (``evolution.operators.OperatorRecord`` strings); ``objectives`` are all
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
    status: AgentStatus = AgentStatus.PENDING
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
            check.text(self, name)
        check.count(self, "generation")
        expected = hashlib.sha256(self.genome_json.encode()).hexdigest()
        if self.genome_digest != expected:
            raise ValueError(
                f"AgentRecord.genome_digest of {self.agent_id!r} must be the SHA-256 of its "
                f"genome_json ({expected}); got {self.genome_digest!r}"
            )
        check.seed(self, "seed")
        check.strings(self, "parents")
        check.strings(self, "operators")
        if self.agent_id in self.parents:
            raise ValueError(
                f"AgentRecord.parents of {self.agent_id!r} must not name the agent itself; "
                f"got {self.parents!r}"
            )
        carried = self.operators == (ANCESTOR,) and len(self.parents) == 1
        if self.parents and self.generation == 0 and not carried:
            raise ValueError(
                f"AgentRecord.parents of {self.agent_id!r} must be empty in generation 0 (or one "
                f"ancestor of an earlier run, with operators ({ANCESTOR!r},)); got "
                f"{self.parents!r}"
            )
        check.member(self, "status", AgentStatus)
        check.text(self, "reason", empty=True)
        try:
            check.assign(self, "objectives", tuple(float(value) for value in self.objectives))
        except (TypeError, ValueError):
            raise ValueError(
                f"AgentRecord.objectives must be a sequence of numbers; got {self.objectives!r}"
            ) from None
        for name in ("sharpe", "max_drawdown", "hit_rate", "train_seconds"):
            check.finite_or_none(self, name)
        check.assign(self, "metrics", check.floats(self, "metrics", self.metrics))
        check.per_regime(self)
        check.optional_text(self, "checkpoint_path")
        check.optional_text(self, "checkpoint_sha256")
        check.text(self, "dataset_digest", empty=True)
        check.text(self, "config_hash", empty=True)
        check.count(self, "killed_generation", optional=True)
        check.stamp(self, "created_at")
        check.stamp(self, "updated_at")


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
        check.text(self, "run_id")
        check.text(self, "specialty")
        for name in ("generation", "born", "evaluated", "failed", "killed", "alive"):
            check.count(self, name)
        check.finite_or_none(self, "best_fitness")
        check.finite_or_none(self, "median_fitness")
        check.optional_text(self, "best_agent_id")
        check.strings(self, "hall_of_fame")
        check.stamp(self, "finished_at")


@dataclass(frozen=True)
class KillRecord:
    """One death: the child, the generation whose scores killed it, the reason and its detail."""

    run_id: str
    agent_id: str
    generation: int
    reason: KillReason
    detail: str = ""
    killed_at: datetime | None = None

    def __post_init__(self) -> None:
        check.text(self, "run_id")
        check.text(self, "agent_id")
        check.count(self, "generation")
        check.member(self, "reason", KillReason)
        check.text(self, "detail", empty=True)
        check.stamp(self, "killed_at")
