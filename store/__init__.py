"""Redline's store: candles, regime definitions, the population, training, champions and feedback
in SQLite or PostgreSQL.

``store.db.Store.open()`` opens one ``store.database.Database`` and hands it to the topic
repositories (``store.candles``, ``store.regimes``, ``store.runs``, ``store.champions``,
``store.training``, ``store.trades``); their records are in ``store.records.<topic>``.
``store.migrate.upgrade()`` applies the Alembic migrations (``redline db upgrade``),
``store.paths.DataRoot`` is the data root's layout. Importing this package imports nothing heavy;
import the submodules.
"""
