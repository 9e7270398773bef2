"""The living loop's jobs: each one function of ``(LiveContext, now_ms)`` returning a one-line
outcome (``live.service`` runs them on their schedules and records the outcome).

- :func:`collect`: new closed candles of every watched series (database first, through ccxt:
  ``store.fetch.fetch_series``), and the daily Fear & Greed value. Run first at start, it is the
  **backfill**: everything missed since the last stop (or ``history_days`` for a new series).
  An exchange error (429, 5xx, timeouts: retried by ``fetch_series`` first) or a refused candle
  fails that series for this run only; the others are collected and the loop goes on.
- :func:`label`: each series' labelled examples (candles whose ``label_horizon`` has passed),
  **auto-enable** at ``auto_enable_threshold``, and each served prediction's member votes
  labelled with the realized forward return (``vote_labels``).
- :func:`answer`: what Serve would answer at this close (``serving.ensemble.Ensemble``, the same
  code and candles), recorded as a prediction (so it is labelled like Serve's) and an answer.
- :func:`monitor`: each voting champion's live hit rate and Sharpe over its labelled votes; the
  live kill rule (DECAY below ``monitor.min_hit_rate`` over ``monitor.min_votes``) and the
  expiry (not re-validated for ``expiration_hours``).
- :func:`retention`: candles older than ``retention_days``, old answers, and model files by
  ``redline models prune``'s rules.
- :func:`analysis`: the nightly slot (the bots' trades: not built yet, recorded as skipped).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import ccxt
import numpy as np

from cluster.config import LiveConfig, RedlineConfig
from market.errors import ExchangeError
from market.exchange import make_exchange
from market.series import SeriesKey
from market.timeframes import bars_per_year, timeframe_ms
from serving.ensemble import Ensemble, ensemble_version
from store.candles import SeriesInfo
from store.db import Store
from store.fetch import FetchSettings, fetch_series
from store.records.champions import RegimeBestRecord, Stage
from store.records.live import LiveAnswerRecord, ValidationRecord, VoteLabelRecord

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000
VOTING = (Stage.PAPER, Stage.MATURE)


@dataclass
class LiveContext:
    """What every job works with; one per service."""

    config: RedlineConfig
    live: LiveConfig
    store: Store
    home: Path
    now_ms: Callable[[], int]
    _exchanges: dict[str, ccxt.Exchange] = field(default_factory=dict)
    _ensemble: Ensemble | None = None
    _infos: dict[SeriesKey, tuple[int, SeriesInfo | None]] = field(default_factory=dict)
    _fear_greed_day: int | None = None  # the newest day of the index the loop has stored

    def series_info(self, key: SeriesKey, now_ms: int) -> SeriesInfo | None:
        """``store.candles.series_info``, read once per clock reading (``collect`` forgets it
        when it stores candles): label and answer read it at every close."""
        cached = self._infos.get(key)
        if cached is None or cached[0] != now_ms:
            cached = self._infos[key] = (now_ms, self.store.candles.series_info(key))
        return cached[1]

    def remember_info(
        self, key: SeriesKey, now_ms: int, info: SeriesInfo | None, inserted: int, last: int | None
    ) -> None:
        """The series after ``collect`` appended ``inserted`` candles ending at ``last``."""
        if info is None or last is None:
            self._infos.pop(key, None)  # a new series: read it whole next time
            return
        grown = replace(info, rows=info.rows + inserted, last_ts=max(info.last_ts, last))
        self._infos[key] = (now_ms, grown)

    @property
    def keys(self) -> list[SeriesKey]:
        return [SeriesKey(self.live.exchange, s, self.live.timeframe) for s in self.live.watch]

    @property
    def step(self) -> int:
        return timeframe_ms(self.live.timeframe)

    @property
    def fear_greed_path(self) -> Path:
        """The growing copy of the daily Fear & Greed index the loop keeps (the shipped file's
        format), which the sentiment scout's retrains and answers read."""
        return self.home / "live" / "feargreed_crypto_1d.csv.gz"

    def exchange(self, exchange_id: str) -> ccxt.Exchange:
        if exchange_id not in self._exchanges:
            fetch = self.config.fetch
            self._exchanges[exchange_id] = make_exchange(
                exchange_id, api_base=self.live.api_base, timeout_ms=fetch.timeout_ms,
                enable_rate_limit=fetch.enable_rate_limit and self.live.api_base is None,
            )  # fmt: skip
        return self._exchanges[exchange_id]

    def ensemble(self, now_ms: int) -> Ensemble:
        """The live ensemble, reloaded when the store's champions change, as each Serve replica
        reloads it (its hot swap); a change is logged as a ``swap`` event."""
        version = ensemble_version(self.store, self.home)
        if self._ensemble is None or self._ensemble.version != version:
            # What answered last: this process's ensemble, or the newest answer stored.
            before = self._ensemble.version if self._ensemble else self.store.live.last_version()
            self._ensemble = Ensemble.load(self.store, self.home)
            if before is not None and before != self._ensemble.version:
                voting = sum(len(members) for members in self._ensemble.members.values())
                self.store.live.event(
                    now_ms, "swap", f"ensemble {self._ensemble.version[:12]}",
                    previous=before[:12], voting=voting,
                )  # fmt: skip
        return self._ensemble


