"""The living loop's retrain: the next generation of the population on the data up to now,
judged by the champion rules, hot-swapped only on a promotion.

Every ``retrain_hours`` (``schedules.retrain``; the Sunday ``schedules.evolve`` does the same with
``weekly_generations``):

1. **Re-validate** each voting champion on the newest window: its own served votes since it was
   last validated, labelled by the ``label`` job (bars no version of it trained on: truly out of
   sample). It passes with at least ``monitor.min_votes`` labelled votes, a positive live Sharpe
   and a hit rate of at least ``monitor.min_hit_rate``; either way the verdict is recorded
   (``champion_validations``) with its numbers. A champion that goes ``expiration_hours`` without
   passing stops voting (``live.jobs.monitor``): judged, not just aged.
2. **Train** an evolution run (``cluster.evolve.start_or_resume``) of ``live.evolve`` on every
   enabled series (``auto_enable_threshold``), the newest ``train_days`` (at most
   ``retention.max_training_examples`` bars) up to the last closed candle. Generation 0 starts from
   the previous retrain's hall of fame (its best ``hall_of_fame`` children per specialty by
   out-of-sample Sharpe), the rest drawn fresh. The run id is the slot's time and the config's
   hash: a retrain killed midway is resumed by the same slot's rerun, never started twice.
3. **Judge**: the run's best child per (specialty, regime) against the champion by the champion
   rules (``evolution.crowning``: bars, DSR over every config ever tried, margin). Serve (and the
   ``answer`` job) swap only when a champion changed (``serving.ensemble.ensemble_version``).
"""

from __future__ import annotations

import logging

from cluster.config import EvolveDataConfig
from cluster.evolve import config_hash, judge_champions, start_or_resume
from live.jobs import (
    LiveContext,
    closed_until,
    live_record,
    validated_at,
    voting_champions,
)
from market.when import iso_ts
from store.records.champions import PromotionDecision
from store.records.live import ValidationRecord
from store.records.population import AgentStatus, RunStatus

logger = logging.getLogger(__name__)


def revalidate(ctx: LiveContext, now_ms: int) -> list[ValidationRecord]:
    """Step 1 of the module doc, for every voting champion."""
    rule = ctx.live.monitor
    out = []
    for row in voting_champions(ctx):
        since = validated_at(ctx, row, now_ms)
        record = live_record(ctx, row, since)
        if record.votes < rule.min_votes:
            passed, reason = (
                False,
                (
                    f"not enough evidence: {record.votes} labelled votes since {iso_ts(since)}, "
                    f"fewer than {rule.min_votes}"
                ),
            )
        elif record.sharpe is None or record.sharpe <= 0:
            passed, reason = False, f"live Sharpe {record.sharpe} is not positive"
        elif record.hit_rate is None or record.hit_rate < rule.min_hit_rate:
            passed, reason = False, f"live hit rate {record.hit_rate} below {rule.min_hit_rate}"
        else:
            passed, reason = (
                True,
                (
                    f"re-validated on {record.votes} labelled votes: Sharpe {record.sharpe:+.2f}, "
                    f"hit rate {record.hit_rate:.3f}"
                ),
            )
        validation = ValidationRecord(
            row.specialty, row.regime, row.run_id, row.agent_id, now_ms, since, now_ms,
            record.votes, record.sharpe, None, passed, reason,
        )  # fmt: skip
        ctx.store.live.add_validation(validation)
        out.append(validation)
    return out


def _previous_run(ctx: LiveContext, slot_ms: int) -> str | None:
    """The run of the last retrain before ``slot_ms`` (its event's subject), or None."""
    done = [e for e in ctx.store.live.events(kinds=["retrain"]) if e.at_ms < slot_ms]
    return done[-1].subject if done else None


def ancestors(ctx: LiveContext, previous: str | None) -> dict[str, tuple[tuple[str, str], ...]]:
    """The previous retrain's hall of fame per specialty: its best children by Sharpe."""
    if previous is None:
        return {}
    keep = ctx.live.evolve.hall_of_fame
    out: dict[str, tuple[tuple[str, str], ...]] = {}
    for specialty in ctx.live.evolve.population:
        done = [
            a
            for a in ctx.store.runs.agents(previous, specialty=specialty)
            if a.status == AgentStatus.OK and a.sharpe is not None
        ]
        done.sort(key=lambda a: (-(a.sharpe or 0.0), a.agent_id))
        if done:
            out[specialty] = tuple((a.agent_id, a.genome_json) for a in done[:keep])
    return out


