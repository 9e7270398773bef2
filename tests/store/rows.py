"""Helpers the store contract suites share: a hand-moved clock, row counts, records as text,
table names."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, inspect, select

from store.database import Database
from store.db import Store
from store.engine import create_store_engine


class Clock:
    """A frozen UTC clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = datetime(2024, 4, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, minutes: int = 1) -> datetime:
        self.now += timedelta(minutes=minutes)
        return self.now


def count_rows(store: Store, model: Any, **where: Any) -> int:
    """Rows of an ORM table, optionally those whose columns equal ``where``."""
    query = select(func.count()).select_from(model)
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    with store.database.engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def record_content(record: Any) -> str:
    """A record without its store-made stamps, as text (NaN compares equal to NaN here)."""
    fields = {k: v for k, v in asdict(record).items() if k not in {"created_at", "updated_at"}}
    return json.dumps(fields, sort_keys=True, default=str)


def table_names(url: str) -> set[str]:
    """The tables of the database at ``url``, read with a throwaway engine."""
    engine = create_store_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def clocked(store: Store, clock: Clock) -> Store:
    """The repositories of ``store``'s database with ``clock`` stamping their writes."""
    return Store(Database(store.database.engine, clock=clock))
