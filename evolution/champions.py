"""Champions per (specialty, regime) and the model lifecycle: pure rules, no Ray, no database.

A **challenger** (a model's out-of-sample result in one regime) replaces the **incumbent** champion
of that (specialty, regime) only when all of these hold (:func:`decide`):

1. **Enough bars.** The challenger was scored on at least ``min_regime_bars`` out-of-sample bars
   of the regime (default 200): fewer is too short a record to judge.
2. **It survives the search.** Its Deflated Sharpe Ratio (``market.overfitting``, Bailey and López
   de Prado 2014) is at least ``dsr_threshold`` (default 0.95). The DSR is the probability that
   the true Sharpe exceeds the best Sharpe expected from the search by luck alone; it is computed
   on the **per-period** Sharpe (annualized / ``sqrt(periods_per_year)``) with ``n_obs`` = the
   regime's out-of-sample bars, the challenger's skewness and (non-excess) kurtosis when its
   metrics carry them (``"skew"``, ``"kurtosis"``; else normal returns: 0 and 3), and ``n_trials``
   and the Sharpe variance of **every config tried so far** for that specialty and regime (the
   challenger included; ``ddof=1``, and 0 for a single trial).
3. **It makes money.** Its out-of-sample Sharpe in the regime is positive, whatever the other
   thresholds are set to (the smoke grids lower them): a losing model is never crowned.
4. **It beats the champion by the margin.** Its annualized out-of-sample Sharpe in the regime
   exceeds the incumbent's by at least ``margin`` (default 0.25). With no incumbent (or one with
   no Sharpe) only rules 1 to 3 apply.

Every :class:`Decision` carries a reason that says the numbers, e.g. ``"refused: DSR 0.41 < 0.95
over 812 trials"``; a refusal lists every rule that failed.

**Classifiers** (a specialty whose task is ``classify``, e.g. the rug-pull detector) have no
Sharpe: :func:`decide_classifier` judges their out-of-sample AUC (over every row of a stratified
K-fold, ``agents.training``) with DeLong's standard error (``agents.scoring.auc_interval``), one
row for every regime (``store.records.champions.ALL_REGIMES``). A challenger is crowned when

1. **Its interval clears the floor.** The lower bound of its two-sided AUC interval at ``level``
   (default 0.95: ``AUC - 1.96 se``) is at least ``auc_floor`` (default 0.85);
2. **It beats the champion by the margin.** Its AUC exceeds the incumbent's by at least
   ``margin`` (default 0.01). With no incumbent only rule 1 applies.

E.g. ``"promoted: AUC 0.981 [0.978, 0.984] over 14,628 rows (13,312 positive, 1,316 negative),
lower bound 0.978 >= 0.85, beats the champion's 0.950 by 0.031 >= 0.01"``. The interval is the
chosen model's own and is not deflated for the search that chose it (the Sharpe rules' DSR is):
``Decision.n_trials`` is 1 and ``dsr`` None.

Lifecycle (:func:`next_stage`; ``store.records.champions.Stage``)::

    DISCOVERY --validated--> VALIDATION --promoted--> PAPER --live record: >= min_live_trades,
    hit rate >= 0.5--> MATURE;  PAPER/MATURE --live record: >= min_live_trades, hit rate < 0.5-->
    DECAY;  PAPER/MATURE/DECAY --dethroned--> RETIRED;  DECAY --live record still failing--> RETIRED

- ``validated``: the DSR and bars rules pass (DISCOVERY or VALIDATION -> VALIDATION).
- ``promoted``: made champion (DISCOVERY or VALIDATION -> PAPER; a promotion implies validation).
- ``dethroned``: a champion (PAPER, MATURE, DECAY) replaced by a challenger -> RETIRED.
- ``live_record(trades, hit_rate)``: the champion's live trades (issue 6 feedback). Fewer than
  ``min_live_trades`` trades is not yet evidence: the stage stays. A recovered DECAY model stays
  DECAY (a decayed model is never promoted back; a new champion dethrones it).

**A classifier's live record** (:func:`classifier_live_step`; the rug-pull detector, whose answers
get a token's outcome through ``POST /v1/rugpull/feedback``) is not a hit rate (calling every token
a rug pull scores 0.9 when 9 in 10 are): it is the **live AUC** of the champion's labelled answers
with DeLong's interval at ``classifier.level`` (:class:`ClassifierLiveRecord`). It needs
``classifier.min_live_labels`` labelled answers (default 50) with at least 2 of each outcome;
less is not yet evidence and the stage stays. Then PAPER -> MATURE when the interval's lower
bound reaches ``auc_floor``; PAPER/MATURE -> DECAY when its upper bound is below ``auc_floor``;
DECAY -> RETIRED when it still is; otherwise the stage stays (a recovered DECAY stays DECAY).
``next_stage`` takes a :class:`ClassifierLiveRecord` as it takes a :func:`live_record`.

RETIRED is final: every event on it is an error, as is an event a stage cannot take (e.g. a live
record of a model that never traded). Errors name the stage, the event and the allowed ones.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from agents.scoring import auc_bounds, auc_interval
from market.overfitting import deflated_sharpe_ratio, per_period_sharpe
from store.records.champions import Stage

__all__ = [
    "EVENTS",
    "LIVE_HIT_RATE",
    "Candidate",
    "ChampionPolicy",
    "ClassifierCandidate",
    "ClassifierLiveRecord",
    "ClassifierPolicy",
    "Decision",
    "LiveRecord",
    "LiveStep",
    "classifier_live_evidence",
    "classifier_live_record",
    "classifier_live_step",
    "decide",
    "decide_classifier",
    "live_record",
    "next_stage",
]

logger = logging.getLogger(__name__)

#: The named lifecycle events; the fourth kind of event is a :class:`LiveRecord`.
EVENTS: tuple[str, ...] = ("validated", "promoted", "dethroned")
#: A live hit rate below this (over ``min_live_trades`` trades or more) is decay (DESIGN.md).
LIVE_HIT_RATE = 0.5

Event = Literal["validated", "promoted", "dethroned"]


@dataclass(frozen=True)
class ClassifierPolicy:
    """The thresholds of the classifier rules (``champions.classifier:`` in
    ``configs/defaults.yaml``): ``auc_floor`` the AUC the interval's lower bound must reach,
    ``margin`` the AUC a challenger must beat the champion's by, ``level`` the interval's
    two-sided confidence level, ``min_live_labels`` the labelled live answers before a
    champion's live AUC moves its stage (:func:`classifier_live_step`)."""

    auc_floor: float = 0.85
    margin: float = 0.01
    level: float = 0.95
    min_live_labels: int = 50

    def __post_init__(self) -> None:
        if not (_real(self.auc_floor) and 0.0 <= self.auc_floor <= 1.0):
            raise ValueError(
                f"ClassifierPolicy.auc_floor must be between 0 and 1; got {self.auc_floor!r}"
            )
        if not (_real(self.margin) and 0.0 <= self.margin < 1.0):
            raise ValueError(
                f"ClassifierPolicy.margin must be a number >= 0 and < 1; got {self.margin!r}"
            )
        if not (_real(self.level) and 0.0 < self.level < 1.0):
            raise ValueError(
                f"ClassifierPolicy.level must be strictly between 0 and 1; got {self.level!r}"
            )
        if not (_integer(self.min_live_labels) and self.min_live_labels >= 4):
            # 4: the interval needs 2 answers of each outcome.
            raise ValueError(
                f"ClassifierPolicy.min_live_labels must be an integer >= 4; "
                f"got {self.min_live_labels!r}"
            )
        for name in ("auc_floor", "margin", "level"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "min_live_labels", int(self.min_live_labels))


