"""Redline's store: candles, ingestion bookkeeping and regime definitions in SQLite or PostgreSQL.

``store.db.Store`` is the repository (``Store.open()``), ``store.migrate.upgrade()`` applies the
Alembic migrations (``redline db upgrade``), ``store.paths.DataRoot`` is the data root's layout.
Importing this package imports nothing heavy; import the submodules.
"""
