"""The one database object: engine, clock, transactions and the upsert every repository shares.

A :class:`Database` is opened once (``Database.open``: migrated to the newest schema) and handed to
each topic repository (``store.candles.CandleStore``, ``store.regimes.RegimeStore``,
``store.runs.RunStore``, ``store.champions.ChampionStore``, ``store.training.TrainingStore``,
``store.trades.TradesStore``, ``store.rugpulls.RugpullStore``), which use only this public API and their own tables.

Transactions belong to the database, not to a repository: inside ``with db.transaction():`` every
read and write of this thread, through any repository on ``db``, is one transaction (committed at
the end, rolled back by any exception); a nested ``transaction()`` joins the outer one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, Insert, Table, and_, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.elements import ColumnElement

from store.engine import create_store_engine, write_transaction
from store.errors import StoreConnectionError
from store.migrate import upgrade_engine
from store.urls import default_url, display_url, prepare_url

__all__ = ["STAMPS", "Clock", "Database", "utcnow"]

logger = logging.getLogger(__name__)

#: Columns (and record fields) the store stamps with its clock: never a reason to update a row, and
#: left out of a record's row unless given (``store.codec.to_row``).
STAMPS = frozenset({"created_at", "updated_at", "killed_at", "finished_at", "detected_at"})

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The real clock (UTC)."""
    return datetime.now(UTC)


class Database:
    """One SQLite or PostgreSQL database. Build it with :meth:`Database.open`; thread-safe."""

    def __init__(self, engine: Engine, *, clock: Clock = utcnow) -> None:
        self._engine = engine
        self._clock = clock
        self._local = threading.local()  # the open transaction's connection, per thread

    # -- lifecycle -------------------------------------------------------------------------------

    @classmethod
    def open(
        cls, url: str | None = None, home: Path | None = None, *, clock: Clock = utcnow
    ) -> Database:
        """Open the database and migrate it to the newest schema.

        ``url`` None means REDLINE_DATABASE_URL, else SQLite at ``<home>/redline.db`` (``home``
        None: REDLINE_HOME or ./redline_data). The SQLite file's folder is created. ``clock``
        stamps every ``created_at``/``updated_at``/... the repositories write (UTC).
        """
        resolved = prepare_url(url if url is not None else default_url(home))
        engine = create_store_engine(resolved)
        try:
            upgrade_engine(engine)
        except OperationalError as exc:
            engine.dispose()
            raise StoreConnectionError(
                f"cannot open the database at {display_url(engine.url)}: {exc.orig}"
            ) from exc
        except BaseException:
            engine.dispose()
            raise
        logger.debug("opened %s", display_url(engine.url))
        return cls(engine, clock=clock)

    def upgrade(self) -> str | None:
        """Apply any migrations not applied yet (idempotent); returns the revision."""
        return upgrade_engine(self._engine)

    def close(self) -> None:
        """Close every pooled connection. The database must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for code that adds its own tables through migrations."""
        return self._engine

    @property
    def url(self) -> str:
        """The full URL, password included: for handing to actors, never for printing."""
        return self._engine.url.render_as_string(hide_password=False)

    @property
    def url_for_display(self) -> str:
        """The database URL with its password masked."""
        return display_url(self._engine.url)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return str(self._engine.dialect.name)

    def now(self) -> datetime:
        """The clock's time (UTC): what every stamp written now says."""
        return self._clock()

    def __repr__(self) -> str:
        return f"Database({self.url_for_display!r})"

    # -- transactions ----------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Every write and read of this thread inside the block is one transaction.

        Committed when the block ends, rolled back when it raises: nothing of it is stored. A
        nested ``transaction()`` joins the outer one.
        """
        active = self._active()
        if active is not None:
            yield active
            return
        with write_transaction(self._engine) as connection:
            self._local.connection = connection
            try:
                yield connection
            finally:
                self._local.connection = None

    def _active(self) -> Connection | None:
        return getattr(self._local, "connection", None)

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A connection to write with: the open transaction's, else a transaction of its own."""
        active = self._active()
        if active is not None:
            yield active
            return
        with write_transaction(self._engine) as connection:
            yield connection

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection to read with: the open transaction's (it sees its own writes), else a
        fresh one."""
        active = self._active()
        if active is not None:
            yield active
            return
        with self._engine.connect() as connection:
            yield connection

    # -- statements ------------------------------------------------------------------------------

    def insert(self, table: Table) -> Any:
        """The backend's INSERT (which has ``on_conflict_do_nothing``/``_do_update``)."""
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    def upsert(
        self,
        table: Table,
        keys: Sequence[str],
        columns: Iterable[str],
        *,
        only_if: Callable[[Any], ColumnElement[bool]] | None = None,
        only_changed: bool = True,
    ) -> Insert:
        """INSERT .. ON CONFLICT (keys) DO UPDATE of ``columns`` (``created_at`` is never updated);
        execute it with the rows' values.

        ``only_changed``: update only a stored row whose content (every column but the
        :data:`STAMPS`) differs, so an unchanged row keeps even its ``updated_at``.
        ``only_if(statement)`` adds a condition on the stored row and ``statement.excluded``.
        """
        statement = self.insert(table)
        updated = [name for name in columns if name not in keys and name != "created_at"]
        conditions: list[ColumnElement[bool]] = []
        if only_changed:
            conditions.append(
                or_(
                    *(
                        table.c[name].is_distinct_from(statement.excluded[name])
                        for name in updated
                        if name not in STAMPS
                    )
                )
            )
        if only_if is not None:
            conditions.append(only_if(statement))
        set_ = {name: statement.excluded[name] for name in updated}
        where = and_(*conditions) if conditions else None
        upsert: Insert = statement.on_conflict_do_update(
            index_elements=list(keys), set_=set_, where=where
        )
        return upsert