@dataclass(frozen=True)
class ChampionPolicy:
    """The thresholds of the champion rules (``champions:`` in ``configs/defaults.yaml``).

    ``margin`` is in annualized Sharpe; ``dsr_threshold`` a probability; ``min_regime_bars`` the
    out-of-sample bars of a regime a challenger needs (at least 2: the DSR needs two returns);
    ``min_live_trades`` the live trades before a live record moves a champion's stage;
    ``classifier`` the rules of classifier specialties (:func:`decide_classifier`).
    """

    margin: float = 0.25
    dsr_threshold: float = 0.95
    min_regime_bars: int = 200
    min_live_trades: int = 20
    classifier: ClassifierPolicy = field(default_factory=ClassifierPolicy)

    def __post_init__(self) -> None:
        if not (_real(self.margin) and math.isfinite(self.margin) and self.margin >= 0):
            raise ValueError(
                f"ChampionPolicy.margin must be a finite number >= 0; got {self.margin!r}"
            )
        if not (_real(self.dsr_threshold) and 0.0 <= self.dsr_threshold <= 1.0):
            raise ValueError(
                f"ChampionPolicy.dsr_threshold must be between 0 and 1; got {self.dsr_threshold!r}"
            )
        if not (_integer(self.min_regime_bars) and self.min_regime_bars >= 2):
            raise ValueError(
                f"ChampionPolicy.min_regime_bars must be an integer >= 2; "
                f"got {self.min_regime_bars!r}"
            )
        if not (_integer(self.min_live_trades) and self.min_live_trades >= 1):
            raise ValueError(
                f"ChampionPolicy.min_live_trades must be an integer >= 1; "
                f"got {self.min_live_trades!r}"
            )
        if not isinstance(self.classifier, ClassifierPolicy):
            raise ValueError(
                f"ChampionPolicy.classifier must be a ClassifierPolicy; got {self.classifier!r}"
            )
        object.__setattr__(self, "margin", float(self.margin))
        object.__setattr__(self, "dsr_threshold", float(self.dsr_threshold))
        object.__setattr__(self, "min_regime_bars", int(self.min_regime_bars))
        object.__setattr__(self, "min_live_trades", int(self.min_live_trades))


