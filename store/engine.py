"""SQLAlchemy engines for the two backends, set up so concurrent writers behave.

SQLite: WAL journal (readers never block the writer), a busy timeout (a second writer waits instead
of failing with "database is locked"), and transactions that SQLAlchemy really controls. Python's
sqlite3 module opens transactions lazily and never around DDL; Redline turns that off and emits
``BEGIN`` itself, ``BEGIN IMMEDIATE`` for writes, so a write transaction takes the write lock up
front and two processes applying migrations at once queue instead of racing.

PostgreSQL: psycopg 3, with pre-ping so long-lived Ray actors survive a server restart.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from store.urls import normalize_url, sqlite_file

logger = logging.getLogger(__name__)

#: How long a SQLite writer waits for another one before giving up.
SQLITE_BUSY_TIMEOUT_S = 60.0

_BEGIN_OPTION = "redline_sqlite_begin"


def create_store_engine(url: str) -> Engine:
    """An engine for a Redline database URL (already checked, or checked here)."""
    url = normalize_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True)


def _sqlite_engine(url: str) -> Engine:
    path = sqlite_file(url)
    kwargs: dict[str, Any] = {
        "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
    }
    if path is None:
        # One shared connection, or every checkout would see a different empty in-memory database.
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver: transactions start only where the "begin" hook says.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if path is not None:
                _switch_to_wal(cursor, SQLITE_BUSY_TIMEOUT_S)
                # Durable at every checkpoint; with WAL this loses no committed write on a crash
                # of the process, only possibly the last ones on a power cut.
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(connection.get_execution_options().get(_BEGIN_OPTION, "BEGIN"))

    return engine


def _switch_to_wal(cursor: sqlite3.Cursor, timeout_s: float) -> None:
    """Put the database in WAL mode, waiting up to ``timeout_s`` for the lock it needs.

    The switch needs an exclusive lock. On a database created a moment ago by another process,
    whose first write (which records WAL in the file's header) has not committed yet, SQLite
    refuses the switch with "database is locked" *at once*, without calling the busy handler (it
    would deadlock with the other process's write); so this waits itself, briefly and repeatedly,
    until the other process has committed (the header then says WAL and nothing is left to do)
    or ``timeout_s`` has passed, and then says how long it waited.
    """
    if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return  # the mode is in the file's header: nothing to switch
    deadline = time.monotonic() + timeout_s
    pause = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                raise sqlite3.OperationalError(
                    f"database is locked: gave up after {timeout_s:g} s waiting for another "
                    "process to release it (switching the new database to WAL)"
                ) from exc
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.25)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction that will write: committed on success, rolled back on any exception.

    On SQLite it takes the write lock at BEGIN, so it never fails half-way for want of the lock.
    """
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
        with connection.begin():
            yield connection
