"""A run stores its whole config: ``runs.settings_json`` holds every section of the config but
``evolve`` (which ``config_json`` holds): the champion rules, the regime rules, the data and fetch
settings. ``redline evolve --resume`` judges and rebuilds with them instead of whatever config the
resuming command was given. Runs stored before this revision get ``{}`` (nothing known).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("settings_json", sa.Text(), nullable=False, server_default="{}"))


def downgrade() -> None:
    # In place, not a batch copy: on SQLite a batch copy drops and recreates ``runs``, and with
    # foreign keys on that DROP cascades to every run's agents, generations, kills and champions.
    # SQLite drops a column in place since 3.35 (PostgreSQL always has).
    op.drop_column("runs", "settings_json")
