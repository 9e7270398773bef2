"""A trade's outcome, attributed to the ensemble members that voted for (or against) it.

A bot reports a trade it made on a prediction (``POST /v1/feedback`` with the prediction's request
id). The trade must be one the prediction could have led to (:func:`check_against`): the same
model version, exchange and symbol, entered no earlier than the open of the last candle the
prediction read (its ``as_of``); otherwise :class:`FeedbackMismatchError` names the field and
nothing is stored. :func:`attribute` is the rule, a pure function; :func:`apply_feedback` stores the trade and its
attribution (``store.trades.TradesStore``, idempotent on the request id) and then moves what the
members' live records say.

The rule. The trade's net profit is ``net = pnl - fees``; its side ``s`` is +1 (long) or -1
(short); a member's agreement with the trade is ``a = vote * s`` (1: it called the trade's
direction, -1: the opposite one, 0: it stayed flat). Then

- ``was_correct``: ``a == 1`` and ``net > 0`` (it called a winner), or ``a == -1`` and ``net < 0``
  (it called against a loser), or ``vote == 0`` and ``net <= 0`` (staying out beat trading);
- ``profit_contribution = weight * net * a``: the member's weighted share of the profit when it
  agreed, of the loss avoided (as a negative share of the profit) when it disagreed, nothing when it
  abstained.

After a new trade (never on a replayed one), for every member that voted:

- its live record, :class:`agents.training.Performance` folded with
  :func:`agents.training.update_performance` over all its attribution rows in the database (so a
  replayed report or two replicas writing at once converge on the same numbers), is written under
  ``"live"`` in ``playground/<agent_id>/performance.json`` (the rest of the file is kept);
- when it is still the champion of its (specialty, regime) in a trading stage (PAPER, MATURE,
  DECAY), its stage moves by :func:`evolution.champions.next_stage` with the
  ``live_record(trades, hit_rate)`` of its trades in that regime (in the trade's transaction).

**A token's outcome** (``POST /v1/rugpull/feedback``: a ``/v1/rugpull`` answer's request id and
``is_rugpull`` as it turned out) is stored by :func:`apply_rugpull_feedback`
(``store.rugpulls.RugpullStore.record_outcome``, idempotent on the request id). After a new
outcome, when the answer's champion is still the rug-pull champion in PAPER, MATURE or DECAY, its
live AUC over all its labelled answers (:func:`rugpull_live_record`) moves its stage by
:func:`evolution.champions.classifier_live_step` (in the outcome's transaction; the reason, with
the numbers, is logged and returned).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents.training import Performance, update_performance
from evolution.champions import (
    ChampionPolicy,
    ClassifierLiveRecord,
    classifier_live_record,
    classifier_live_step,
    live_record,
    next_stage,
)
from store.db import Store
from store.paths import DataRoot, home_from_env
from store.records.champions import ALL_REGIMES, Stage
from store.records.rugpulls import RugpullAnswerRecord, RugpullOutcomeRecord
from store.records.trades import AttributionRecord, PredictionMember, PredictionRecord, TradeRecord

__all__ = [
    "FeedbackMismatchError",
    "FeedbackOutcome",
    "RugpullFeedbackOutcome",
    "apply_feedback",
    "apply_rugpull_feedback",
    "attribute",
    "check_against",
    "live_performance",
    "rugpull_live_record",
]

logger = logging.getLogger(__name__)

_TRADING_STAGES = (Stage.PAPER, Stage.MATURE, Stage.DECAY)
_RUGPULL = "rugpull_detector"


@dataclass(frozen=True)
class FeedbackOutcome:
    """The stored trade's id, whether it had been reported already, and its attribution rows."""

    trade_id: int
    duplicate: bool
    attributions: tuple[AttributionRecord, ...]


