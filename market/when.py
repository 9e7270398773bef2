"""Moments as the user types them and as tables print them: UTC, milliseconds since the epoch."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd


def parse_when(text: str, flag: str) -> int:
    """``2024-01-01``, ``2024-01-01T12:00``, or integer milliseconds, as ms since the epoch (UTC).

    ``flag`` names the option or key the text came from, for the error message.
    """
    if text.isdigit():
        return int(text)
    try:
        moment = pd.Timestamp(text)
    except ValueError:
        raise ValueError(
            f"{flag} must be a date like 2024-01-01 or ms since the epoch; got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.tz_localize("UTC")
    return int(moment.timestamp() * 1000)


def iso_ts(ts: int) -> str:
    """A timestamp in ms as ISO 8601 to the minute, UTC: ``2024-01-01T00:00+00:00``."""
    return datetime.fromtimestamp(ts / 1000, UTC).isoformat(timespec="minutes")


def fmt_ts(ts: int | None) -> str:
    """A timestamp in ms as ``YYYY-MM-DD HH:MM`` (UTC); ``-`` for None."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m-%d %H:%M")
