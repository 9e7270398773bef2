"""Alembic migrations for the store; see store/migrate.py for how they are run."""