class FeedbackMismatchError(ValueError):
    """A trade that does not fit the prediction it names; ``field`` is the trade's field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_against(prediction: PredictionRecord, trade: TradeRecord) -> None:
    """Raise :class:`FeedbackMismatchError` when ``trade`` cannot have been made on
    ``prediction``. Predictions stored before they remembered their series are checked on the
    model version only."""
    request = trade.request_id
    if trade.model_version != prediction.model_version:
        raise FeedbackMismatchError("model_version", (
            f"model_version must be the one request {request!r} was answered with "
            f"({prediction.model_version!r}); got {trade.model_version!r}"
        ))  # fmt: skip
    for name in ("exchange", "symbol"):
        expected, got = getattr(prediction, name), getattr(trade, name)
        if expected is not None and got != expected:
            raise FeedbackMismatchError(name, (
                f"{name} must be the one request {request!r} predicted ({expected!r}); "
                f"got {got!r}"
            ))  # fmt: skip
    if prediction.as_of is not None and trade.entry_ts < prediction.as_of:
        raise FeedbackMismatchError("entry_ts", (
            f"entry_ts must not be before the open of the last candle request {request!r} read "
            f"(as_of {prediction.as_of}, {_utc(prediction.as_of)}); got {trade.entry_ts} "
            f"({_utc(trade.entry_ts)})"
        ))  # fmt: skip


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def attribute(prediction: PredictionRecord, trade: TradeRecord) -> tuple[AttributionRecord, ...]:
    """The attribution rows of ``trade`` (stored: its ``id`` is set) to the prediction's members,
    by the rule of the module docstring."""
    if trade.id is None:
        raise ValueError("attribute needs a stored trade (TradeRecord.id is None)")
    net = trade.net_pnl
    rows = []
    for member in prediction.members:
        agreement = member.vote * trade.direction
        outcome = _sign(net)
        correct = (agreement != 0 and agreement == outcome) or (member.vote == 0 and net <= 0)
        rows.append(
            AttributionRecord(
                trade_id=trade.id,
                run_id=member.run_id,
                agent_id=member.agent_id,
                specialty=member.specialty,
                regime=member.regime,
                vote=member.vote,
                weight=member.weight,
                was_correct=bool(correct),
                profit_contribution=member.weight * net * agreement,
            )
        )
    return tuple(rows)


def live_performance(rows: Iterable[AttributionRecord]) -> Performance:
    """A member's live record: ``update_performance`` folded over its attribution rows."""
    performance = Performance()
    for row in rows:
        performance = update_performance(performance, row.was_correct, row.profit_contribution)
    return performance


def apply_feedback(
    store: Store,
    trade: TradeRecord,
    *,
    home: str | Path | None = None,
    policy: ChampionPolicy | None = None,
) -> FeedbackOutcome:
    """Store ``trade``, attribute it and update the members' live records (module docstring).

    ``home`` is the data root (REDLINE_HOME when None); ``policy`` gives ``min_live_trades``.
    Raises ``store.runs.NotFoundError`` for an unknown request id, ``FeedbackConflictError`` for a
    second, different trade on one request id, :class:`FeedbackMismatchError` for a trade that
    does not fit its prediction (:func:`check_against`).
    """
    trades = store.trades
    with store.database.transaction():
        prediction = trades.prediction(trade.request_id)
        if prediction is not None:  # None: record_feedback raises NotFoundError
            check_against(prediction, trade)
        recorded = trades.record_feedback(trade, attribute)
        if not recorded.duplicate:
            for member in recorded.prediction.members:
                _step_lifecycle(store, member, policy)
    assert recorded.trade.id is not None
    if not recorded.duplicate:
        root = DataRoot(Path(home) if home is not None else home_from_env())
        for member in recorded.prediction.members:
            rows = trades.attributions(run_id=member.run_id, agent_id=member.agent_id)
            _write_live(root, member, live_performance(rows))
    return FeedbackOutcome(recorded.trade.id, recorded.duplicate, recorded.attributions)


