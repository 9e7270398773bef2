"""Champions per (specialty, regime): the rules of ``evolution.champions`` applied to the store.

A finished model becomes a challenger in each regime it was scored in, and
``evolution.champions.decide`` judges it against the regime's champion (``ChampionStore.champion``),
deflating its Sharpe by every config tried so far for that specialty and regime
(``TrainingStore.regime_trial_sharpes``). Each decision is one transaction of the store's one
champion writer (``store.champions.ChampionStore``) that also logs it (``promotions``) with the
before and after state of both models:

- promoted: ``ChampionStore.promote``: the old champion is retired, the challenger's row becomes
  the champion (stage PAPER);
- refused: ``ChampionStore.refuse``: the challenger's row is written with the stage the rules gave
  it (VALIDATION when only the margin failed, else DISCOVERY) and the refusal is logged.

The two sources of models:

- :func:`consider_tune_run`: a finished Tune trial. In each regime its challenger is its best
  inference config there (``run_id`` = the experiment, ``agent_id`` = ``tr-<config_hash[:12]>``,
  the checkpoint and the inference config on the row). The experiment's row of a regime holds its
  best candidate so far: a refused challenger that is worse than the row already there (or the
  row is a champion) is logged without replacing it.
- :func:`consider_evolution_run`: a finished evolution run. Its ``regime_best_models`` rows (the
  Mother's best child per regime) are the challengers, with the checkpoint from ``agents``.

A classifier (a specialty whose task is ``classify``: the rug-pull detector) has one row per run,
regime ``ALL_REGIMES`` (``evolution.mother``), judged by ``evolution.champions.decide_classifier``
under ``policy.classifier`` (its AUC interval; no DSR, ``n_trials`` 1) against the champion of
(specialty, ``ALL_REGIMES``); the promotions log, the stages and the one writer are the same. A
Tune trial is never a classifier: no classify specialty can be searched by a grid (the rug-pull
detector has no ``grid_datasets``), and a classify trial would have no per-regime backtests.

Both are idempotent: a model that is already the champion is skipped, and a refusal identical to
the last one logged for the same challenger (same decision, incumbent and trial count) is not
logged again, so a resumed run judged twice logs once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from agents.specialties import get_specialty
from evolution.champions import (
    Candidate,
    ChampionPolicy,
    ClassifierCandidate,
    Decision,
    decide,
    decide_classifier,
)
from market.regimes import REGIMES
from market.timeframes import bars_per_year
from store.db import Store
from store.records.champions import (
    ModelSource,
    PromotionDecision,
    PromotionRecord,
    RegimeBestRecord,
    Stage,
)
from store.records.training import InferenceBacktestRecord, TrainingRunRecord, TrainingStatus

__all__ = ["consider_evolution_run", "consider_tune_run", "is_classifier"]

logger = logging.getLogger(__name__)

# How far along the lifecycle a training run got: its stage only moves forward here.
_PROGRESS = {Stage.DISCOVERY: 0, Stage.VALIDATION: 1, Stage.PAPER: 2}


def consider_tune_run(
    store: Store,
    record: TrainingRunRecord,
    backtests: Sequence[InferenceBacktestRecord],
    policy: ChampionPolicy,
    timeframe: str,
) -> list[PromotionRecord]:
    """Judge a finished Tune trial in every regime; returns the decisions logged.

    ``backtests`` are the trial's inference backtests (``TrainingStore.backtests``); ``timeframe``
    its data's (``record.config["data"]["timeframe"]``). A trial that is not DONE is skipped. The
    training run's stage moves forward to the best its regimes reached (PAPER when promoted in any).
    """
    if record.status != TrainingStatus.DONE:
        logger.debug("training run %s is %s: not a challenger", record.config_hash, record.status)
        return []
    periods = bars_per_year(timeframe)
    stored = {
        row.regime: row
        for row in store.champions.regime_best(record.experiment)
        if row.specialty == record.specialty
    }
    logged: list[PromotionRecord] = []
    best_stage = Stage.DISCOVERY
    for regime in REGIMES:
        best = _best_backtest(backtests, regime)
        if best is None:
            continue
        metrics = best.per_regime[regime]
        candidate = RegimeBestRecord(
            run_id=record.experiment,
            specialty=record.specialty,
            regime=regime,
            agent_id=record.agent_id,
            sharpe=metrics["sharpe"],
            metrics=metrics,
            source=ModelSource.TUNE,
            checkpoint_path=record.model_path,
            checkpoint_sha256=record.model_sha256,
            inference=best.inference,
        )
        row = stored.get(regime)
        # The experiment's row is its best candidate so far: a worse refused one does not replace it.
        keep_row = (
            row is not None
            and row.model != candidate.model
            and (row.is_champion or _sharpe(row) >= _sharpe(candidate))
        )
        outcome = _judge(store, candidate, policy, periods, keep_row=keep_row)
        if outcome is None:  # already the champion
            best_stage = Stage.PAPER
            continue
        decision, promotion = outcome
        best_stage = max(best_stage, Stage(decision.stage), key=_PROGRESS.__getitem__)
        if promotion is not None:
            logged.append(promotion)
    current = store.training.training_run(record.config_hash)
    if current is not None and _PROGRESS.get(current.stage, 99) < _PROGRESS[best_stage]:
        store.training.set_stage(record.config_hash, best_stage)
    return logged


def consider_evolution_run(
    store: Store,
    run_id: str,
    policy: ChampionPolicy,
    timeframe: str,
) -> list[PromotionRecord]:
    """Judge a finished evolution run's best child per (specialty, regime); returns the decisions
    logged. ``timeframe`` is the run's data timeframe (``evolve.data.timeframe``)."""
    periods = bars_per_year(timeframe)
    logged: list[PromotionRecord] = []
    for row in store.champions.regime_best(run_id):
        if row.is_champion or row.stage == Stage.RETIRED:
            continue  # judged already: the champion, or a champion since dethroned
        agent = store.runs.agent(row.agent_id, run_id=run_id)
        candidate = replace(
            row,
            source=ModelSource.EVOLUTION,
            checkpoint_path=agent.checkpoint_path if agent else row.checkpoint_path,
            checkpoint_sha256=agent.checkpoint_sha256 if agent else row.checkpoint_sha256,
        )
        outcome = _judge(store, candidate, policy, periods, keep_row=False)
        if outcome is not None and outcome[1] is not None:
            logged.append(outcome[1])
    promoted = sum(p.decision == PromotionDecision.PROMOTED for p in logged)
    logger.info(
        "run %s: %d champion(s) promoted, %d refused", run_id, promoted, len(logged) - promoted
    )
    return logged


