"""Benchmark the data layer: ingest, database-first loading, features.

Run from the repo root with the venv's python:  .venv/bin/python benchmarks/data.py [--quick]

- ingest rows/s of the whole real 1h panel (../shared/data) into SQLite and PostgreSQL, bulk path
  (COPY on Postgres, executemany on SQLite) against one INSERT statement per row;
- loading one symbol-year of 1h candles from the store against fetching the same range through the
  real ccxt client from our loopback Binance server (the product documents claim 360x);
- features for 5 symbols x 37k bars.

PostgreSQL: REDLINE_TEST_DATABASE_URL when set, else the script re-runs itself under
tools/with-postgres.sh, which starts a throwaway cluster.
The last line is ``RESULT sqlite_rows_per_s=... postgres_rows_per_s=... db_vs_ccxt=... feature_bars_per_s=...``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from live.loopback import LoopbackExchange  # noqa: E402
from market.features import build_features, momentum_rank  # noqa: E402
from market.files import read_candle_file  # noqa: E402
from market.series import SeriesKey, parse_series_file_name  # noqa: E402
from store.db import Store  # noqa: E402
from store.fetch import FetchSettings, fetch_series  # noqa: E402

DATA = Path(os.environ.get("REDLINE_SHARED_DATA", REPO.parent / "shared" / "data"))
PANEL = ["BTC", "ETH", "SOL", "XRP", "BNB", "ADA", "DOGE", "LINK", "LTC"]
YEAR = (int(pd.Timestamp("2023-01-01", tz="UTC").timestamp() * 1000),
        int(pd.Timestamp("2024-01-01", tz="UTC").timestamp() * 1000))  # fmt: skip


def load_panel(symbols: list[str]) -> dict[SeriesKey, pd.DataFrame]:
    panel = {}
    for base in symbols:
        path = DATA / f"binance_{base}-USDT_1h.csv.gz"
        key = parse_series_file_name(path)
        assert key is not None
        panel[key] = read_candle_file(path)
    return panel


def fresh_postgres(url: str) -> str:
    """An empty database on the benchmark's server, so every run starts from the same state."""
    name = f"redline_bench_{os.getpid()}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}"


def time_ingest(url: str, panel: dict[SeriesKey, pd.DataFrame], method: str) -> tuple[float, int]:
    store = Store.open(url)
    rows = 0
    start = time.perf_counter()
    for key, frame in panel.items():
        rows += store.candles.write_candles(key, frame, method=method)
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed, rows


def bench_ingest(label: str, make_url, panel, insert_panel) -> float:
    bulk_s, bulk_rows = time_ingest(make_url(), panel, "copy")
    row_s, row_rows = time_ingest(make_url(), insert_panel, "insert")
    bulk_rate, row_rate = bulk_rows / bulk_s, row_rows / row_s
    print(f"{label:10s} bulk   {bulk_rows:>8,} rows in {bulk_s:6.2f}s = {bulk_rate:>10,.0f} rows/s")
    print(f"{label:10s} insert {row_rows:>8,} rows in {row_s:6.2f}s = {row_rate:>10,.0f} rows/s"
          f"   bulk/insert = {bulk_rate / row_rate:.1f}x")  # fmt: skip
    return bulk_rate


def bench_db_vs_ccxt(tmp: Path, repeats: int) -> float:
    key = SeriesKey("binance", "BTC/USDT", "1h")
    with LoopbackExchange(DATA) as server:
        settings = FetchSettings(api_base=server.url, enable_rate_limit=False)
        store = Store.open(f"sqlite:///{tmp / 'dbfirst.db'}")
        start = time.perf_counter()
        first = fetch_series(store, key, *YEAR, settings)
        ccxt_s = time.perf_counter() - start
        load_s = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            again = fetch_series(store, key, *YEAR, settings)  # database first: nothing to fetch
            candles = store.candles.load_candles(key, *YEAR)
            load_s = min(load_s, time.perf_counter() - start)
        assert again.fetched == 0 and len(candles) == first.fetched, (again, len(candles))
        requests = len(server.requests)
    print(f"one symbol-year ({len(candles):,} bars): ccxt via loopback {ccxt_s:.3f}s "
          f"({requests} requests), database first {load_s * 1000:.1f} ms")  # fmt: skip
    return ccxt_s / load_s


def bench_features(symbols: list[str]) -> float:
    panel = load_panel(symbols)
    start = time.perf_counter()
    closes = {}
    bars = 0
    for key, frame in panel.items():
        build_features(frame)
        closes[key.symbol] = frame.set_index("ts")["close"]
        bars += len(frame)
    momentum_rank(pd.DataFrame(closes).sort_index(), lookback=24)
    elapsed = time.perf_counter() - start
    print(f"features   {len(panel)} symbols x {bars // len(panel):,} bars in {elapsed:.2f}s")
    return bars / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer rows on the slow row-INSERT path"
    )
    args = parser.parse_args()
    pg_url = os.environ.get("REDLINE_TEST_DATABASE_URL")
    if not pg_url:
        script = [str(REPO / "tools" / "with-postgres.sh"), sys.executable, *sys.argv]
        raise SystemExit(subprocess.call(script))

    panel = load_panel(PANEL)
    # The row-by-row path is the slow baseline: --quick times it on two symbols only.
    insert_panel = dict(list(panel.items())[:2]) if args.quick else panel
    print(
        f"panel: {len(panel)} symbols, {sum(len(f) for f in panel.values()):,} rows of real 1h candles"
    )
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        counter = iter(range(100))
        sqlite_rate = bench_ingest(
            "sqlite", lambda: f"sqlite:///{tmp / f'ingest{next(counter)}.db'}", panel, insert_panel
        )
        postgres_rate = bench_ingest(
            "postgres", lambda: fresh_postgres(pg_url), panel, insert_panel
        )
        db_vs_ccxt = bench_db_vs_ccxt(tmp, repeats=3 if args.quick else 10)
    feature_rate = bench_features(PANEL[:5])
    print(
        f"RESULT sqlite_rows_per_s={sqlite_rate:.0f} postgres_rows_per_s={postgres_rate:.0f} "
        f"db_vs_ccxt={db_vs_ccxt:.1f} feature_bars_per_s={feature_rate:.0f}"
    )


if __name__ == "__main__":
    main()
