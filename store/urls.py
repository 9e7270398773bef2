"""Database URLs: which ones Redline accepts, where the default points, and how to show one safely.

Two backends: SQLite (``sqlite:///abs/path.db``, the embedded default at ``<home>/redline.db``) and
PostgreSQL through psycopg 3 (``postgresql+psycopg://user:pass@host/db``). Passwords never reach a
log line or an error message: everything shown goes through :func:`mask_url`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from store.paths import DB_FILE_NAME, REMOTE_SCHEMES, home_from_env

ENV_URL = "REDLINE_DATABASE_URL"

# Spellings of the PostgreSQL scheme that mean psycopg 3 once rewritten.
_POSTGRES_ALIASES = ("postgresql://", "postgres://", "postgresql+psycopg://")
_SQLITE_PREFIXES = ("sqlite:///", "sqlite+pysqlite:///")
_SQLITE_MEMORY = ("sqlite://", "sqlite+pysqlite://")
_USERINFO = re.compile(r"^(?P<scheme>[^:/]+://)(?P<user>[^:@/]*):(?P<password>[^@/]*)@")


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (also for URLs SQLAlchemy cannot parse)."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)


def normalize_url(url: str) -> str:
    """The URL SQLAlchemy should open: ``postgresql://`` becomes ``postgresql+psycopg://``.

    Raises ValueError naming REDLINE_DATABASE_URL for any other scheme.
    """
    text = url.strip()
    if text in _SQLITE_MEMORY or text.startswith(_SQLITE_PREFIXES):
        return "sqlite://" + text.split("://", 1)[1]
    for alias in _POSTGRES_ALIASES:
        if text.startswith(alias):
            rewritten = "postgresql+psycopg://" + text[len(alias) :]
            try:
                make_url(rewritten)
            except ArgumentError:
                raise ValueError(
                    f"{ENV_URL} is not a valid database URL; got {mask_url(text)!r}"
                ) from None
            return rewritten
    raise ValueError(
        f"{ENV_URL} must start with sqlite:/// or postgresql+psycopg://; got {mask_url(text)!r}"
    )


def default_url(home: Path | None = None) -> str:
    """``REDLINE_DATABASE_URL`` when set, else SQLite at ``<home>/redline.db``.

    ``home`` None means ``REDLINE_HOME`` or ``./redline_data``.
    """
    env = os.environ.get(ENV_URL)
    if env:
        return env
    root = home if home is not None else home_from_env()
    if str(root).startswith(REMOTE_SCHEMES):
        raise ValueError(
            f"the data root {str(root)!r} is remote, and SQLite needs a local file: set {ENV_URL} "
            "to a postgresql+psycopg:// URL"
        )
    return f"sqlite:///{(Path(root).expanduser() / DB_FILE_NAME).resolve()}"


def display_url(url: str | URL) -> str:
    """A URL safe to print: password masked."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    return mask_url(url)


def sqlite_file(url: str) -> Path | None:
    """The database file a SQLite URL names, or None for in-memory databases and other backends."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def prepare_url(url: str) -> str:
    """The normalized URL, with the SQLite file's folder created so the first connect works."""
    url = normalize_url(url)
    path = sqlite_file(url)
    if path is not None:
        path.expanduser().parent.mkdir(parents=True, exist_ok=True)
    return url
