"""Predictions remember the series they were made on: ``exchange``, ``symbol``, ``timeframe`` and
``as_of`` (the open time, ms UTC, of the last candle read), so that feedback is checked against
its prediction: a trade on another symbol, or entered before the candle the prediction read, is
refused (``serving.feedback``). Nullable: predictions stored before this revision have none, and
feedback on them is checked as before.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("exchange", sa.String(32)),
    ("symbol", sa.String(64)),
    ("timeframe", sa.String(8)),
    ("as_of", sa.BigInteger()),
)


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        for name, kind in _COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    # In place, not a batch copy (which on SQLite drops and recreates the table, and with foreign
    # keys on would take whatever references it along): SQLite drops a column in place since 3.35.
    for name, _ in reversed(_COLUMNS):
        op.drop_column("predictions", name)