def closed_until(now_ms: int, step: int) -> int:
    """The open time just past the last candle closed at ``now_ms``: fetch ``[.., this)``."""
    return now_ms - now_ms % step


# -- collect and backfill -------------------------------------------------------------------------


def collect(ctx: LiveContext, now_ms: int, *, backfill: bool = False) -> str:
    """New closed candles of every watched series, then the Fear & Greed index (module doc)."""
    fetch = ctx.config.fetch
    settings = FetchSettings(
        page_limit=fetch.page_limit, max_retries=fetch.max_retries,
        backoff_initial_s=fetch.backoff_initial_s, backoff_max_s=fetch.backoff_max_s,
        timeout_ms=fetch.timeout_ms, enable_rate_limit=fetch.enable_rate_limit,
        api_base=ctx.live.api_base,
    )  # fmt: skip
    plausibility = ctx.config.validation.to_plausibility()
    added, failed = 0, []
    for key in ctx.keys:
        until = closed_until(now_ms, ctx.step)
        info = ctx.series_info(key, now_ms)
        since = info.last_ts + ctx.step if info else until - ctx.live.history_days * DAY_MS
        if since >= until:
            continue
        try:
            result = fetch_series(
                ctx.store, key, since, until, settings,
                exchange=ctx.exchange(key.exchange), plausibility=plausibility,
            )  # fmt: skip
        except (ExchangeError, ccxt.BaseError, ValueError, OSError) as exc:
            failed.append(f"{key.symbol}: {type(exc).__name__}: {exc}")
            ctx.store.live.event(now_ms, "error", f"collect {key}", error=f"{exc}"[:500])
            continue
        added += result.inserted
        if result.inserted:  # what series_info would read now, without its scan
            last = ctx.store.candles.get_cursor(key)
            ctx.remember_info(key, now_ms, info, result.inserted, last)
        if backfill and result.inserted:
            ctx.store.live.event(
                now_ms, "backfill", str(key), candles=result.inserted, since=since, until=until
            )
    outcome = f"{added} candles"
    if ctx.live.fear_greed:
        outcome += f", {collect_fear_greed(ctx, now_ms)}"
    if failed:
        raise CollectError(f"{outcome}; failed: {'; '.join(failed)}")
    return outcome


class CollectError(RuntimeError):
    """Some series could not be collected this time (the others were)."""


def collect_fear_greed(ctx: LiveContext, now_ms: int) -> str:
    """The daily index: its whole history once, then the last days, once a day (a day's value
    is published at 00:00 UTC; asking every hour would only ask again)."""
    from market.sentiment import fetch_fear_greed, write_sentiment

    today = now_ms - now_ms % DAY_MS
    if ctx._fear_greed_day == today:
        return "fear & greed up to date"
    path = ctx.fear_greed_path
    days = 0 if not path.exists() else 3
    try:
        frame = fetch_fear_greed(ctx.live.fear_greed_url, limit=days)
    except (ExchangeError, ValueError, OSError) as exc:
        ctx.store.live.event(now_ms, "error", "collect fear & greed", error=f"{exc}"[:500])
        return f"fear & greed failed: {exc}"
    added = write_sentiment(frame, path)
    if not frame.empty and int(frame["ts"].max()) >= today:
        ctx._fear_greed_day = today
    return f"{added} fear & greed days"


# -- label and auto-enable ------------------------------------------------------------------------


