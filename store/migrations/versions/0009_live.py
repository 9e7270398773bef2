"""The living loop's bookkeeping (``store.live.LiveStore``; ``live/``):

- ``live_series``: the watch list: each series, when it was added, how many labelled examples it
  has and when training turned on for it (``auto_enable_threshold``);
- ``live_jobs``: each schedule's last slot, when it last started and finished, its outcome;
- ``live_events``: what the loop did and decided (backfill, retrain, promotion, refusal, swap,
  decay, expiry, retention, errors), at the loop's clock (simulated in a replay), with numbers;
- ``live_answers``: what the ensemble answered at each candle close of a watched series
  (direction, position size), the equity of the replay report;
- ``vote_labels``: each served vote's realized forward return once its horizon has passed;
- ``champion_validations``: each re-validation of a champion on the newest window.

Times are integer ms UTC of the loop's clock (not wall time: a replay runs months in minutes).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _series() -> list[sa.Column]:
    return [
        sa.Column("exchange", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "live_series",
        *_series(),
        sa.Column("added_ms", sa.BigInteger(), nullable=False),
        sa.Column("labelled", sa.Integer(), nullable=False),
        sa.Column("enabled_ms", sa.BigInteger(), nullable=True),
        sa.Column("label_cursor", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("exchange", "symbol", "timeframe", name="pk_live_series"),
    )
    op.create_table(
        "live_jobs",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("last_slot_ms", sa.BigInteger(), nullable=True),
        sa.Column("started_ms", sa.BigInteger(), nullable=True),
        sa.Column("finished_ms", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_live_jobs"),
    )
    op.create_table(
        "live_events",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(160), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_live_events"),
    )
    op.create_index("ix_live_events_at_ms", "live_events", ["at_ms"])
    op.create_table(
        "live_answers",
        *_series(),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("direction", sa.Integer(), nullable=False),
        sa.Column("size", sa.Double(), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("regime", sa.String(32), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("exchange", "symbol", "timeframe", "ts", name="pk_live_answers"),
    )
    op.create_table(
        "vote_labels",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("as_of", sa.BigInteger(), nullable=False),
        sa.Column("horizon", sa.Integer(), nullable=False),
        sa.Column("vote", sa.Integer(), nullable=False),
        sa.Column("forward_return", sa.Double(), nullable=False),
        sa.Column("hit", sa.Boolean(), nullable=True),
        sa.Column("labelled_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "run_id", "agent_id", name="pk_vote_labels"),
    )
    op.create_index("ix_vote_labels_run_id_agent_id", "vote_labels", ["run_id", "agent_id"])
    op.create_table(
        "champion_validations",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("specialty", sa.String(32), nullable=False),
        sa.Column("regime", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("window_from", sa.BigInteger(), nullable=False),
        sa.Column("window_to", sa.BigInteger(), nullable=False),
        sa.Column("bars", sa.Integer(), nullable=False),
        sa.Column("sharpe", sa.Double(), nullable=True),
        sa.Column("dsr", sa.Double(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_champion_validations"),
    )
    op.create_index(
        "ix_champion_validations_run_id_agent_id", "champion_validations", ["run_id", "agent_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_champion_validations_run_id_agent_id", table_name="champion_validations")
    op.drop_table("champion_validations")
    op.drop_index("ix_vote_labels_run_id_agent_id", table_name="vote_labels")
    op.drop_table("vote_labels")
    op.drop_table("live_answers")
    op.drop_index("ix_live_events_at_ms", table_name="live_events")
    op.drop_table("live_events")
    op.drop_table("live_jobs")
    op.drop_table("live_series")