def _step_lifecycle(store: Store, member: PredictionMember, policy: ChampionPolicy | None) -> None:
    champion = store.champions.champion(member.specialty, member.regime)
    if champion is None or (champion.run_id, champion.agent_id) != (
        member.run_id,
        member.agent_id,
    ):
        return  # no longer the champion: its live record no longer moves a stage
    if champion.stage not in _TRADING_STAGES:
        return
    rows = store.trades.attributions(
        run_id=member.run_id, agent_id=member.agent_id, regime=member.regime
    )
    record = live_performance(rows)
    stage = next_stage(champion.stage, live_record(record.trades, record.hit_rate), policy=policy)
    if stage != champion.stage:
        store.champions.set_stage(
            member.run_id, member.agent_id, member.specialty, member.regime, stage
        )


def _write_live(root: DataRoot, member: PredictionMember, performance: Performance) -> None:
    """``performance.json``'s ``"live"`` key, replaced atomically (the rest of the file kept)."""
    try:
        folder = root.playground(member.agent_id)
    except ValueError as error:  # an agent id that cannot be a folder name: nothing to write
        logger.warning("no playground for %s: %s", member.agent_id, error)
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "performance.json"
    payload: dict[str, Any] = {}
    if path.exists():
        try:
            payload = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            logger.warning("%s unreadable (%s); rewriting its live record only", path, error)
    payload.setdefault("agent_id", member.agent_id)
    payload.setdefault("run_id", member.run_id)
    payload["live"] = performance.to_dict()
    # One temporary file per writer: replicas and threads may write the same agent at once.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=False))
    os.replace(tmp, path)


# -- a token's outcome on a rug-pull answer -------------------------------------------------------


@dataclass(frozen=True)
class RugpullFeedbackOutcome:
    """The stored outcome, whether it had been reported already, the answer it labels, and the
    champion's stage after it with the live rule's reason (None when the answer's model is no
    longer the rug-pull champion in a live stage, or on a replayed report)."""

    outcome: RugpullOutcomeRecord
    duplicate: bool
    answer: RugpullAnswerRecord
    stage: Stage | None
    reason: str | None


def rugpull_live_record(store: Store, run_id: str, agent_id: str) -> ClassifierLiveRecord:
    """The live record of the rug-pull model ``run_id``/``agent_id``: the AUC of its labelled
    answers (``evolution.champions.classifier_live_record``)."""
    labelled = store.rugpulls.labelled(run_id, agent_id)
    return classifier_live_record([outcome for _, outcome in labelled],
                                  [answer.probability for answer, _ in labelled])  # fmt: skip


def apply_rugpull_feedback(
    store: Store, outcome: RugpullOutcomeRecord, *, policy: ChampionPolicy | None = None
) -> RugpullFeedbackOutcome:
    """Store ``outcome`` and step the champion's lifecycle (module docstring). Raises
    ``NotFoundError`` for a request id no answer carried, ``OutcomeConflictError`` for another
    outcome on it."""
    rules = (policy or ChampionPolicy()).classifier
    stage: Stage | None = None
    reason: str | None = None
    with store.database.transaction():
        recorded = store.rugpulls.record_outcome(outcome)
        answer = recorded.answer
        champion = store.champions.champion(_RUGPULL, ALL_REGIMES)
        live = (
            not recorded.duplicate
            and champion is not None
            and (champion.run_id, champion.agent_id) == (answer.run_id, answer.agent_id)
            and champion.stage in _TRADING_STAGES
        )
        if live:
            assert champion is not None
            record = rugpull_live_record(store, answer.run_id, answer.agent_id)
            step = classifier_live_step(champion.stage, record, rules)
            stage, reason = step.stage, step.reason
            if step.stage != champion.stage:
                store.champions.set_stage(answer.run_id, answer.agent_id, _RUGPULL, ALL_REGIMES,
                                          step.stage)  # fmt: skip
                logger.info("rug-pull champion %s/%s: %s -> %s", answer.run_id, answer.agent_id,
                            champion.stage, step.reason)  # fmt: skip
    return RugpullFeedbackOutcome(recorded.outcome, recorded.duplicate, answer, stage, reason)