@dataclass(frozen=True)
class Candidate:
    """One model's out-of-sample result in one regime, as the rules see it.

    ``name`` is the model's identity (``"<run_id>/<agent_id>"``), ``sharpe`` its annualized Sharpe
    in the regime (None when it has none), ``bars`` the regime's out-of-sample bars it was scored
    on, ``skew`` and ``kurtosis`` (non-excess, 3 for normal returns) its per-bar return moments.
    """

    name: str
    sharpe: float | None
    bars: int
    skew: float = 0.0
    kurtosis: float = 3.0
    metrics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Candidate.name must be a non-empty string; got {self.name!r}")
        if self.sharpe is not None:
            if not _real(self.sharpe):
                raise ValueError(
                    f"Candidate.sharpe of {self.name!r} must be a number or None; "
                    f"got {self.sharpe!r}"
                )
            sharpe = float(self.sharpe)
            object.__setattr__(self, "sharpe", sharpe if math.isfinite(sharpe) else None)
        if not (_integer(self.bars) and self.bars >= 0):
            raise ValueError(
                f"Candidate.bars of {self.name!r} must be a non-negative integer; got {self.bars!r}"
            )
        object.__setattr__(self, "bars", int(self.bars))
        for name in ("skew", "kurtosis"):
            value = getattr(self, name)
            if not (_real(value) and math.isfinite(value)):
                raise ValueError(
                    f"Candidate.{name} of {self.name!r} must be a finite number; got {value!r}"
                )
            object.__setattr__(self, name, float(value))
        if self.kurtosis < 1.0 + self.skew**2 - 1e-9:
            # Sample moments always satisfy this; an excess kurtosis passed by mistake does not.
            raise ValueError(
                f"Candidate.kurtosis of {self.name!r} must be the non-excess kurtosis, at least "
                f"1 + skew^2 = {1.0 + self.skew**2:.4g}; got {self.kurtosis!r}"
            )
        object.__setattr__(self, "metrics", dict(self.metrics))

    @classmethod
    def from_metrics(cls, name: str, metrics: Mapping[str, float]) -> Candidate:
        """A candidate from one regime's metrics (``"sharpe"``, ``"bars"``, and ``"skew"`` and
        ``"kurtosis"`` when present and usable, else normal returns)."""
        sharpe = metrics.get("sharpe")
        bars = metrics.get("bars", 0)
        bars = int(bars) if _real(bars) and math.isfinite(bars) and bars >= 0 else 0
        skew, kurtosis = metrics.get("skew"), metrics.get("kurtosis")
        moments = (0.0, 3.0)
        if (
            skew is not None
            and kurtosis is not None
            and math.isfinite(skew)
            and math.isfinite(kurtosis)
        ):
            if kurtosis >= 1.0 + skew**2 - 1e-9:
                moments = (float(skew), float(kurtosis))
            else:
                logger.warning(
                    "%s: skew %s and kurtosis %s are inconsistent (not sample moments with a "
                    "non-excess kurtosis); the DSR assumes normal returns",
                    name,
                    skew,
                    kurtosis,
                )
        return cls(
            name=name,
            sharpe=sharpe,
            bars=bars,
            skew=moments[0],
            kurtosis=moments[1],
            metrics=metrics,
        )


