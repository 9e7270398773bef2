"""Alembic's environment for the store.

``store.migrate`` runs the migrations with an open connection, already inside the transaction that
serializes concurrent upgrades, passed as ``config.attributes["connection"]``. The ``alembic``
command line also works (``alembic -x url=... upgrade head`` with a config whose script_location is
this folder); the URL then comes from ``-x url=``, ``sqlalchemy.url`` or REDLINE_DATABASE_URL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from store.models import Base

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _url() -> str:
    from store.urls import default_url, normalize_url

    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    return normalize_url(url or default_url())


def run_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        target_metadata=Base.metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},  # or psycopg's "%" would print doubled
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from store.engine import create_store_engine
    from store.migrate import migration_lock

    engine = create_store_engine(_url())
    try:
        with migration_lock(engine) as locked:
            _configure(locked)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
