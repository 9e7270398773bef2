"""Fixtures every test package shares: where the real data lives, and the databases."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.support.smoke import SMOKE_CONFIG, RunOnDisk, only_run, run_cli

REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    """../shared/data beside the repo (CI puts it there); REDLINE_SHARED_DATA overrides."""
    env = os.environ.get("REDLINE_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    if not path.is_dir():
        pytest.fail(f"real market data not found at {path}; set REDLINE_SHARED_DATA")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_data_dir()


@pytest.fixture(scope="session")
def btc_1h(shared_data: Path) -> pd.DataFrame:
    """The real Binance BTC/USDT 1h candles, 2020-01 to 2024-03, as a candle frame (ts in ms)."""
    frame = pd.read_csv(shared_data / "binance_BTC-USDT_1h.csv.gz")
    return frame.rename(columns={"timestamp": "ts"})


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The throwaway PostgreSQL that `make test` starts (tools/with-postgres.sh)."""
    url = os.environ.get("REDLINE_TEST_DATABASE_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("REDLINE_TEST_DATABASE_URL is not set: run the suite through `make test`")
        pytest.skip("no PostgreSQL: run through `make test` (tools/with-postgres.sh)")
    return url


@pytest.fixture(scope="session")
def ray_session() -> Iterator[str]:
    """Ray started once per pytest process (2 CPUs); yields its GCS address for subprocesses.

    Shared by every test package (tests/cluster, tests/serving). Not shut down: other test modules
    may use the same session, and Ray stops with the process.
    """
    import ray  # here: most test modules never need Ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=True, logging_level=logging.WARNING)
    yield ray.get_runtime_context().gcs_address


@pytest.fixture
def redline_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh data root, with REDLINE_HOME pointing at it and no database URL override."""
    home = tmp_path / "redline_data"
    monkeypatch.setenv("REDLINE_HOME", str(home))
    monkeypatch.delenv("REDLINE_DATABASE_URL", raising=False)
    yield home


@pytest.fixture(scope="session")
def smoke_run(ray_session: str, tmp_path_factory: pytest.TempPathFactory) -> RunOnDisk:
    """``redline evolve --config configs/evolve-smoke.yaml``, run once per session, uninterrupted."""
    home = tmp_path_factory.mktemp("smoke") / "redline_data"
    output = run_cli("evolve", "--config", str(SMOKE_CONFIG), home=home)
    return RunOnDisk(home, only_run(home), output)
