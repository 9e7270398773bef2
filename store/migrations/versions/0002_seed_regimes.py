"""Seed regime_definitions with the four default regimes.

The thresholds come from the ``regimes`` section of ``configs/defaults.yaml`` (in
``$REDLINE_CONFIG_DIR`` when set, else ``<repo root>/configs``); an installed package without the
configs folder falls back to ``market.regimes.RegimeRules()``, the same defaults.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-22
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from alembic import op

from market.regimes import RegimeRule, RegimeRules

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


def defaults_file() -> Path:
    env = os.environ.get("REDLINE_CONFIG_DIR")
    config_dir = Path(env) if env else Path(__file__).resolve().parents[3] / "configs"
    return config_dir / "defaults.yaml"


def default_rules() -> RegimeRules:
    path = defaults_file()
    if not path.is_file():
        logger.info("no %s; seeding the built-in regime rules", path)
        return RegimeRules()
    raw: Any = yaml.safe_load(path.read_text()) or {}
    section = raw.get("regimes") if isinstance(raw, dict) else None
    if not isinstance(section, dict):
        raise ValueError(
            f"{path}: regimes must be a mapping with window and rules; got {section!r}"
        )
    try:
        return RegimeRules(
            window=str(section.get("window", "7d")),
            rules=tuple(RegimeRule(**rule) for rule in section.get("rules") or ()),
        )
    except TypeError as exc:
        raise ValueError(f"{path}: regimes.rules has an unknown key: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def upgrade() -> None:
    rules = default_rules()
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
