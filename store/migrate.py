"""Applying the Alembic migrations in ``store/migrations``, from code (no alembic.ini needed).

:func:`upgrade` is what ``redline db upgrade`` calls and what :meth:`store.database.Database.open` runs on
first use. It is idempotent, and safe when several processes start on a fresh database at once
(Ray actors opening the store together): the whole upgrade runs in one transaction that first
takes a lock (PostgreSQL: an advisory lock; SQLite: ``BEGIN IMMEDIATE``), so the others wait, then
find the schema at head and do nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from store.engine import create_store_engine, write_transaction
from store.urls import default_url, display_url, prepare_url

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Any fixed 64-bit number: the key of the PostgreSQL advisory lock that serializes upgrades.
_PG_LOCK_KEY = 0x5245444C494E45  # "REDLINE"

# Alembic keeps the running migration's context in module globals: one migration per process.
_PROCESS_LOCK = threading.Lock()


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config whose script_location is the package's migrations folder."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def head_revision() -> str:
    """The newest revision the package ships."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no Alembic revisions found in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None before the first migration)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def migration_lock(engine: Engine) -> Iterator[Connection]:
    """A write transaction that no other upgrade of the same database runs beside."""
    with _PROCESS_LOCK, write_transaction(engine) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        yield connection


def upgrade_engine(engine: Engine, revision: str = "head") -> str | None:
    """Migrate the engine's database to ``revision``; returns the revision it ends at."""
    if revision == "head" and current_revision(engine) == head_revision():
        return head_revision()  # the common case, without taking the write lock
    with migration_lock(engine) as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        command.upgrade(alembic_config(connection), revision)
        after = MigrationContext.configure(connection).get_current_revision()
    if before != after:
        logger.info("migrated %s from %s to %s", display_url(engine.url), before or "empty", after)
    return after


def downgrade_engine(engine: Engine, revision: str) -> str | None:
    """Migrate the engine's database down to ``revision`` (``"base"`` drops every table)."""
    with migration_lock(engine) as connection:
        command.downgrade(alembic_config(connection), revision)
        after = MigrationContext.configure(connection).get_current_revision()
    logger.info("downgraded %s to %s", display_url(engine.url), after or "base")
    return after


def upgrade(
    url: str | None = None, *, home: Path | None = None, revision: str = "head"
) -> str | None:
    """Migrate the database at ``url`` to ``revision`` (default: the newest); idempotent.

    ``url`` None means REDLINE_DATABASE_URL, else SQLite at ``<home>/redline.db`` (``home`` None:
    REDLINE_HOME or ./redline_data); the SQLite file's folder is created. Returns the revision.
    """
    engine = create_store_engine(prepare_url(url if url is not None else default_url(home)))
    try:
        return upgrade_engine(engine, revision)
    finally:
        engine.dispose()


def downgrade(
    url: str | None = None, *, home: Path | None = None, revision: str = "base"
) -> str | None:
    """Migrate the database down to ``revision``; ``"base"`` removes every Redline table."""
    engine = create_store_engine(prepare_url(url if url is not None else default_url(home)))
    try:
        return downgrade_engine(engine, revision)
    finally:
        engine.dispose()
