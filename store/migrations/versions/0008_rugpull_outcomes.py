"""The rug-pull detector's lifecycle follows feedback: ``rugpull_answers`` remembers what every
``/v1/rugpull`` answered with a champion (the request id, the model version, the champion's run
and agent, the probability, the call and its threshold), ``rugpull_outcomes`` what each token
turned out to be (``POST /v1/rugpull/feedback``: one outcome per answer, an optional note). The
champion's live AUC over its labelled answers moves its stage (``evolution.champions``
``classifier_live_step``). The champion is not a foreign key: a run may be deleted while the
answers it served stay on record (as ``trade_attributions``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _stamp(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "rugpull_answers",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("probability", sa.Double(), nullable=False),
        sa.Column("is_rugpull", sa.Boolean(), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=False),
        _stamp("created_at"),
        sa.PrimaryKeyConstraint("request_id", name="pk_rugpull_answers"),
    )
    op.create_index("ix_rugpull_answers_run_id_agent_id", "rugpull_answers", ["run_id", "agent_id"])
    op.create_table(
        "rugpull_outcomes",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("is_rugpull", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        _stamp("created_at"),
        sa.PrimaryKeyConstraint("request_id", name="pk_rugpull_outcomes"),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["rugpull_answers.request_id"],
            name="fk_rugpull_outcomes_request_id_rugpull_answers",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("rugpull_outcomes")
    op.drop_index("ix_rugpull_answers_run_id_agent_id", table_name="rugpull_answers")
    op.drop_table("rugpull_answers")
