"""Candles, regime definitions, and what ingestion needs to resume (cursors and gaps).

Revision ID: 0001
Revises:
Create Date: 2025-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only auto-numbers a column declared exactly INTEGER PRIMARY KEY.
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _series_columns() -> list[sa.Column]:
    return [
        sa.Column("exchange", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "market_data",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        *_series_columns(),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("open", sa.Double(), nullable=False),
        sa.Column("high", sa.Double(), nullable=False),
        sa.Column("low", sa.Double(), nullable=False),
        sa.Column("close", sa.Double(), nullable=False),
        sa.Column("volume", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_market_data"),
        sa.UniqueConstraint(
            "exchange", "symbol", "timeframe", "ts", name="uq_market_data_series_ts"
        ),
    )
    op.create_table(
        "regime_definitions",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("trend_min", sa.Double(), nullable=True),
        sa.Column("trend_max", sa.Double(), nullable=True),
        sa.Column("vol_min", sa.Double(), nullable=True),
        sa.Column("vol_max", sa.Double(), nullable=True),
        sa.Column("window", sa.String(16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_regime_definitions"),
    )
    op.create_table(
        "series_cursors",
        *_series_columns(),
        sa.Column("last_ts", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("exchange", "symbol", "timeframe", name="pk_series_cursors"),
    )
    op.create_table(
        "series_gaps",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        *_series_columns(),
        sa.Column("start_ts", sa.BigInteger(), nullable=False),
        sa.Column("end_ts", sa.BigInteger(), nullable=False),
        sa.Column("missing", sa.Integer(), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_series_gaps"),
        sa.UniqueConstraint(
            "exchange", "symbol", "timeframe", "start_ts", name="uq_series_gaps_series_start"
        ),
    )


def downgrade() -> None:
    op.drop_table("series_gaps")
    op.drop_table("series_cursors")
    op.drop_table("regime_definitions")
    op.drop_table("market_data")
