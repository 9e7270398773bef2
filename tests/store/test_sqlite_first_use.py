"""Two processes on a new SQLite database: the second waits for the first, boundedly.

SQLite refuses to switch a database to WAL *at once* ("database is locked", without waiting on
the busy timeout) while another connection is in the middle of its first write; that is what
made the concurrent first use in ``test_migrations`` fail now and then. Here another writer holds
that lock for real (a plain ``sqlite3`` connection writing a new database), so the race is not
left to chance.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from store import engine as store_engine
from store.db import Store
from store.errors import StoreConnectionError


@pytest.fixture
def writing(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A new database file whose first write is under way in another connection."""
    other = sqlite3.connect(tmp_path / "redline.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE another_writers_table (x INTEGER)")
    with closing(other):
        yield other


def test_first_use_waits_for_a_writer_of_the_new_database(
    tmp_path: Path, writing: sqlite3.Connection
) -> None:
    release = threading.Timer(0.5, writing.execute, args=("COMMIT",))
    release.start()
    started = time.monotonic()
    try:
        with Store.open(f"sqlite:///{tmp_path / 'redline.db'}") as store:
            waited = time.monotonic() - started
            with store.database.engine.connect() as connection:
                mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar_one()
            assert store.regimes.regime_rules().window == "7d"  # migrated and seeded
    finally:
        release.join()
    assert mode == "wal"
    assert waited >= 0.4  # it waited for the commit instead of failing at once


def test_first_use_gives_up_after_the_busy_timeout_and_says_so(
    tmp_path: Path, writing: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_engine, "SQLITE_BUSY_TIMEOUT_S", 0.3)
    url = f"sqlite:///{tmp_path / 'redline.db'}"
    with pytest.raises(
        StoreConnectionError,
        match=r"cannot open the database at sqlite:///.*redline\.db: database is locked: gave up "
        r"after 0\.3 s waiting for another process to release it \(switching the new database "
        r"to WAL\)",
    ):
        Store.open(url)
    writing.execute("ROLLBACK")
    with Store.open(url) as store:  # nothing was left half-made: the next open migrates
        assert store.regimes.regime_rules().window == "7d"
