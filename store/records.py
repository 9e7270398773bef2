"""The rows of the population, of training and of serving's feedback as frozen dataclasses of plain
Python values: what ``RunStore``, ``TrainingStore`` and ``TradesStore`` take and give.

One record per table (``runs``, ``agents``, ``generations``, ``kills``, ``regime_best_models``;
``training_runs``, ``inference_backtests``, ``training_queue``, ``promotions``; ``predictions``,
``trades``, ``trade_attributions``). Fields have the column names, except that the JSON text
columns ``config_json``, ``metrics_json``, ``per_regime_json``, ``inference_json``,
``before_json``, ``after_json`` and ``members_json`` are the decoded ``config``, ``metrics``,
``per_regime``, ``inference``, ``before``, ``after`` and ``members`` (a tuple of
``PredictionMember``); ``parents``, ``operators``, ``objectives``, ``hall_of_fame`` are tuples and
``dataset_digests`` a dict.
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
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from market.regimes import RegimeRules

__all__ = [
    "AGENT_STATUSES",
    "FINISHED_AGENT_STATUSES",
    "KILL_REASONS",
    "LIFECYCLE_STAGES",
    "MODEL_SOURCES",
    "PROMOTION_DECISIONS",
    "QUEUE_STATUSES",
    "RUN_STATUSES",
    "TRADE_SIDES",
    "TRAINING_STATUSES",
    "AgentRecord",
    "AttributionRecord",
    "GenerationRecord",
    "InferenceBacktestRecord",
    "KillRecord",
    "PredictionMember",
    "PredictionRecord",
    "PromotionRecord",
    "QueueItemRecord",
    "RegimeBestRecord",
    "RunRecord",
    "TradeRecord",
    "TrainingRunRecord",
]

RUN_STATUSES: tuple[str, ...] = ("running", "finished", "failed")
#: PENDING: born, not scored yet. OK and FAILED are results (a failed child is a recorded result).
AGENT_STATUSES: tuple[str, ...] = ("PENDING", "OK", "FAILED")
FINISHED_AGENT_STATUSES: tuple[str, ...] = ("OK", "FAILED")
KILL_REASONS: tuple[str, ...] = ("FAILED", "LOW_HIT_RATE", "DOMINATED")
#: A model's lifecycle (DESIGN.md): candidates enter at DISCOVERY; the rules that move them on are
#: ``evolution.champions``.
LIFECYCLE_STAGES: tuple[str, ...] = (
    "DISCOVERY",
    "VALIDATION",
    "PAPER",
    "MATURE",
    "DECAY",
    "RETIRED",
)

#: A trained config's row: PENDING/RUNNING while a trial works on it, then DONE or FAILED.
TRAINING_STATUSES: tuple[str, ...] = ("PENDING", "RUNNING", "DONE", "FAILED", "CANCELLED")
#: A queued config: QUEUED until a trial takes it (RUNNING), then DONE or FAILED; PAUSED and
#: CANCELLED by ``redline queue pause`` / ``cancel``.
QUEUE_STATUSES: tuple[str, ...] = ("QUEUED", "RUNNING", "PAUSED", "DONE", "FAILED", "CANCELLED")
#: Where a model of ``regime_best_models`` was found.
MODEL_SOURCES: tuple[str, ...] = ("evolution", "tune")
PROMOTION_DECISIONS: tuple[str, ...] = ("PROMOTED", "REFUSED")

_MAX_SEED = 2**63  # a BIGINT column
_KEY_LENGTH = 64  # String(64) key columns: ids and SHA-256 hex digests


# -- checks and normalization (shared by the records) --------------------------------------------


def _set(record: object, name: str, value: object) -> None:
    object.__setattr__(record, name, value)


def _text(record: object, name: str, *, empty: bool = False) -> None:
    value = getattr(record, name)
    if not isinstance(value, str) or (not empty and not value):
        kind = "a string" if empty else "a non-empty string"
        raise ValueError(f"{type(record).__name__}.{name} must be {kind}; got {value!r}")


def _key(record: object, name: str, *, length: int = _KEY_LENGTH) -> None:
    """A non-empty string that fits its column (PostgreSQL would refuse a longer one, SQLite not)."""
    _text(record, name)
    value = getattr(record, name)
    if len(value) > length:
        raise ValueError(
            f"{type(record).__name__}.{name} must be at most {length} characters; got {value!r}"
        )


def _flag(record: object, name: str) -> None:
    value = getattr(record, name)
    if not isinstance(value, bool):
        raise ValueError(f"{type(record).__name__}.{name} must be True or False; got {value!r}")


def _mapping(record: object, name: str) -> None:
    value = getattr(record, name)
    if not isinstance(value, Mapping):
        raise ValueError(f"{type(record).__name__}.{name} must be a mapping; got {value!r}")
    _set(record, name, dict(value))


def _per_regime(record: object, name: str = "per_regime") -> None:
    value = getattr(record, name)
    if not isinstance(value, Mapping):
        raise ValueError(
            f"{type(record).__name__}.{name} must map regimes to metrics; got {value!r}"
        )
    _set(
        record,
        name,
        {
            str(regime): _floats(record, f"{name}[{regime!r}]", values)
            for regime, values in value.items()
        },
    )


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
    # The rest of the run's config (champion rules, regime rules, ...: every section of
    # ``RedlineConfig`` but ``evolve``), so a resume judges as the run began; {} for older runs.
    settings: dict[str, Any] = field(default_factory=dict)
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
        if not isinstance(self.settings, Mapping):
            raise ValueError(f"RunRecord.settings must be a mapping; got {self.settings!r}")
        _set(self, "settings", dict(self.settings))

    @property
    def regime_rules(self) -> RegimeRules | None:
        """The regime rules the run was judged under (``settings["regimes"]``: an evolution run's
        config, a Tune experiment's from ``queue add``); None for a run from before they were
        stored."""
        raw = self.settings.get("regimes")
        if raw is None:
            return None
        return RegimeRules.from_dict(raw, where=f"run {self.run_id} settings.regimes")
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
        _per_regime(self)
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
    """A run's best out-of-sample model for one (specialty, regime), and its lifecycle stage.

    ``run_id`` is an evolution run or a Tune experiment (``source``); for Tune the model is
    ``agent_id`` ``tr-<config_hash[:12]>``. At most one row per (specialty, regime), across every
    run, is the champion (``is_champion``, set by ``TrainingStore.promote`` only); ``dsr`` and
    ``n_trials`` are the Deflated Sharpe Ratio it was judged by and the number of configs counted.
    ``inference`` is the inference config (threshold, horizon, size) the metrics were scored with.
    """

    run_id: str
    specialty: str
    regime: str
    agent_id: str
    sharpe: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    stage: str = "DISCOVERY"
    updated_at: datetime | None = None
    source: str = "evolution"
    is_champion: bool = False
    dsr: float | None = None
    n_trials: int | None = None
    checkpoint_path: str | None = None
    checkpoint_sha256: str | None = None
    inference: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("run_id", "specialty", "regime", "agent_id"):
            _text(self, name)
        _finite_or_none(self, "sharpe")
        _set(self, "metrics", _floats(self, "metrics", self.metrics))
        _one_of(self, "stage", LIFECYCLE_STAGES)
        _stamp(self, "updated_at")
        _one_of(self, "source", MODEL_SOURCES)
        _flag(self, "is_champion")
        _finite_or_none(self, "dsr")
        _count(self, "n_trials", optional=True)
        _optional_text(self, "checkpoint_path")
        _optional_text(self, "checkpoint_sha256")
        _set(self, "inference", _floats(self, "inference", self.inference))

    @property
    def model(self) -> str:
        """The model's identity, ``<run_id>/<agent_id>`` (as promotions name it)."""
        return f"{self.run_id}/{self.agent_id}"


# -- training (Ray Tune) and champions -------------------------------------------------------------


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
    status: str = "PENDING"
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
    stage: str = "DISCOVERY"
    kept: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        _key(self, "config_hash")
        _key(self, "experiment")
        _key(self, "specialty", length=32)
        _key(self, "dataset", length=128)
        _mapping(self, "config")
        _seed(self, "seed")
        _one_of(self, "status", TRAINING_STATUSES)
        _text(self, "reason", empty=True)
        _set(self, "metrics", _floats(self, "metrics", self.metrics))
        _per_regime(self)
        for name in ("sharpe", "max_drawdown", "hit_rate", "train_seconds"):
            _finite_or_none(self, name)
        _optional_text(self, "model_path")
        _optional_text(self, "model_sha256")
        _text(self, "dataset_digest", empty=True)
        _one_of(self, "stage", LIFECYCLE_STAGES)
        _flag(self, "kept")
        _stamp(self, "created_at")
        _stamp(self, "updated_at")

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
        _key(self, "config_hash")
        _key(self, "inference_hash")
        _set(self, "inference", _floats(self, "inference", self.inference))
        _set(self, "metrics", _floats(self, "metrics", self.metrics))
        _per_regime(self)
        _finite_or_none(self, "sharpe")
        _stamp(self, "created_at")


@dataclass(frozen=True)
class QueueItemRecord:
    """One config of the training queue. ``position`` orders the queue (the store numbers new
    items after the last one); ``attempts`` counts the times a trial took it (moved to RUNNING)."""

    config_hash: str
    grid: str
    grid_hash: str
    specialty: str
    config: dict[str, Any]
    status: str = "QUEUED"
    position: int = 0
    attempts: int = 0
    reason: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        _key(self, "config_hash")
        _key(self, "grid", length=128)
        _key(self, "grid_hash")
        _key(self, "specialty", length=32)
        _mapping(self, "config")
        _one_of(self, "status", QUEUE_STATUSES)
        _count(self, "position")
        _count(self, "attempts")
        _text(self, "reason", empty=True)
        _stamp(self, "created_at")
        _stamp(self, "updated_at")


@dataclass(frozen=True)
class PromotionRecord:
    """One decision on a challenger for the champion of (specialty, regime), with the evidence.

    ``challenger`` and ``incumbent`` name models as ``<run_id>/<agent_id>`` (incumbent None when
    there was no champion); ``before``/``after`` are the metrics the decision compared (plain JSON
    values); ``dsr`` the challenger's Deflated Sharpe Ratio over ``n_trials`` configs, ``margin``
    the margin it had to beat the incumbent by. ``id`` and ``created_at`` are the store's.
    """

    specialty: str
    regime: str
    decision: str
    challenger: str
    incumbent: str | None
    reason: str
    before: dict[str, Any]
    after: dict[str, Any]
    dsr: float | None
    n_trials: int
    margin: float
    created_at: datetime | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        _key(self, "specialty", length=32)
        _key(self, "regime", length=32)
        _one_of(self, "decision", PROMOTION_DECISIONS)
        _text(self, "challenger")
        _optional_text(self, "incumbent")
        _text(self, "reason", empty=True)
        _mapping(self, "before")
        _mapping(self, "after")
        _finite_or_none(self, "dsr")
        _count(self, "n_trials")
        margin = self.margin
        if isinstance(margin, bool) or not isinstance(margin, numbers.Real):
            raise ValueError(f"PromotionRecord.margin must be a number; got {margin!r}")
        _set(self, "margin", float(margin))
        _stamp(self, "created_at")
        _count(self, "id", optional=True)


# -- serving's feedback: predictions, trades and their attribution ---------------------------------

#: The side of a reported trade: long profits when the price rises, short when it falls.
TRADE_SIDES: tuple[str, ...] = ("long", "short")
_VOTES = (-1, 0, 1)


def _finite(
    record: object, name: str, *, minimum: float | None = None, above: bool = False
) -> None:
    """A finite number (``> minimum`` with ``above``, else ``>= minimum``), stored as a float."""
    value = getattr(record, name)
    number = (
        float(value)
        if isinstance(value, numbers.Real) and not isinstance(value, bool)
        else math.nan
    )
    low_ok = minimum is None or (number > minimum if above else number >= minimum)
    if not (math.isfinite(number) and low_ok):
        rule = "" if minimum is None else f" {'>' if above else '>='} {minimum:g}"
        raise ValueError(
            f"{type(record).__name__}.{name} must be a finite number{rule}; got {value!r}"
        )
    _set(record, name, number)


def _vote(record: object, name: str) -> None:
    value = getattr(record, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value not in _VOTES:
        raise ValueError(f"{type(record).__name__}.{name} must be -1, 0 or 1; got {value!r}")
    _set(record, name, int(value))


@dataclass(frozen=True)
class PredictionMember:
    """One ensemble member as a prediction used it: the model (``run_id``/``agent_id``: agent ids
    are unique within a run only), its specialty and generation, the regime it is champion of,
    its vote (-1, 0, 1) and its weight in the combination."""

    run_id: str
    agent_id: str
    specialty: str
    regime: str
    generation: int
    vote: int
    weight: float

    def __post_init__(self) -> None:
        for name in ("run_id", "agent_id"):
            _key(self, name)
        for name in ("specialty", "regime"):
            _key(self, name, length=32)
        _count(self, "generation")
        _vote(self, "vote")
        _finite(self, "weight", minimum=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "agent_id": self.agent_id,
            "specialty": self.specialty,
            "regime": self.regime,
            "generation": self.generation,
            "vote": self.vote,
            "weight": self.weight,
        }


@dataclass(frozen=True)
class PredictionRecord:
    """What one ``/v1/predict`` answered, remembered for the feedback on it: its request id, the
    ensemble version, the live regime and the members that voted (empty when none could), and the
    series it read: ``exchange``, ``symbol``, ``timeframe`` and ``as_of`` (the open time, ms UTC,
    of its last candle), which feedback is checked against (None on predictions stored before
    they were remembered)."""

    request_id: str
    model_version: str
    regime: str
    members: tuple[PredictionMember, ...] = ()
    created_at: datetime | None = None
    exchange: str | None = None
    symbol: str | None = None
    timeframe: str | None = None
    as_of: int | None = None

    def __post_init__(self) -> None:
        _key(self, "request_id")
        _key(self, "model_version")
        _key(self, "regime", length=32)
        for name, length in (("exchange", 32), ("symbol", _KEY_LENGTH), ("timeframe", 8)):
            if getattr(self, name) is not None:
                _key(self, name, length=length)
        _count(self, "as_of", optional=True)
        members = self.members
        if isinstance(members, str | Mapping) or not all(
            isinstance(member, PredictionMember) for member in members
        ):
            raise ValueError(
                f"PredictionRecord.members must be a sequence of PredictionMember; got {members!r}"
            )
        _set(self, "members", tuple(members))
        _stamp(self, "created_at")


@dataclass(frozen=True)
class TradeRecord:
    """One trade a bot reported on the prediction ``request_id`` (at most one per request id).

    Times are ms UTC (``exit_ts >= entry_ts``); prices are positive; ``pnl`` is the trade's profit
    before ``fees`` (both in the quote currency); ``qty`` is optional. ``id`` and ``created_at``
    are the store's.
    """

    request_id: str
    model_version: str
    exchange: str
    symbol: str
    side: str
    entry_ts: int
    exit_ts: int
    entry_price: float
    exit_price: float
    pnl: float
    fees: float
    qty: float | None = None
    id: int | None = None
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        _key(self, "request_id")
        _key(self, "model_version")
        _key(self, "exchange", length=32)
        _key(self, "symbol")
        _one_of(self, "side", TRADE_SIDES)
        _count(self, "entry_ts")
        _count(self, "exit_ts")
        if self.exit_ts < self.entry_ts:
            raise ValueError(
                f"TradeRecord.exit_ts must not be before entry_ts ({self.entry_ts}); "
                f"got {self.exit_ts}"
            )
        _finite(self, "entry_price", minimum=0.0, above=True)
        _finite(self, "exit_price", minimum=0.0, above=True)
        _finite(self, "pnl")
        _finite(self, "fees", minimum=0.0)
        if self.qty is not None:
            _finite(self, "qty", minimum=0.0, above=True)
        _count(self, "id", optional=True)
        _stamp(self, "created_at")

    @property
    def net_pnl(self) -> float:
        """Profit after fees."""
        return self.pnl - self.fees

    @property
    def direction(self) -> int:
        """+1 for a long trade, -1 for a short one."""
        return 1 if self.side == "long" else -1

    def same_trade(self, other: TradeRecord) -> bool:
        """Equal as reported (the store's ``id`` and ``created_at`` aside)."""
        return replace(self, id=None, created_at=None) == replace(other, id=None, created_at=None)


@dataclass(frozen=True)
class AttributionRecord:
    """One member's share of a trade: whether its vote was right and the profit it contributed
    (``serving.feedback`` says how both are computed)."""

    trade_id: int
    run_id: str
    agent_id: str
    specialty: str
    regime: str
    vote: int
    weight: float
    was_correct: bool
    profit_contribution: float

    def __post_init__(self) -> None:
        _count(self, "trade_id")
        for name in ("run_id", "agent_id"):
            _key(self, name)
        for name in ("specialty", "regime"):
            _key(self, name, length=32)
        _vote(self, "vote")
        _finite(self, "weight", minimum=0.0)
        _flag(self, "was_correct")
        _finite(self, "profit_contribution")
