"""The checks and normalizations the records run in ``__post_init__``: each takes the record and
a field's name, raises ValueError naming the record, the field and the value, and may replace the
value by its normal form (numpy numbers become Python ones, enums their members, a non-finite
Sharpe None)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

MAX_SEED = 2**63  # a BIGINT column
KEY_LENGTH = 64  # String(64) key columns: ids and SHA-256 hex digests
VOTES = (-1, 0, 1)


def assign(record: object, name: str, value: object) -> None:
    object.__setattr__(record, name, value)


def text(record: object, name: str, *, empty: bool = False) -> None:
    value = getattr(record, name)
    if not isinstance(value, str) or (not empty and not value):
        kind = "a string" if empty else "a non-empty string"
        raise ValueError(f"{type(record).__name__}.{name} must be {kind}; got {value!r}")


def key(record: object, name: str, *, length: int = KEY_LENGTH) -> None:
    """A non-empty string that fits its column (PostgreSQL would refuse a longer one, SQLite not)."""
    text(record, name)
    value = getattr(record, name)
    if len(value) > length:
        raise ValueError(
            f"{type(record).__name__}.{name} must be at most {length} characters; got {value!r}"
        )


def flag(record: object, name: str) -> None:
    value = getattr(record, name)
    if not isinstance(value, bool):
        raise ValueError(f"{type(record).__name__}.{name} must be True or False; got {value!r}")


def mapping(record: object, name: str) -> None:
    value = getattr(record, name)
    if not isinstance(value, Mapping):
        raise ValueError(f"{type(record).__name__}.{name} must be a mapping; got {value!r}")
    assign(record, name, dict(value))


def per_regime(record: object, name: str = "per_regime") -> None:
    value = getattr(record, name)
    if not isinstance(value, Mapping):
        raise ValueError(
            f"{type(record).__name__}.{name} must map regimes to metrics; got {value!r}"
        )
    assign(
        record,
        name,
        {
            str(regime): floats(record, f"{name}[{regime!r}]", values)
            for regime, values in value.items()
        },
    )


def optional_text(record: object, name: str) -> None:
    if getattr(record, name) is not None:
        text(record, name)


def count(record: object, name: str, *, optional: bool = False) -> None:
    value = getattr(record, name)
    if optional and value is None:
        return
    # numbers.Integral: numpy integers from the Mother's arrays are accepted as the ints they are.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(
            f"{type(record).__name__}.{name} must be a non-negative integer; got {value!r}"
        )
    assign(record, name, int(value))


def seed(record: object, name: str) -> None:
    count(record, name)
    value = getattr(record, name)
    if value >= MAX_SEED:
        raise ValueError(f"{type(record).__name__}.{name} must be below 2**63; got {value}")


def finite_or_none(record: object, name: str) -> None:
    value = getattr(record, name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{type(record).__name__}.{name} must be a number or None; got {value!r}")
    number = float(value)
    assign(record, name, number if math.isfinite(number) else None)


def floats(record: object, name: str, values: Mapping[str, Any]) -> dict[str, float]:
    try:
        return {str(key): float(value) for key, value in values.items()}
    except (TypeError, ValueError, AttributeError):
        raise ValueError(
            f"{type(record).__name__}.{name} must map names to numbers; got {values!r}"
        ) from None


def strings(record: object, name: str) -> None:
    value = getattr(record, name)
    if isinstance(value, str) or not all(isinstance(item, str) and item for item in value):
        raise ValueError(
            f"{type(record).__name__}.{name} must be a sequence of non-empty strings; got {value!r}"
        )
    assign(record, name, tuple(value))


def stamp(record: object, name: str) -> None:
    value = getattr(record, name)
    if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
        raise ValueError(
            f"{type(record).__name__}.{name} must be a timezone-aware datetime or None; "
            f"got {value!r}"
        )


def finite(record: object, name: str, *, minimum: float | None = None, above: bool = False) -> None:
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
    assign(record, name, number)


def vote(record: object, name: str) -> None:
    value = getattr(record, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value not in VOTES:
        raise ValueError(f"{type(record).__name__}.{name} must be -1, 0 or 1; got {value!r}")
    assign(record, name, int(value))


def member(record: object, name: str, kind: type[StrEnum]) -> None:
    """One of the enum's values, stored as its member (the database keeps the value string)."""
    value = getattr(record, name)
    try:
        found = kind(value)
    except (ValueError, TypeError):
        raise ValueError(
            f"{type(record).__name__}.{name} must be one of {', '.join(kind)}; got {value!r}"
        ) from None
    assign(record, name, found)