def label(ctx: LiveContext, now_ms: int) -> str:
    """Labelled examples per series, auto-enable, and the served votes' labels (module doc)."""
    horizon = ctx.live.label_horizon
    labelled_votes = 0
    for key in ctx.keys:
        record = ctx.store.live.series(key) or ctx.store.live.watch(key, now_ms)
        info = ctx.series_info(key, now_ms)
        if info is None:
            continue
        examples = max(info.rows - horizon, 0)
        enabled = record.enabled_ms
        if enabled is None and examples >= ctx.live.auto_enable_threshold:
            enabled = now_ms
            ctx.store.live.event(
                now_ms, "auto_enable", str(key), labelled=examples,
                threshold=ctx.live.auto_enable_threshold,
            )  # fmt: skip
        ctx.store.live.set_labelled(key, examples, enabled)
        labelled_votes += _label_votes(ctx, key, record.label_cursor, info.last_ts, now_ms)
    return f"{labelled_votes} votes labelled"


def _label_votes(
    ctx: LiveContext, key: SeriesKey, cursor: int | None, last_ts: int, now_ms: int
) -> int:
    horizon, step = ctx.live.label_horizon, ctx.step
    upto = last_ts - horizon * step
    predictions = ctx.store.trades.predictions_of(
        key.exchange, key.symbol, key.timeframe, cursor, upto
    )
    if not predictions:
        return 0
    first = min(p.as_of for p in predictions if p.as_of is not None)
    candles = ctx.store.candles.load_candles(key, first, upto + horizon * step + 1)
    close = dict(zip(candles["ts"].astype("int64"), candles["close"], strict=True))
    labels = []
    for prediction in predictions:
        assert prediction.as_of is not None
        start, end = close.get(prediction.as_of), close.get(prediction.as_of + horizon * step)
        if start is None or end is None:
            continue  # a hole in the candles: that vote stays unlabelled
        forward = float(end / start - 1.0)
        for member in prediction.members:
            hit = None if member.vote == 0 or forward == 0 else (member.vote > 0) == (forward > 0)
            labels.append(VoteLabelRecord(
                prediction.request_id, member.run_id, member.agent_id, prediction.as_of,
                horizon, member.vote, forward, hit, now_ms,
            ))  # fmt: skip
    added = ctx.store.live.add_labels(labels)
    ctx.store.live.set_label_cursor(key, max(p.as_of or 0 for p in predictions))
    return added


# -- answer ---------------------------------------------------------------------------------------


def request_id(key: SeriesKey, ts: int) -> str:
    """The answer's request id: one per series and candle, so a rerun stores nothing twice."""
    text = f"live|{key.exchange}|{key.symbol}|{key.timeframe}|{ts}"
    return "live-" + hashlib.sha256(text.encode()).hexdigest()[:27]


def answer(ctx: LiveContext, now_ms: int) -> str:
    """What Serve answers at this close for every watched series, recorded (module doc)."""
    ensemble = ctx.ensemble(now_ms)
    answered = []
    for key in ctx.keys:
        info = ctx.series_info(key, now_ms)
        if info is None:
            continue
        if ctx.store.live.last_answer(key) == info.last_ts:
            continue
        start = info.last_ts - (ctx.live.history_bars - 1) * ctx.step
        candles = ctx.store.candles.load_candles(key, start)
        rid = request_id(key, info.last_ts)
        response = ensemble.predict(
            candles, exchange=key.exchange, symbol=key.symbol, timeframe=key.timeframe,
            request_id=rid,
        )  # fmt: skip
        regime = response.regime.name or ""
        ctx.store.trades.record_predictions([(
            rid, response.model_version, [m.model_dump() for m in response.members], regime,
            key.exchange, key.symbol, key.timeframe, response.as_of,
        )])  # fmt: skip
        ctx.store.live.record_answers([LiveAnswerRecord(
            key, info.last_ts, response.signal.direction, response.position_size,
            response.signal.score, regime or "none", response.model_version, rid,
        )])  # fmt: skip
        answered.append(f"{key.symbol} {response.signal.direction:+d}x{response.position_size:.2f}")
    return ", ".join(answered) or "nothing new to answer"


# -- monitor: the live kill rule and the expiry ---------------------------------------------------


@dataclass(frozen=True)
class LiveRecord:
    """A champion's served votes since ``since_ms`` with their realized returns."""

    votes: int  # labelled non-flat votes
    hit_rate: float | None
    sharpe: float | None  # annualized, of vote x forward return per labelled vote


