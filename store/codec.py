"""Records to rows and back, the one mapping every repository uses.

A record's fields have its table's column names, except the JSON text columns (``config_json``,
``metrics_json``, ...), which hold the canonical JSON of the decoded field (:func:`dumps`: equal
values give equal text, so an unchanged row compares equal and an upsert leaves it alone).
Enum members are written as their value strings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import fields
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from sqlalchemy.engine import RowMapping

from store.database import STAMPS

__all__ = ["JSON_COLUMNS", "dumps", "from_row", "regime_sharpes", "to_row"]

#: Record fields kept as JSON text, and their columns.
JSON_COLUMNS = {
    "config": "config_json",
    "dataset_digests": "dataset_digests",
    "settings": "settings_json",
    "parents": "parents",
    "operators": "operators",
    "objectives": "objectives",
    "metrics": "metrics_json",
    "per_regime": "per_regime_json",
    "hall_of_fame": "hall_of_fame",
    "inference": "inference_json",
    "before": "before_json",
    "after": "after_json",
}

_R = TypeVar("_R")


def dumps(value: Any) -> str:
    """Canonical JSON text: equal values give equal text, so an unchanged row compares equal."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def to_row(record: Any, **stamps: datetime | None) -> dict[str, Any]:
    """A record as column values: JSON fields as canonical text, enums as their values,
    ``stamps`` as given."""
    values: dict[str, Any] = {}
    for item in fields(record):
        value = getattr(record, item.name)
        if item.name in JSON_COLUMNS:
            values[JSON_COLUMNS[item.name]] = dumps(value)
        elif item.name not in STAMPS:  # the store stamps them
            values[item.name] = value.value if isinstance(value, Enum) else value
    return values | stamps


def from_row(cls: type[_R], row: RowMapping) -> _R:
    """A row as a record; the record's checks turn JSON lists back into tuples."""
    values = {
        item.name: json.loads(row[JSON_COLUMNS[item.name]])
        if item.name in JSON_COLUMNS
        else row[item.name]
        for item in fields(cls)  # type: ignore[arg-type]
    }
    return cls(**values)


def regime_sharpes(per_regime_texts: Iterable[str], regime: str) -> list[float]:
    """``per_regime[regime]["sharpe"]`` of each ``per_regime_json`` text, finite values only."""
    sharpes: list[float] = []
    for raw in per_regime_texts:
        value = (json.loads(raw).get(regime) or {}).get("sharpe")
        if isinstance(value, int | float) and math.isfinite(value):
            sharpes.append(float(value))
    return sharpes