def retrain(ctx: LiveContext, now_ms: int, slot_ms: int, *, generations: int | None = None) -> str:
    """Steps 1 to 3 of the module doc; returns the outcome line."""
    enabled = [s for s in ctx.store.live.watched() if s.enabled and s.key in ctx.keys]
    if not enabled:
        return "skipped: no series has auto_enable_threshold labelled examples yet"
    validations = revalidate(ctx, now_ms)
    for v in validations:
        ctx.store.live.event(
            now_ms, "validation", f"{v.specialty}/{v.regime} {v.agent_id}", passed=v.passed,
            votes=v.bars, sharpe=v.sharpe, reason=v.reason,
        )  # fmt: skip
    end = closed_until(slot_ms, ctx.step)
    bars = min(
        ctx.live.train_days * 24 * 3_600_000 // ctx.step, ctx.live.retention.max_training_examples
    )
    start = end - bars * ctx.step
    population = ctx.live.evolve.population
    evolve = ctx.live.evolve.model_copy(update={
        "generations": generations or ctx.live.evolve.generations,
        "data": EvolveDataConfig(
            exchange=ctx.live.exchange, timeframe=ctx.live.timeframe,
            symbols=tuple(s.key.symbol for s in enabled), start=iso_ts(start), end=iso_ts(end),
            import_sample=False,
            fear_greed=ctx.fear_greed_path if "sentiment_scout" in population else None,
            trades=(), rugpull_tokens=None,
        ),
    })  # fmt: skip
    # The run keeps its evolve section and the other rules, not the live section: where the
    # exchange is (a replay's loopback port) is not what the run did, and its resume compares.
    config = ctx.config.model_copy(update={"evolve": evolve, "live": None})
    run_id = f"r{slot_ms // 1000}-{config_hash(evolve, config.regimes)[:6]}"
    previous = _previous_run(ctx, slot_ms)
    carried = ancestors(ctx, previous)
    run = ctx.store.runs.get_run(run_id)
    if run is not None and run.status == RunStatus.FINISHED:
        # Killed after the run finished: judge it (again: a decision is never logged twice).
        judge_champions(config, evolve, ctx.store, run_id)
        result_run = run_id
    else:
        result = start_or_resume(
            config, evolve, ctx.store, ctx.home, resume=run_id if run else None,
            now=lambda: slot_ms / 1000, ancestors=carried,
        )  # fmt: skip
        result_run = result.run_id
    promoted = refused = 0
    best_dsr: float | None = None
    for decision in ctx.store.champions.promotions():
        if not decision.challenger.startswith(f"{result_run}/"):
            continue
        kind = "promotion" if decision.decision == PromotionDecision.PROMOTED else "refusal"
        challenger = decision.after.get("challenger") or {}
        incumbent = decision.after.get("incumbent") or {}
        numbers = {
            "challenger": decision.challenger, "incumbent": decision.incumbent,
            "reason": decision.reason, "dsr": decision.dsr, "n_trials": decision.n_trials,
            "margin": decision.margin, "sharpe": challenger.get("sharpe"),
            "bars": (challenger.get("metrics") or {}).get("bars"),
            "incumbent_sharpe": incumbent.get("sharpe"),
        }  # fmt: skip
        ctx.store.live.event(now_ms, kind, f"{decision.specialty}/{decision.regime}", **numbers)
        if decision.dsr is not None:
            best_dsr = max(best_dsr or decision.dsr, decision.dsr)
        if kind == "promotion":
            promoted += 1
            run_part, agent = decision.challenger.split("/", 1)
            ctx.store.live.add_validation(ValidationRecord(
                decision.specialty, decision.regime, run_part, agent, now_ms, start, end, 0,
                challenger.get("sharpe"), decision.dsr, True, "crowned",
            ))  # fmt: skip
        else:
            refused += 1
    children = len(ctx.store.runs.agents(result_run))
    ctx.store.live.event(
        now_ms, "retrain", result_run, series=", ".join(s.key.symbol for s in enabled),
        data=f"{iso_ts(start)[:10]} .. {iso_ts(end)[:10]}", children=children,
        ancestors=sum(len(v) for v in carried.values()), promoted=promoted, refused=refused,
        best_dsr=best_dsr,
    )  # fmt: skip
    best = "" if best_dsr is None else f" (best DSR {best_dsr:.2f})"
    return f"run {result_run}: {children} children, {promoted} promoted, {refused} refused{best}"