@dataclass(frozen=True)
class Decision:
    """What the rules decided for a challenger.

    ``stage`` is the challenger's lifecycle stage after the decision (PAPER when promoted,
    VALIDATION when the DSR and bars rules passed, else DISCOVERY); ``dsr`` is None when it could
    not be computed (no Sharpe, fewer than 2 bars); ``n_trials`` counts the configs the DSR
    deflated by.
    """

    promote: bool
    stage: Stage
    reason: str
    dsr: float | None
    n_trials: int


def decide(
    challenger: Candidate,
    incumbent: Candidate | None,
    trial_sharpes: Sequence[float],
    policy: ChampionPolicy,
    periods_per_year: float,
) -> Decision:
    """Apply the champion rules (module docstring) to ``challenger`` against ``incumbent``.

    ``trial_sharpes`` are the annualized Sharpes of every config tried so far for the specialty
    and regime, the challenger's included (it is added when no value equals its Sharpe);
    non-finite values are dropped. ``periods_per_year`` converts to per-period Sharpes
    (``market.timeframes.bars_per_year(timeframe)``).
    """
    if not (_real(periods_per_year) and math.isfinite(periods_per_year) and periods_per_year > 0):
        raise ValueError(f"periods_per_year must be a positive number; got {periods_per_year!r}")
    if incumbent is not None and incumbent.name == challenger.name:
        raise ValueError(
            f"challenger {challenger.name!r} is the incumbent champion: nothing to decide"
        )
    trials = [float(s) for s in trial_sharpes if _real(s) and math.isfinite(s)]
    sharpe = challenger.sharpe
    if sharpe is not None and sharpe not in trials:
        trials.append(sharpe)
    n_trials = max(len(trials), 1)
    if sharpe is None:
        return Decision(
            False,
            Stage.DISCOVERY,
            "refused: no finite out-of-sample Sharpe in this regime",
            None,
            n_trials,
        )

    failures: list[str] = []
    dsr: float | None = None
    if not sharpe > 0:  # whatever the thresholds (the smoke grids lower them): never crown a loser
        failures.append(f"Sharpe {sharpe:.2f} is not positive")
    if challenger.bars < policy.min_regime_bars:
        failures.append(f"{challenger.bars} out-of-sample bars < {policy.min_regime_bars} required")
    if challenger.bars >= 2:
        dsr = _dsr(challenger, trials, periods_per_year)
        if dsr < policy.dsr_threshold:
            failures.append(
                f"DSR {dsr:.2f} < {policy.dsr_threshold:.2f} over {n_trials} "
                f"{_plural(n_trials, 'trial')}"
            )
    validated = not failures
    stage = next_stage(Stage.DISCOVERY, "validated") if validated else Stage.DISCOVERY

    beat = ""
    if incumbent is not None and incumbent.sharpe is not None:
        gain = sharpe - incumbent.sharpe
        if gain <= 0 or gain < policy.margin:
            failures.append(
                f"Sharpe {sharpe:.2f} does not beat the champion's {incumbent.sharpe:.2f} "
                f"by the margin {policy.margin:.2f} (needs {incumbent.sharpe + policy.margin:.2f})"
            )
        beat = f", beats the champion's {incumbent.sharpe:.2f} by {gain:.2f} >= {policy.margin:.2f}"
    elif incumbent is not None:
        beat = ", the champion has no Sharpe"
    else:
        beat = ", no champion yet"

    if failures:
        return Decision(False, stage, "refused: " + "; ".join(failures), dsr, n_trials)
    assert dsr is not None  # validated: bars >= min_regime_bars >= 2
    reason = (
        f"promoted: Sharpe {sharpe:.2f} over {challenger.bars} bars, DSR {dsr:.2f} >= "
        f"{policy.dsr_threshold:.2f} over {n_trials} {_plural(n_trials, 'trial')}{beat}"
    )
    return Decision(True, next_stage(stage, "promoted"), reason, dsr, n_trials)


