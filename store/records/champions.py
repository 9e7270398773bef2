"""The rows of ``regime_best_models`` and ``promotions`` as frozen records, with the model
lifecycle's stages and the champion decisions: what ``store.champions.ChampionStore`` takes and
gives."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from store.records import checks as check

__all__ = [
    "ALL_REGIMES",
    "ModelSource",
    "PromotionDecision",
    "PromotionRecord",
    "RegimeBestRecord",
    "Stage",
]


#: The ``regime`` of a classifier's row (a specialty whose task is ``classify``, e.g. the rug-pull
#: detector): its evidence (an out-of-sample AUC over tokens) is not split by market regime, so it
#: has one row per run and one champion, for every regime (``evolution.champions.decide_classifier``).
ALL_REGIMES = "all"


class Stage(StrEnum):
    """A model's lifecycle (DESIGN.md): candidates enter at DISCOVERY; the rules that move them on
    are ``evolution.champions``."""

    DISCOVERY = "DISCOVERY"
    VALIDATION = "VALIDATION"
    PAPER = "PAPER"
    MATURE = "MATURE"
    DECAY = "DECAY"
    RETIRED = "RETIRED"


class PromotionDecision(StrEnum):
    """What was decided on a challenger for a champion (``promotions.decision``)."""

    PROMOTED = "PROMOTED"
    REFUSED = "REFUSED"


class ModelSource(StrEnum):
    """Where a model of ``regime_best_models`` was found."""

    EVOLUTION = "evolution"
    TUNE = "tune"


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
    stage: Stage = Stage.DISCOVERY
    updated_at: datetime | None = None
    source: ModelSource = ModelSource.EVOLUTION
    is_champion: bool = False
    dsr: float | None = None
    n_trials: int | None = None
    checkpoint_path: str | None = None
    checkpoint_sha256: str | None = None
    inference: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("run_id", "specialty", "regime", "agent_id"):
            check.text(self, name)
        check.finite_or_none(self, "sharpe")
        check.assign(self, "metrics", check.floats(self, "metrics", self.metrics))
        check.member(self, "stage", Stage)
        check.stamp(self, "updated_at")
        check.member(self, "source", ModelSource)
        check.flag(self, "is_champion")
        check.finite_or_none(self, "dsr")
        check.count(self, "n_trials", optional=True)
        check.optional_text(self, "checkpoint_path")
        check.optional_text(self, "checkpoint_sha256")
        check.assign(self, "inference", check.floats(self, "inference", self.inference))

    @property
    def model(self) -> str:
        """The model's identity, ``<run_id>/<agent_id>`` (as promotions name it)."""
        return f"{self.run_id}/{self.agent_id}"


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
    decision: PromotionDecision
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
        check.key(self, "specialty", length=32)
        check.key(self, "regime", length=32)
        check.member(self, "decision", PromotionDecision)
        check.text(self, "challenger")
        check.optional_text(self, "incumbent")
        check.text(self, "reason", empty=True)
        check.mapping(self, "before")
        check.mapping(self, "after")
        check.finite_or_none(self, "dsr")
        check.count(self, "n_trials")
        margin = self.margin
        if isinstance(margin, bool) or not isinstance(margin, numbers.Real):
            raise ValueError(f"PromotionRecord.margin must be a number; got {margin!r}")
        check.assign(self, "margin", float(margin))
        check.stamp(self, "created_at")
        check.count(self, "id", optional=True)
