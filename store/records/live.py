"""The living loop's rows (``store.live.LiveStore``) as frozen records. Times are integer ms UTC
of the loop's clock (simulated in a replay)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from market.series import SeriesKey

__all__ = [
    "JobRecord",
    "LiveAnswerRecord",
    "LiveEventRecord",
    "LiveSeriesRecord",
    "ValidationRecord",
    "VoteLabelRecord",
]


@dataclass(frozen=True)
class LiveSeriesRecord:
    """A watched series: added at ``added_ms``, ``labelled`` examples (candles whose label horizon
    has passed), training on since ``enabled_ms`` (None: not yet), predictions labelled up to
    ``label_cursor`` (their last candle's open time)."""

    key: SeriesKey
    added_ms: int
    labelled: int = 0
    enabled_ms: int | None = None
    label_cursor: int | None = None

    @property
    def enabled(self) -> bool:
        return self.enabled_ms is not None


@dataclass(frozen=True)
class JobRecord:
    """A schedule's bookkeeping: the last slot it ran for, when that run started and finished,
    and its outcome (``ok``, ``error``, ``running``: a run that never finished) with detail."""

    name: str
    last_slot_ms: int | None
    started_ms: int | None
    finished_ms: int | None
    outcome: str
    detail: str
    runs: int


@dataclass(frozen=True)
class LiveEventRecord:
    """What the loop did or decided at ``at_ms``; ``detail`` holds its numbers."""

    at_ms: int
    kind: str
    subject: str
    detail: dict[str, Any]
    id: int | None = None

    def detail_json(self) -> str:
        return json.dumps(self.detail, sort_keys=True, default=str)


@dataclass(frozen=True)
class LiveAnswerRecord:
    """What the ensemble answered at the close of candle ``ts`` of ``key``."""

    key: SeriesKey
    ts: int
    direction: int
    size: float
    score: float
    regime: str
    model_version: str
    request_id: str | None = None


@dataclass(frozen=True)
class VoteLabelRecord:
    """A served member vote (``vote`` at the close of the candle opened at ``as_of``) with the
    realized return of the next ``horizon`` bars; ``hit``: the vote had the return's sign
    (None for a flat vote)."""

    request_id: str
    run_id: str
    agent_id: str
    as_of: int
    horizon: int
    vote: int
    forward_return: float
    hit: bool | None
    labelled_ms: int


@dataclass(frozen=True)
class ValidationRecord:
    """A champion re-scored on ``[window_from, window_to)``, bars no version of it trained on."""

    specialty: str
    regime: str
    run_id: str
    agent_id: str
    at_ms: int
    window_from: int
    window_to: int
    bars: int
    sharpe: float | None
    dsr: float | None
    passed: bool
    reason: str