# -- one decision ----------------------------------------------------------------------------------


def _judge(
    store: Store,
    candidate: RegimeBestRecord,
    policy: ChampionPolicy,
    periods_per_year: float,
    *,
    keep_row: bool,
) -> tuple[Decision, PromotionRecord | None] | None:
    """Decide on ``candidate`` and write the outcome; None when it is the champion already.

    The promotion record is None when the same refusal was logged last time (a repeat).
    ``keep_row``: log a refusal without writing the candidate's row.
    """
    specialty, regime = candidate.specialty, candidate.regime
    incumbent = store.champions.champion(specialty, regime)
    if incumbent is not None and incumbent.model == candidate.model:
        return None
    classifier = is_classifier(specialty)
    if classifier:
        decision = decide_classifier(
            ClassifierCandidate.from_metrics(candidate.model, candidate.metrics),
            None
            if incumbent is None
            else ClassifierCandidate.from_metrics(incumbent.model, incumbent.metrics),
            policy.classifier,
        )
    else:
        trials = store.training.regime_trial_sharpes(specialty, regime)
        decision = decide(
            _as_candidate(candidate),
            None if incumbent is None else _as_candidate(incumbent),
            trials,
            policy,
            periods_per_year,
        )
    judged = replace(
        candidate,
        stage=decision.stage,
        is_champion=decision.promote,
        dsr=decision.dsr,
        n_trials=decision.n_trials,
    )
    retired = (
        None if incumbent is None else replace(incumbent, is_champion=False, stage=Stage.RETIRED)
    )
    promotion = PromotionRecord(
        specialty=specialty,
        regime=regime,
        decision=PromotionDecision.PROMOTED if decision.promote else PromotionDecision.REFUSED,
        challenger=candidate.model,
        incumbent=None if incumbent is None else incumbent.model,
        reason=decision.reason,
        before={"incumbent": _state(incumbent), "challenger": _state(candidate)},
        after={
            "incumbent": _state(retired if decision.promote else incumbent),
            "challenger": _state(judged),
        },
        dsr=decision.dsr,
        n_trials=decision.n_trials,
        margin=policy.classifier.margin if classifier else policy.margin,
    )
    log = logger.info if decision.promote else logger.debug
    log("%s %s/%s: %s", candidate.model, specialty, regime, decision.reason)
    if decision.promote:
        store.champions.promote(judged, promotion)
        if incumbent is not None:
            _retire_training_run(store, incumbent)
        return decision, promotion
    if _repeats(store, promotion):
        return decision, None
    if keep_row:
        store.champions.record_promotion(promotion)
    else:
        store.champions.refuse(judged, promotion)
    return decision, promotion