def _dsr(challenger: Candidate, trials: list[float], periods_per_year: float) -> float:
    assert challenger.sharpe is not None
    per_trial = [per_period_sharpe(s, periods_per_year) for s in trials]
    n = len(per_trial)
    mean = sum(per_trial) / n
    variance = sum((s - mean) ** 2 for s in per_trial) / (n - 1) if n > 1 else 0.0
    return deflated_sharpe_ratio(
        per_period_sharpe(challenger.sharpe, periods_per_year),
        challenger.bars,
        n_trials=n,
        sharpe_variance=variance,
        skew=challenger.skew,
        kurtosis=challenger.kurtosis,
    )


# -- classifiers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifierCandidate:
    """A classifier's out-of-sample result as the rules see it: ``auc`` and its DeLong standard
    error ``auc_se`` over ``n_pos`` positive and ``n_neg`` negative rows (NaN: not known)."""

    name: str
    auc: float
    auc_se: float
    n_pos: int
    n_neg: int

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(
                f"ClassifierCandidate.name must be a non-empty string; got {self.name!r}"
            )
        for name in ("auc", "auc_se"):
            value = getattr(self, name)
            if not _real(value):
                raise ValueError(
                    f"ClassifierCandidate.{name} of {self.name!r} must be a number; got {value!r}"
                )
            object.__setattr__(self, name, float(value))
        for name in ("n_pos", "n_neg"):
            value = getattr(self, name)
            if not (_integer(value) and value >= 0):
                raise ValueError(
                    f"ClassifierCandidate.{name} of {self.name!r} must be a non-negative "
                    f"integer; got {value!r}"
                )
            object.__setattr__(self, name, int(value))

    @classmethod
    def from_metrics(cls, name: str, metrics: Mapping[str, float]) -> ClassifierCandidate:
        """From a classify child's metrics (``auc``, ``auc_se``, ``n_pos``, ``n_neg``; missing
        or non-finite values read NaN and 0)."""

        def count(key: str) -> int:
            value = metrics.get(key, 0.0)
            return int(value) if _real(value) and math.isfinite(value) and value >= 0 else 0

        return cls(
            name=name,
            auc=float(metrics.get("auc", math.nan)),
            auc_se=float(metrics.get("auc_se", math.nan)),
            n_pos=count("n_pos"),
            n_neg=count("n_neg"),
        )

    def interval(self, level: float) -> tuple[float, float]:
        """``(low, high)`` at ``level``: ``auc -+ z se`` clipped to [0, 1] (NaN when unknown)."""
        return auc_bounds(self.auc, self.auc_se, level)


