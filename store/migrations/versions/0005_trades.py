"""Serving's feedback: predictions, trades and their attribution to the members that voted.

``predictions`` remembers what every ``/v1/predict`` answered (the members, their votes and
weights), keyed by the response's request id, so that a trade reported later by ``/v1/feedback``
can be attributed to the members it acted on. ``trades`` holds one reported trade per request id
(a replayed report changes nothing); ``trade_attributions`` one row per member that voted, keyed
by the trade and the member's (run_id, agent_id). A member is not a foreign key: a run may be
deleted while the trades it served stay on record.

Revision ID: 0005
Revises: 0004
Create Date: 2025-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only auto-numbers a column declared exactly INTEGER PRIMARY KEY.
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _stamp(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def _double(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Double(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("regime", sa.String(32), nullable=False),
        sa.Column("members_json", sa.Text(), nullable=False),
        _stamp("created_at"),
        sa.PrimaryKeyConstraint("request_id", name="pk_predictions"),
    )
    op.create_table(
        "trades",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("exchange", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("entry_ts", sa.BigInteger(), nullable=False),
        sa.Column("exit_ts", sa.BigInteger(), nullable=False),
        _double("entry_price"),
        _double("exit_price"),
        _double("qty", nullable=True),
        _double("pnl"),
        _double("fees"),
        _stamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_trades"),
        sa.UniqueConstraint("request_id", name="uq_trades_request_id"),
    )
    op.create_index("ix_trades_exchange_symbol", "trades", ["exchange", "symbol"])
    op.create_table(
        "trade_attributions",
        sa.Column("trade_id", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("specialty", sa.String(32), nullable=False),
        sa.Column("regime", sa.String(32), nullable=False),
        sa.Column("vote", sa.Integer(), nullable=False),
        _double("weight"),
        sa.Column("was_correct", sa.Boolean(), nullable=False),
        _double("profit_contribution"),
        sa.PrimaryKeyConstraint("trade_id", "run_id", "agent_id", name="pk_trade_attributions"),
        sa.ForeignKeyConstraint(
            ["trade_id"],
            ["trades.id"],
            name="fk_trade_attributions_trade_id_trades",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_trade_attributions_run_id_agent_id", "trade_attributions", ["run_id", "agent_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_trade_attributions_run_id_agent_id", table_name="trade_attributions")
    op.drop_table("trade_attributions")
    op.drop_index("ix_trades_exchange_symbol", table_name="trades")
    op.drop_table("trades")
    op.drop_table("predictions")
