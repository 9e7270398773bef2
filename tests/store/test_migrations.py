"""Migrations on both backends: applied on first use, idempotent, reversible, safe to race."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text

from market.regimes import RegimeRule, RegimeRules
from store import migrate
from store.db import Store
from store.engine import create_store_engine
from store.models import Base, MarketData, RegimeDefinition
from store.records.rugpulls import RugpullAnswerRecord, RugpullOutcomeRecord
from tests.store.conftest import BTC_1H, FEB_2020, JAN_2020, real_candles
from tests.store.rows import count_rows, table_names

REPO = Path(__file__).resolve().parents[2]
TABLES = {
    "market_data",
    "regime_definitions",
    "series_cursors",
    "series_gaps",
    "runs",
    "agents",
    "generations",
    "kills",
    "regime_best_models",
    "training_runs",
    "inference_backtests",
    "training_queue",
    "promotions",
    "predictions",
    "trades",
    "trade_attributions",
    "rugpull_answers",
    "rugpull_outcomes",
}


def test_first_open_creates_the_schema_and_seeds_the_built_in_regimes(store: Store) -> None:
    assert store.regimes.regime_rules() == RegimeRules()
    assert count_rows(store, RegimeDefinition) == 4
    assert store.regimes.regime_rules().rules[2].description == (
        "no trend, annualized volatility of 60% or more"
    )
    assert migrate.current_revision(store.database.engine) == migrate.head_revision() == "0009"


def test_upgrade_is_idempotent(store: Store, fresh_url: str) -> None:
    store.candles.write_candles(BTC_1H, real_candles(BTC_1H, JAN_2020, FEB_2020))
    assert store.database.upgrade() == "0009"
    assert store.database.upgrade() == "0009"
    assert migrate.upgrade(fresh_url) == "0009"
    with Store.open(fresh_url) as again:
        assert again.database.upgrade() == "0009"
    assert count_rows(store, RegimeDefinition) == 4
    assert count_rows(store, MarketData) == 744
    with store.database.engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    assert versions == [("0009",)]


def test_downgrade_and_upgrade_round_trip(fresh_url: str) -> None:
    with Store.open(fresh_url) as store:
        store.candles.write_candles(BTC_1H, real_candles(BTC_1H, JAN_2020, FEB_2020))
    assert migrate.downgrade(fresh_url, revision="0001") == "0001"
    engine = create_store_engine(fresh_url)
    try:
        with engine.connect() as conn:
            assert (
                conn.execute(select(func.count()).select_from(RegimeDefinition)).scalar_one() == 0
            )
            assert conn.execute(select(func.count()).select_from(MarketData)).scalar_one() == 744
    finally:
        engine.dispose()
    assert migrate.downgrade(fresh_url) is None
    assert table_names(fresh_url) <= {"alembic_version"}
    assert migrate.upgrade(fresh_url) == "0009"
    assert table_names(fresh_url) >= TABLES
    with Store.open(fresh_url) as store:
        assert store.candles.list_series() == []
        assert count_rows(store, RegimeDefinition) == 4
        assert store.regimes.regime_rules() == RegimeRules()


def test_0008_downgrades_to_0007_dropping_only_the_rugpull_tables(fresh_url: str) -> None:
    with Store.open(fresh_url) as store:
        store.trades.record_prediction("p-1", "v1", [], regime="")
        store.rugpulls.append_answers(
            [RugpullAnswerRecord("rp-1", "v1", "r-rugpull", "rd-1", 0.97, True, 0.5)]
        )
        store.rugpulls.record_outcome(RugpullOutcomeRecord("rp-1", True))
    assert migrate.downgrade(fresh_url, revision="0007") == "0007"
    assert not table_names(fresh_url) & {"rugpull_answers", "rugpull_outcomes"}
    with Store.open(fresh_url) as store:  # upgraded again on open
        assert migrate.current_revision(store.database.engine) == "0009"
        assert store.trades.prediction("p-1") is not None
        assert (
            store.rugpulls.answer("rp-1") is None
            and store.rugpulls.labelled("r-rugpull", "rd-1") == []
        )


def test_models_match_the_migrations(store: Store) -> None:
    with store.database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_regimes_seed_the_built_in_rules(fresh_url: str) -> None:
    """Migration 0002 seeds ``RegimeRules()`` (their one home) and reads no config file: the
    table follows the loaded config from then on (``cli.state.open_store`` syncs it)."""
    with Store.open(fresh_url) as store:
        assert store.regimes.regime_rules() == RegimeRules()
    migrate.downgrade(fresh_url, revision="0001")
    with Store.open(fresh_url) as store:
        assert store.regimes.regime_rules() == RegimeRules()


def test_sync_regime_definitions_replaces_the_rules(store: Store) -> None:
    rules = RegimeRules(
        window="3d",
        rules=(
            RegimeRule("volatile_ranging", vol_min=0.9, vol_max=5.0, description="wild"),
            RegimeRule("bull_trending", trend_min=0.03, description="up 3%"),
            RegimeRule("bear_trending", trend_max=-0.03, description="down 3%"),
            RegimeRule("calm_ranging", description="the rest"),
        ),
    )
    store.regimes.sync_regime_definitions(rules)
    assert store.regimes.regime_rules() == rules
    assert count_rows(store, RegimeDefinition) == 4
    store.regimes.sync_regime_definitions(RegimeRules())
    assert store.regimes.regime_rules() == RegimeRules()


def _open_and_write(url: str, barrier: Any, results: Any) -> None:
    """One process of the race: read the CSV, wait for the others, then open and write."""
    jan = real_candles(BTC_1H, JAN_2020, FEB_2020)
    barrier.wait(timeout=120)
    try:
        with Store.open(url) as store:
            results.put(store.candles.write_candles(BTC_1H, jan))
    except Exception as exc:  # reported to the test, which fails with it
        results.put(repr(exc))


def test_concurrent_first_use_migrates_once_and_writes_each_candle_once(fresh_url: str) -> None:
    # spawn, not fork: the session may already run Ray, whose threads a forked child inherits.
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(3), context.Queue()
    workers = [
        context.Process(target=_open_and_write, args=(fresh_url, barrier, results))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=180) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert all(isinstance(outcome, int) for outcome in outcomes), outcomes
    assert sum(outcomes) == 744
    with Store.open(fresh_url) as store:
        assert count_rows(store, MarketData) == 744
        assert count_rows(store, RegimeDefinition) == 4
        assert migrate.current_revision(store.database.engine) == "0009"


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    with (
        Store.open(f"sqlite:///{tmp_path / 'wal.db'}") as store,
        store.database.engine.connect() as conn,
    ):
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 30_000