def decide_classifier(
    challenger: ClassifierCandidate,
    incumbent: ClassifierCandidate | None,
    policy: ClassifierPolicy,
) -> Decision:
    """Apply the classifier rules (module docstring) to ``challenger`` against ``incumbent``."""
    if incumbent is not None and incumbent.name == challenger.name:
        raise ValueError(
            f"challenger {challenger.name!r} is the incumbent champion: nothing to decide"
        )
    low, high = challenger.interval(policy.level)
    auc = challenger.auc
    rows = challenger.n_pos + challenger.n_neg
    if not math.isfinite(low):
        return Decision(
            False,
            Stage.DISCOVERY,
            f"refused: no AUC interval (it needs a finite AUC and standard error over at least "
            f"2 rows of each class; got AUC {auc:.3f}, {challenger.n_pos:,} positive and "
            f"{challenger.n_neg:,} negative rows)",
            None,
            1,
        )
    pct = f"{policy.level:.0%}".replace(".0%", "%")
    evidence = (
        f"AUC {auc:.3f} [{low:.3f}, {high:.3f}] at {pct} over {rows:,} rows "
        f"({challenger.n_pos:,} positive, {challenger.n_neg:,} negative)"
    )
    failures: list[str] = []
    if low < policy.auc_floor:
        failures.append(f"AUC lower bound {low:.3f} < {policy.auc_floor:.3f}")
    validated = not failures
    stage = next_stage(Stage.DISCOVERY, "validated") if validated else Stage.DISCOVERY
    if incumbent is not None and math.isfinite(incumbent.auc):
        gain = auc - incumbent.auc
        # A tolerance: AUCs are ratios of counts, and 0.96 - 0.95 is not 0.01 in floats.
        if gain <= 0 or gain < policy.margin - 1e-12:
            failures.append(
                f"AUC {auc:.3f} does not beat the champion's {incumbent.auc:.3f} by the margin "
                f"{policy.margin:.3f} (needs {incumbent.auc + policy.margin:.3f})"
            )
        beat = f", beats the champion's {incumbent.auc:.3f} by {gain:.3f} >= {policy.margin:.3f}"
    elif incumbent is not None:
        beat = ", the champion has no AUC"
    else:
        beat = ", no champion yet"
    if failures:
        return Decision(False, stage, f"refused: {'; '.join(failures)} ({evidence})", None, 1)
    reason = f"promoted: {evidence}, lower bound {low:.3f} >= {policy.auc_floor:.3f}{beat}"
    return Decision(True, next_stage(stage, "promoted"), reason, None, 1)


# -- lifecycle -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveRecord:
    """A champion's live trading so far: how many trades, and the share that made money."""

    trades: int
    hit_rate: float

    def __post_init__(self) -> None:
        if not (_integer(self.trades) and self.trades >= 0):
            raise ValueError(
                f"live_record trades must be a non-negative integer; got {self.trades!r}"
            )
        if not (_real(self.hit_rate) and 0.0 <= self.hit_rate <= 1.0):
            raise ValueError(f"live_record hit_rate must be between 0 and 1; got {self.hit_rate!r}")
        object.__setattr__(self, "trades", int(self.trades))
        object.__setattr__(self, "hit_rate", float(self.hit_rate))


def live_record(trades: int, hit_rate: float) -> LiveRecord:
    """The ``live_record(trades, hit_rate)`` event of :func:`next_stage`."""
    return LiveRecord(trades, hit_rate)