def _repeats(store: Store, promotion: PromotionRecord) -> bool:
    """Whether the last decision logged on this challenger was this same refusal."""
    mine = [
        p
        for p in store.champions.promotions(specialty=promotion.specialty, regime=promotion.regime)
        if p.challenger == promotion.challenger
    ]
    if not mine:
        return False
    last = mine[-1]  # the log is oldest first
    return (last.decision, last.incumbent, last.n_trials, last.reason) == (
        promotion.decision,
        promotion.incumbent,
        promotion.n_trials,
        promotion.reason,
    )


def _retire_training_run(store: Store, dethroned: RegimeBestRecord) -> None:
    """A dethroned Tune model that is no longer the champion of any regime retires."""
    if dethroned.source != ModelSource.TUNE:
        return
    if any(row.model == dethroned.model for row in store.champions.champions()):
        return
    for run in store.training.training_runs(experiment=dethroned.run_id):
        if run.agent_id == dethroned.agent_id and run.stage != Stage.RETIRED:
            store.training.set_stage(run.config_hash, Stage.RETIRED)


# -- helpers ---------------------------------------------------------------------------------------


def is_classifier(specialty: str) -> bool:
    """Whether ``specialty`` is judged by the classifier rules: its task is ``classify``
    (``agents.specialties``); an unknown specialty (a plug-in not loaded here) is not."""
    try:
        return get_specialty(specialty).task == "classify"
    except ValueError:
        return False


def _best_backtest(
    backtests: Sequence[InferenceBacktestRecord], regime: str
) -> InferenceBacktestRecord | None:
    """The inference config with the best finite Sharpe in ``regime`` (ties: the smaller hash)."""
    scored = [
        (sharpe, backtest)
        for backtest in backtests
        if (sharpe := (backtest.per_regime.get(regime) or {}).get("sharpe")) is not None
        and math.isfinite(sharpe)
    ]
    if not scored:
        return None
    return max(scored, key=lambda item: (item[0], _reverse(item[1].inference_hash)))[1]


def _reverse(text: str) -> tuple[int, ...]:
    return tuple(-ord(char) for char in text)


def _sharpe(row: RegimeBestRecord) -> float:
    return -math.inf if row.sharpe is None else row.sharpe


def _as_candidate(row: RegimeBestRecord) -> Candidate:
    metrics = dict(row.metrics)
    metrics["sharpe"] = math.nan if row.sharpe is None else row.sharpe
    return Candidate.from_metrics(row.model, metrics)


def _state(row: RegimeBestRecord | None) -> dict[str, Any] | None:
    """A model's row as the promotion log keeps it (plain JSON values)."""
    if row is None:
        return None
    return {
        "model": row.model,
        "source": row.source,
        "stage": row.stage,
        "is_champion": row.is_champion,
        "sharpe": row.sharpe,
        "dsr": row.dsr,
        "n_trials": row.n_trials,
        "metrics": dict(row.metrics),
        "inference": dict(row.inference),
        "checkpoint_path": row.checkpoint_path,
    }
