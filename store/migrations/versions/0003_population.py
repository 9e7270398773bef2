"""The population of an evolution run: runs, agents, generations, kills, regime_best_models.

Agent ids are unique within a run only, so ``agents`` is keyed by (run_id, agent_id) and ``kills``
refers to an agent by both. JSON columns are text (canonical, sorted keys) on both backends.

Revision ID: 0003
Revises: 0002
Create Date: 2025-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only auto-numbers a column declared exactly INTEGER PRIMARY KEY.
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(64), nullable=nullable)


def _stamp(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["run_id"], ["runs.run_id"], name=f"fk_{table}_run_id_runs", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "runs",
        _id("run_id"),
        _stamp("created_at"),
        _stamp("updated_at"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("config_json", sa.Text(), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("root_seed", sa.BigInteger(), nullable=False),
        sa.Column("generations_planned", sa.Integer(), nullable=False),
        sa.Column("generations_done", sa.Integer(), nullable=False),
        sa.Column("dataset_digests", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
    )
    op.create_table(
        "agents",
        _id("run_id"),
        _id("agent_id"),
        sa.Column("specialty", sa.String(32), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("genome_json", sa.Text(), nullable=False),
        sa.Column("genome_digest", sa.String(64), nullable=False),
        sa.Column("parents", sa.Text(), nullable=False),
        sa.Column("operators", sa.Text(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("objectives", sa.Text(), nullable=False),
        sa.Column("sharpe", sa.Double(), nullable=True),
        sa.Column("max_drawdown", sa.Double(), nullable=True),
        sa.Column("hit_rate", sa.Double(), nullable=True),
        sa.Column("metrics_json", sa.Text(), nullable=False),
        sa.Column("per_regime_json", sa.Text(), nullable=False),
        sa.Column("train_seconds", sa.Double(), nullable=True),
        sa.Column("checkpoint_path", sa.Text(), nullable=True),
        sa.Column("checkpoint_sha256", sa.String(64), nullable=True),
        sa.Column("dataset_digest", sa.String(64), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("killed_generation", sa.Integer(), nullable=True),
        _stamp("created_at"),
        _stamp("updated_at"),
        sa.PrimaryKeyConstraint("run_id", "agent_id", name="pk_agents"),
        _run_fk("agents"),
    )
    op.create_index("ix_agents_run_id_generation", "agents", ["run_id", "generation"])
    op.create_index("ix_agents_run_id_specialty", "agents", ["run_id", "specialty"])
    op.create_table(
        "generations",
        _id("run_id"),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("specialty", sa.String(32), nullable=False),
        sa.Column("born", sa.Integer(), nullable=False),
        sa.Column("evaluated", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("killed", sa.Integer(), nullable=False),
        sa.Column("alive", sa.Integer(), nullable=False),
        sa.Column("best_fitness", sa.Double(), nullable=True),
        sa.Column("median_fitness", sa.Double(), nullable=True),
        _id("best_agent_id", nullable=True),
        sa.Column("hall_of_fame", sa.Text(), nullable=False),
        _stamp("finished_at"),
        sa.PrimaryKeyConstraint("run_id", "generation", "specialty", name="pk_generations"),
        _run_fk("generations"),
    )
    op.create_table(
        "kills",
        _id("run_id"),
        _id("agent_id"),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        _stamp("killed_at"),
        sa.PrimaryKeyConstraint("run_id", "agent_id", name="pk_kills"),
        sa.ForeignKeyConstraint(
            ["run_id", "agent_id"],
            ["agents.run_id", "agents.agent_id"],
            name="fk_kills_run_id_agents",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "regime_best_models",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        _id("run_id"),
        sa.Column("specialty", sa.String(32), nullable=False),
        sa.Column("regime", sa.String(32), nullable=False),
        _id("agent_id"),
        sa.Column("sharpe", sa.Double(), nullable=True),
        sa.Column("metrics_json", sa.Text(), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        _stamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_regime_best_models"),
        sa.UniqueConstraint(
            "run_id", "specialty", "regime", name="uq_regime_best_models_run_specialty_regime"
        ),
        _run_fk("regime_best_models"),
    )


def downgrade() -> None:
    # Children before parents: kills refer to agents, everything refers to runs.
    op.drop_table("regime_best_models")
    op.drop_table("kills")
    op.drop_table("generations")
    op.drop_index("ix_agents_run_id_specialty", table_name="agents")
    op.drop_index("ix_agents_run_id_generation", table_name="agents")
    op.drop_table("agents")
    op.drop_table("runs")