_NAMED: dict[str, dict[Stage, Stage]] = {
    "validated": {Stage.DISCOVERY: Stage.VALIDATION, Stage.VALIDATION: Stage.VALIDATION},
    "promoted": {Stage.DISCOVERY: Stage.PAPER, Stage.VALIDATION: Stage.PAPER},
    "dethroned": {
        Stage.PAPER: Stage.RETIRED,
        Stage.MATURE: Stage.RETIRED,
        Stage.DECAY: Stage.RETIRED,
    },
}
_TRADING = (Stage.PAPER, Stage.MATURE, Stage.DECAY)


def next_stage(
    stage: str,
    event: Event | LiveRecord | ClassifierLiveRecord,
    *,
    policy: ChampionPolicy | None = None,
) -> Stage:
    """The stage a model in ``stage`` moves to on ``event`` (module docstring).

    ``event`` is ``"validated"``, ``"promoted"``, ``"dethroned"``, a :func:`live_record` or a
    classifier's :class:`ClassifierLiveRecord`; ``policy`` gives ``min_live_trades`` and the
    classifier rules (default :class:`ChampionPolicy`'s). Raises ValueError on an unknown stage
    or event and on an event the stage cannot take.
    """
    if stage not in tuple(Stage):
        raise ValueError(f"stage must be one of {', '.join(Stage)}; got {stage!r}")
    stage = Stage(stage)
    if isinstance(event, ClassifierLiveRecord):
        return classifier_live_step(stage, event, (policy or ChampionPolicy()).classifier).stage
    if isinstance(event, LiveRecord):
        if stage not in _TRADING:
            raise ValueError(
                f"a live record needs a champion that trades ({', '.join(_TRADING)}); "
                f"got stage {stage.value!r}"
            )
        minimum = (policy or ChampionPolicy()).min_live_trades
        if event.trades < minimum:
            return stage  # not yet evidence either way
        failing = event.hit_rate < LIVE_HIT_RATE
        if stage == Stage.DECAY:
            return Stage.RETIRED if failing else Stage.DECAY
        if failing:
            return Stage.DECAY
        return Stage.MATURE
    if event not in _NAMED:
        raise ValueError(
            f"event must be one of {', '.join(EVENTS)}, a live_record(trades, hit_rate) or a "
            f"ClassifierLiveRecord; "
            f"got {event!r}"
        )
    moves = _NAMED[event]
    if stage not in moves:
        raise ValueError(
            f"event {event!r} cannot move a model in stage {stage.value!r}; it applies to "
            f"{', '.join(moves)}"
        )
    return moves[stage]


@dataclass(frozen=True)
class ClassifierLiveRecord:
    """A classifier champion's labelled live answers: the AUC of their probabilities against the
    outcomes reported, DeLong's standard error (NaN with fewer than 2 of an outcome) and the
    count of each outcome (``n_pos``: rug pulls)."""

    auc: float
    auc_se: float
    n_pos: int
    n_neg: int

    def __post_init__(self) -> None:
        for name in ("auc", "auc_se"):
            value = getattr(self, name)
            if not _real(value):
                raise ValueError(f"ClassifierLiveRecord.{name} must be a number; got {value!r}")
            object.__setattr__(self, name, float(value))
        if math.isfinite(self.auc) and not 0.0 <= self.auc <= 1.0:
            raise ValueError(f"ClassifierLiveRecord.auc must be between 0 and 1; got {self.auc!r}")
        for name in ("n_pos", "n_neg"):
            value = getattr(self, name)
            if not (_integer(value) and value >= 0):
                raise ValueError(
                    f"ClassifierLiveRecord.{name} must be a non-negative integer; got {value!r}"
                )
            object.__setattr__(self, name, int(value))

    @property
    def labels(self) -> int:
        """The labelled answers counted."""
        return self.n_pos + self.n_neg


