"""Seed regime_definitions with the four default regimes.

The thresholds are ``market.regimes.RegimeRules()``, the built-in rules (their one home). The
table is then synced from the loaded config by every command that opens the store
(``cli.state.open_store``), so a config's own ``regimes:`` replace these.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-22
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from market.regimes import RegimeRules

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

logger = logging.getLogger(__name__)

_regimes = sa.table(
    "regime_definitions",
    sa.column("name", sa.String),
    sa.column("priority", sa.Integer),
    sa.column("trend_min", sa.Double),
    sa.column("trend_max", sa.Double),
    sa.column("vol_min", sa.Double),
    sa.column("vol_max", sa.Double),
    sa.column("window", sa.String),
    sa.column("description", sa.Text),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    rules = RegimeRules()
    now = datetime.now(UTC)
    op.bulk_insert(
        _regimes,
        [
            {
                "name": rule.name,
                "priority": priority,
                "trend_min": rule.trend_min,
                "trend_max": rule.trend_max,
                "vol_min": rule.vol_min,
                "vol_max": rule.vol_max,
                "window": rules.window,
                "description": rule.description,
                "updated_at": now,
            }
            for priority, rule in enumerate(rules.rules)
        ],
    )


def downgrade() -> None:
    op.execute(_regimes.delete())
