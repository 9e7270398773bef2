"""Training with Ray Tune and the champions: training_runs, inference_backtests, training_queue,
promotions; regime_best_models gains the champion flag and what a promotion records.

A Tune experiment is a ``runs`` row, so ``training_runs.experiment`` refers to ``runs``. At most
one row of ``regime_best_models`` per (specialty, regime) is the champion: a partial unique index
(PostgreSQL and SQLite both have them). The new columns of ``regime_best_models`` have server
defaults, so rows written before this revision read as non-champion evolution candidates.
SQLite alters tables in batch mode (copy and rename), the only way it drops columns.

Revision ID: 0004
Revises: 0003
Create Date: 2025-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only auto-numbers a column declared exactly INTEGER PRIMARY KEY.
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_CHAMPION_INDEX = "uq_regime_best_models_champion"
_NEW_REGIME_BEST_COLUMNS = (
    "source",
    "is_champion",
    "dsr",
    "n_trials",
    "checkpoint_path",
    "checkpoint_sha256",
    "inference_json",
)


def _digest(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(64), nullable=nullable)


def _text(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Text(), nullable=nullable)


def _double(name: str) -> sa.Column:
    return sa.Column(name, sa.Double(), nullable=True)


def _stamp(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "training_runs",
        _digest("config_hash"),
        _digest("experiment"),
        sa.Column("specialty", sa.String(32), nullable=False),
        sa.Column("dataset", sa.String(128), nullable=False),
        _text("config_json"),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _text("reason"),
        _text("metrics_json"),
        _text("per_regime_json"),
        _double("sharpe"),
        _double("max_drawdown"),
        _double("hit_rate"),
        _text("model_path", nullable=True),
        _digest("model_sha256", nullable=True),
        _digest("dataset_digest"),
        _double("train_seconds"),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("kept", sa.Boolean(), nullable=False),
        _stamp("created_at"),
        _stamp("updated_at"),
        sa.PrimaryKeyConstraint("config_hash", name="pk_training_runs"),
        sa.ForeignKeyConstraint(
            ["experiment"],
            ["runs.run_id"],
            name="fk_training_runs_experiment_runs",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_training_runs_experiment", "training_runs", ["experiment"])
    op.create_index("ix_training_runs_specialty_status", "training_runs", ["specialty", "status"])
    op.create_table(
        "inference_backtests",
        _digest("config_hash"),
        _digest("inference_hash"),
        _text("inference_json"),
        _text("metrics_json"),
        _text("per_regime_json"),
        _double("sharpe"),
        _stamp("created_at"),
        sa.PrimaryKeyConstraint("config_hash", "inference_hash", name="pk_inference_backtests"),
        sa.ForeignKeyConstraint(
            ["config_hash"],
            ["training_runs.config_hash"],
            name="fk_inference_backtests_config_hash_training_runs",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "training_queue",
        _digest("config_hash"),
        sa.Column("grid", sa.String(128), nullable=False),
        _digest("grid_hash"),
        sa.Column("specialty", sa.String(32), nullable=False),
        _text("config_json"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _text("reason"),
        _stamp("created_at"),
        _stamp("updated_at"),
        sa.PrimaryKeyConstraint("config_hash", name="pk_training_queue"),
    )
    op.create_index("ix_training_queue_status_position", "training_queue", ["status", "position"])
    op.create_table(
        "promotions",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("specialty", sa.String(32), nullable=False),
        sa.Column("regime", sa.String(32), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        _text("challenger"),
        _text("incumbent", nullable=True),
        _text("reason"),
        _text("before_json"),
        _text("after_json"),
        _double("dsr"),
        sa.Column("n_trials", sa.Integer(), nullable=False),
        sa.Column("margin", sa.Double(), nullable=False),
        _stamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_promotions"),
    )
    op.create_index("ix_promotions_specialty_regime", "promotions", ["specialty", "regime"])

    with op.batch_alter_table("regime_best_models") as batch:
        batch.add_column(
            sa.Column("source", sa.String(16), nullable=False, server_default="evolution")
        )
        batch.add_column(
            sa.Column("is_champion", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(_double("dsr"))
        batch.add_column(sa.Column("n_trials", sa.Integer(), nullable=True))
        batch.add_column(_text("checkpoint_path", nullable=True))
        batch.add_column(_digest("checkpoint_sha256", nullable=True))
        batch.add_column(
            sa.Column("inference_json", sa.Text(), nullable=False, server_default="{}")
        )
    op.create_index(
        _CHAMPION_INDEX,
        "regime_best_models",
        ["specialty", "regime"],
        unique=True,
        postgresql_where=sa.text("is_champion"),
        sqlite_where=sa.text("is_champion"),
    )


def downgrade() -> None:
    # The partial index first: SQLite's batch copy would otherwise have to carry it over.
    op.drop_index(_CHAMPION_INDEX, table_name="regime_best_models")
    with op.batch_alter_table("regime_best_models") as batch:
        for name in reversed(_NEW_REGIME_BEST_COLUMNS):
            batch.drop_column(name)
    op.drop_index("ix_promotions_specialty_regime", table_name="promotions")
    op.drop_table("promotions")
    op.drop_index("ix_training_queue_status_position", table_name="training_queue")
    op.drop_table("training_queue")
    op.drop_table("inference_backtests")
    op.drop_index("ix_training_runs_specialty_status", table_name="training_runs")
    op.drop_index("ix_training_runs_experiment", table_name="training_runs")
    op.drop_table("training_runs")