def classifier_live_record(
    outcomes: Sequence[bool] | np.ndarray, probabilities: Sequence[float] | np.ndarray
) -> ClassifierLiveRecord:
    """The live record of labelled answers: ``outcomes[i]`` what the token turned out to be (True:
    a rug pull), ``probabilities[i]`` what the champion answered (``agents.scoring.auc_interval``).
    """
    found = auc_interval(np.asarray(outcomes, dtype=bool).astype(int),
                         np.asarray(probabilities, dtype=np.float64))  # fmt: skip
    return ClassifierLiveRecord(found.auc, found.se, found.n_pos, found.n_neg)


def _counts(record: ClassifierLiveRecord) -> str:
    return f"{record.labels:,} labelled answers ({record.n_pos:,} rug pulls, {record.n_neg:,} not)"


def classifier_live_evidence(record: ClassifierLiveRecord, policy: ClassifierPolicy) -> str:
    """``record`` in words: ``"live AUC 0.981 [0.962, 1.000] at 95% over 300 labelled answers
    (270 rug pulls, 30 not)"`` (the interval at ``policy.level``; "no live AUC interval" without
    one)."""
    low, high = auc_bounds(record.auc, record.auc_se, policy.level)
    if not math.isfinite(low):
        return f"no live AUC interval over {_counts(record)}"
    pct = f"{policy.level:.0%}".replace(".0%", "%")
    return f"live AUC {record.auc:.3f} [{low:.3f}, {high:.3f}] at {pct} over {_counts(record)}"


@dataclass(frozen=True)
class LiveStep:
    """Where a live record moves a champion, and why (the numbers)."""

    stage: Stage
    reason: str


def classifier_live_step(
    stage: str, record: ClassifierLiveRecord, policy: ClassifierPolicy
) -> LiveStep:
    """The classifier's live rule (module docstring): the stage ``record`` moves a champion in
    ``stage`` to, with the reason, e.g. ``"DECAY: live AUC 0.412 [0.301, 0.523] at 95% over 120
    labelled answers (108 rug pulls, 12 not), upper bound 0.523 < 0.850"``."""
    if stage not in tuple(Stage):
        raise ValueError(f"stage must be one of {', '.join(Stage)}; got {stage!r}")
    stage = Stage(stage)
    if stage not in _TRADING:
        raise ValueError(
            f"a live record needs a champion that answers ({', '.join(_TRADING)}); "
            f"got stage {stage.value!r}"
        )
    counts = _counts(record)
    if record.labels < policy.min_live_labels:
        return LiveStep(stage, f"stays {stage}: {counts} < {policy.min_live_labels:,} required "
                               "(min_live_labels)")  # fmt: skip
    low, high = auc_bounds(record.auc, record.auc_se, policy.level)
    if not math.isfinite(low):
        return LiveStep(stage, f"stays {stage}: no live AUC interval over {counts}: it needs at "
                               "least 2 answers of each outcome")  # fmt: skip
    evidence = classifier_live_evidence(record, policy)
    floor = policy.auc_floor
    failing = high < floor
    if stage == Stage.DECAY:
        if failing:
            return LiveStep(Stage.RETIRED,
                            f"RETIRED: still failing: {evidence}, upper bound {high:.3f} < "
                            f"{floor:.3f}")  # fmt: skip
        return LiveStep(stage, f"stays DECAY: {evidence}, upper bound {high:.3f} >= {floor:.3f} "
                               "(a decayed champion is never promoted back)")  # fmt: skip
    if failing:
        return LiveStep(Stage.DECAY, f"DECAY: {evidence}, upper bound {high:.3f} < {floor:.3f}")
    if low >= floor:
        return LiveStep(Stage.MATURE,
                        f"MATURE: {evidence}, lower bound {low:.3f} >= {floor:.3f}")  # fmt: skip
    return LiveStep(stage, f"stays {stage}: {evidence}, the interval straddles {floor:.3f}")


# -- helpers ---------------------------------------------------------------------------------------


def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"
