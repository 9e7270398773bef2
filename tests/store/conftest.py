"""Fixtures for the store contract suite: one fresh, empty database per test, on each backend.

``fresh_url`` is parametrized over SQLite (a file in tmp_path) and PostgreSQL (a database of the
suite's own inside the throwaway server, its ``public`` schema dropped and recreated before every
test, which costs a few milliseconds where creating a database would cost a hundred).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from market.series import SeriesKey
from store.db import Store
from tests.conftest import shared_data_dir
from tests.store.rows import Clock

BTC_1H = SeriesKey("binance", "BTC/USDT", "1h")
ETH_1H = SeriesKey("binance", "ETH/USDT", "1h")
BTC_5M = SeriesKey("binance", "BTC/USDT", "5m")

JAN_2020 = 1577836800000  # 2020-01-01 00:00 UTC
FEB_2020 = 1580515200000  # 2020-02-01 00:00 UTC
MAR_2020 = 1583020800000  # 2020-03-01 00:00 UTC
HOUR = 3_600_000


@cache
def _read(stem: str) -> pd.DataFrame:
    frame = pd.read_csv(shared_data_dir() / f"{stem}.csv.gz")
    return frame.rename(columns={"timestamp": "ts"})


def real_candles(
    key: SeriesKey, start_ms: int | None = None, end_ms: int | None = None
) -> pd.DataFrame:
    """The real candles of ``key`` from ../shared/data, ``start_ms <= ts < end_ms``."""
    frame = _read(key.file_stem)
    keep = pd.Series(True, index=frame.index)
    if start_ms is not None:
        keep &= frame["ts"] >= start_ms
    if end_ms is not None:
        keep &= frame["ts"] < end_ms
    return frame[keep].reset_index(drop=True).copy()


@pytest.fixture(scope="session")
def store_pg_admin(postgres_url: str) -> Iterator[tuple[Engine, str]]:
    """A database of the store suite's own, so other suites' tables never meet ours."""
    name = f"redline_store_{os.getpid()}"
    server = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        connection.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    yield admin, url
    admin.dispose()
    with server.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    server.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fresh_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The URL of an empty database (no tables, no alembic_version)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'redline.db'}"
    admin, url = request.getfixturevalue("store_pg_admin")
    with admin.connect() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    return str(url)


@pytest.fixture
def store(fresh_url: str) -> Iterator[Store]:
    with Store.open(fresh_url) as opened:
        yield opened


@pytest.fixture
def clock() -> Clock:
    """A frozen UTC clock for the repositories' stamps (``tests.store.rows.Clock``)."""
    return Clock()
