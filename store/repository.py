"""What every topic repository is: a view of its own tables in one :class:`Database`."""

from __future__ import annotations

from contextlib import AbstractContextManager

from sqlalchemy import Connection

from store.database import Database

__all__ = ["Repository"]


class Repository:
    """A repository works on the tables of its topic in ``database``, through its public API only.

    Repositories on one database share its transactions: inside ``with repo.transaction():`` (or
    ``database.transaction()``) writes through any of them are one transaction.
    """

    def __init__(self, database: Database) -> None:
        if not isinstance(database, Database):
            raise TypeError(
                f"{type(self).__name__} needs a store.database.Database; got {database!r}"
            )
        self._db = database

    @property
    def database(self) -> Database:
        """The database this repository works in."""
        return self._db

    @property
    def dialect(self) -> str:
        return self._db.dialect

    def transaction(self) -> AbstractContextManager[Connection]:
        """``Database.transaction``: every read and write of this thread inside the block, through
        any repository on the same database, is one transaction; a nested one joins it."""
        return self._db.transaction()