def live_record(ctx: LiveContext, row: RegimeBestRecord, since_ms: int | None) -> LiveRecord:
    labels = [
        label
        for label in ctx.store.live.labels(row.run_id, row.agent_id)
        if label.vote != 0 and (since_ms is None or label.as_of >= since_ms)
    ]
    if not labels:
        return LiveRecord(0, None, None)
    hits = [label.hit for label in labels if label.hit is not None]
    returns = np.array([label.vote * label.forward_return for label in labels])
    sd = float(returns.std(ddof=1)) if len(returns) > 1 else 0.0
    per_year = bars_per_year(ctx.live.timeframe) / ctx.live.label_horizon
    sharpe = float(returns.mean() / sd * math.sqrt(per_year)) if sd > 0 else None
    return LiveRecord(len(labels), sum(hits) / len(hits) if hits else None, sharpe)


def voting_champions(ctx: LiveContext) -> list[RegimeBestRecord]:
    return [row for row in ctx.store.champions.champions() if row.stage in VOTING]


def validated_at(ctx: LiveContext, row: RegimeBestRecord, now_ms: int) -> int:
    """When ``row`` was last validated (crowned, re-validated); a champion the loop has not
    seen before (crowned by ``redline evolve`` or Tune) is adopted as validated now."""
    passed = [v for v in ctx.store.live.validations(row.run_id, row.agent_id) if v.passed]
    if passed:
        return passed[-1].at_ms
    ctx.store.live.add_validation(ValidationRecord(
        row.specialty, row.regime, row.run_id, row.agent_id, now_ms, now_ms, now_ms, 0, None,
        None, True, "adopted: crowned before the living loop watched it",
    ))  # fmt: skip
    return now_ms


def monitor(ctx: LiveContext, now_ms: int) -> str:
    """The live kill rule and the expiry over every voting champion (module doc)."""
    rule = ctx.live.monitor
    decayed = []
    for row in voting_champions(ctx):
        name = f"{row.specialty}/{row.regime} {row.agent_id}"
        since = validated_at(ctx, row, now_ms)
        record = live_record(ctx, row, None)
        numbers: dict[str, Any] = {
            "votes": record.votes, "hit_rate": record.hit_rate, "sharpe": record.sharpe,
            "min_votes": rule.min_votes, "min_hit_rate": rule.min_hit_rate,
        }  # fmt: skip
        if (
            record.votes >= rule.min_votes
            and record.hit_rate is not None
            and record.hit_rate < rule.min_hit_rate
        ):
            if ctx.store.champions.set_stage(
                row.run_id, row.agent_id, row.specialty, row.regime, Stage.DECAY
            ):
                reason = (f"live hit rate {record.hit_rate:.3f} below {rule.min_hit_rate} over "
                          f"{record.votes} labelled votes")  # fmt: skip
                ctx.store.live.event(now_ms, "decay", name, reason=reason, **numbers)
                decayed.append(name)
            continue
        age_h = (now_ms - since) / 3_600_000
        if age_h > ctx.live.expiration_hours and ctx.store.champions.set_stage(
            row.run_id, row.agent_id, row.specialty, row.regime, Stage.DECAY
        ):
            reason = (f"expired: not re-validated for {age_h:.0f} h (expiration_hours "
                      f"{ctx.live.expiration_hours})")  # fmt: skip
            ctx.store.live.event(now_ms, "expire", name, reason=reason, validated_ms=since,
                                 **numbers)  # fmt: skip
            decayed.append(name)
    voting = len(voting_champions(ctx))
    return f"{voting} voting" + (f"; stopped {', '.join(decayed)}" if decayed else "")


# -- retention and the analysis slot --------------------------------------------------------------


def retention(ctx: LiveContext, now_ms: int) -> str:
    keep = ctx.live.retention
    cutoff = now_ms - keep.retention_days * DAY_MS
    candles = answers = 0
    for key in ctx.keys:
        candles += ctx.store.candles.delete_before(key, cutoff)
        answers += ctx.store.live.forget_before(key, cutoff)
    models = prune_models(ctx)
    ctx.store.live.event(
        now_ms, "retention", "data root", candles=candles, answers=answers, models=models,
        cutoff=cutoff,
    )  # fmt: skip
    return f"dropped {candles} candles, {answers} answers before the cutoff; {models}"


def prune_models(ctx: LiveContext) -> str:
    """Model files by ``redline models prune``'s rules (``tuning.models``): champions, paper and
    live models, elites, their ancestors and the models of running runs stay."""
    from tuning.models import prune_models as prune

    return prune(ctx.store, ctx.home).summary()


def analysis(ctx: LiveContext, now_ms: int) -> str:
    return "skipped: the nightly analysis of the bots' trades is not built yet"
