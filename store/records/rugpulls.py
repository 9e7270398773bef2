"""The rug-pull detector's served answers and the outcomes reported on them
(``rugpull_answers``, ``rugpull_outcomes``) as frozen records: what
``store.rugpulls.RugpullStore`` takes and gives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from store.records import checks as check

__all__ = ["RugpullAnswerRecord", "RugpullOutcomeRecord"]


@dataclass(frozen=True)
class RugpullAnswerRecord:
    """What one ``/v1/rugpull`` answered with a champion: its request id, the ensemble version,
    the champion (``run_id``/``agent_id``), the probability, its call (``is_rugpull``:
    ``probability > threshold``) and the threshold. ``created_at`` is the store's."""

    request_id: str
    model_version: str
    run_id: str
    agent_id: str
    probability: float
    is_rugpull: bool
    threshold: float
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("request_id", "model_version", "run_id", "agent_id"):
            check.key(self, name)
        check.finite(self, "probability", minimum=0.0)
        if self.probability > 1.0:
            raise ValueError(
                f"RugpullAnswerRecord.probability must be between 0 and 1; got {self.probability!r}"
            )
        check.flag(self, "is_rugpull")
        check.finite(self, "threshold")
        check.stamp(self, "created_at")


@dataclass(frozen=True)
class RugpullOutcomeRecord:
    """What a token answered by ``request_id`` turned out to be (``is_rugpull``), with an optional
    ``note`` from whoever reported it (a blank one is None). One per request id; ``created_at`` is the store's."""

    request_id: str
    is_rugpull: bool
    note: str | None = None
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        check.key(self, "request_id")
        check.flag(self, "is_rugpull")
        if isinstance(self.note, str) and not self.note.strip():
            check.assign(self, "note", None)  # an empty note says nothing
        check.optional_text(self, "note")
        check.stamp(self, "created_at")

    def same_outcome(self, other: RugpullOutcomeRecord) -> bool:
        """Equal as reported (the store's ``created_at`` aside)."""
        return (self.request_id, self.is_rugpull, self.note) == (
            other.request_id, other.is_rugpull, other.note,
        )  # fmt: skip
