"""Fixtures of the serving tests: real champions from a real evolution, and real Serve on real Ray.

``champions_home``: ``redline evolve --config configs/evolve-smoke.yaml`` once per session (the
shipped BTC/USDT 1h sample; technical_analyst, volume_hunter and a mother brain; champions crowned
per regime). ``serve_port``: Serve started once per session on a free loopback port (its HTTP
proxy cannot move afterwards); each test module runs its own application on it under its own
route prefix and deletes it afterwards.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from market.regimes import classify_regimes
from market.series import SeriesKey
from store.db import Store
from store.records.champions import RegimeBestRecord
from tests.support.smoke import SMOKE_CONFIG, run_cli, sqlite_url

BTC_1H = SeriesKey("binance", "BTC/USDT", "1h")
TOKEN = "serving-tests-token"
#: Candles a test sends with a predict: the replica's default history.
HISTORY = 500
#: Voting specialties (their inputs are candles).
VOTERS = ("technical_analyst", "volume_hunter")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def champions_home(ray_session: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("serving") / "redline_data"
    run_cli("evolve", "--config", str(SMOKE_CONFIG), home=home)
    return home


def open_store(home: Path) -> Store:
    return Store.open(sqlite_url(home), home=home)


def voting_champions(home: Path) -> list[RegimeBestRecord]:
    with open_store(home) as store:
        return [
            row
            for row in store.champions.champions()
            if row.specialty in VOTERS and row.stage != "DECAY"
        ]


def btc_candles(home: Path) -> pd.DataFrame:
    with open_store(home) as store:
        return store.candles.load_candles(BTC_1H)


def window_in_regime(home: Path, regime: str, *, back: int = 0) -> pd.DataFrame:
    """``HISTORY`` real candles whose last bar is in ``regime`` (the ``back``-th such bar from the
    end of the sample, so a test can also take one whose next 24 hours exist)."""
    candles = btc_candles(home)
    with open_store(home) as store:
        rules = store.regimes.regime_rules()
    labels = classify_regimes(candles, BTC_1H.timeframe, rules)
    ends = np.flatnonzero(labels == regime)
    ends = ends[(ends >= HISTORY - 1) & (ends < len(candles) - 25)]
    assert len(ends) > back, f"no {HISTORY}-bar window of the sample ends in {regime}"
    end = int(ends[-1 - back])
    return candles.iloc[end - HISTORY + 1 : end + 1].reset_index(drop=True)


def candle_rows(frame: pd.DataFrame) -> list[list[float]]:
    columns = ["ts", "open", "high", "low", "close", "volume"]
    return [[int(r[0]), *map(float, r[1:])] for r in frame[columns].itertuples(index=False)]


@pytest.fixture(scope="session")
def serve_port(ray_session: str) -> Iterator[int]:
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield port
    serve.shutdown()


@dataclass(frozen=True)
class Served:
    """An application running on the session's Serve: its base URL and what it serves."""

    url: str
    home: Path
    name: str


def run_redline(
    port: int, home: Path, name: str, *, token: str | None = TOKEN, **options: object
) -> Served:
    """``serving.app.build_app`` on ``home``'s SQLite under ``/<name>``, ready when it answers."""
    from ray import serve

    from serving.app import build_app

    app = build_app(
        sqlite_url(home),
        home,
        token=token,
        deployment={"ray_actor_options": {"num_cpus": 0}},
        **options,
    )
    serve.run(app, name=name, route_prefix=f"/{name}")
    served = Served(f"http://127.0.0.1:{port}/{name}", home, name)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{served.url}/healthz", timeout=5).status_code == 200:
                return served
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"application {name} did not answer /healthz within 120 s")
