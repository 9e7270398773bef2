"""The regime definitions table, in one :class:`Database`: the rules that label bars with a regime."""

from __future__ import annotations

import logging

from sqlalchemy import Table, delete, select

from market.regimes import RegimeRule, RegimeRules
from store.models import RegimeDefinition
from store.repository import Repository

__all__ = ["RegimeStore"]

logger = logging.getLogger(__name__)

_regimes: Table = RegimeDefinition.__table__  # type: ignore[assignment]


class RegimeStore(Repository):
    """The ``regime_definitions`` rows of ``database``."""

    def regime_rules(self) -> RegimeRules:
        """The regime rules in the regime_definitions table, in priority order."""
        query = select(_regimes).order_by(_regimes.c.priority, _regimes.c.name)
        with self._db.reading() as connection:
            rows = connection.execute(query).mappings().all()
        windows = {row["window"] for row in rows}
        if len(windows) > 1:
            raise ValueError(
                f"regime_definitions.window must be the same on every row; got {sorted(windows)}"
            )
        rules = tuple(
            RegimeRule(
                name=row["name"],
                trend_min=row["trend_min"],
                trend_max=row["trend_max"],
                vol_min=row["vol_min"],
                vol_max=row["vol_max"],
                description=row["description"],
            )
            for row in rows
        )
        return RegimeRules(window=windows.pop() if windows else "7d", rules=rules)

    def sync_regime_definitions(self, rules: RegimeRules) -> None:
        """Make the regime_definitions table hold exactly ``rules`` (in their order)."""
        now = self._db.now()
        with self._db.writing() as connection:
            names = [rule.name for rule in rules.rules]
            connection.execute(delete(_regimes).where(_regimes.c.name.not_in(names)))
            for priority, rule in enumerate(rules.rules):
                values = {
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
                connection.execute(
                    self._db.upsert(_regimes, ("name",), values, only_changed=False), [values]
                )
        logger.info("regime_definitions synced (window %s)", rules.window)
