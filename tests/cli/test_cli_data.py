"""The ``redline data`` commands on the real store, real files and the real ccxt client.

In-process through Typer's runner for speed; the kill-and-resume test runs ``redline`` as a process.
"""

from __future__ import annotations

import gzip
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.main import app, main
from market.series import SeriesKey
from store import migrate
from store.db import Store
from tests.support.fake_binance import KLINES, FakeBinance, Fault

BTC = SeriesKey("binance", "BTC/USDT", "1h")
JAN_2024 = "1704067200000"  # 2024-01-01 00:00 UTC
MAR_2024 = "1709251200000"  # 2024-03-01 00:00 UTC


def run(*args: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def csv_rows(shared_data: Path, name: str, start: int, end: int) -> pd.DataFrame:
    frame = pd.read_csv(shared_data / name)
    return frame[(frame.timestamp >= start) & (frame.timestamp < end)].reset_index(drop=True)


def test_help_lists_every_data_command() -> None:
    output = run("--help")
    assert "data" in output and "db" in output and "demo" in output
    data_help = run("data", "--help")
    for command in ("import", "fetch", "gaps", "list", "export", "regimes"):
        assert command in data_help


def test_import_is_idempotent_and_list_shows_the_real_gaps(
    redline_home: Path, shared_data: Path
) -> None:
    path = shared_data / "binance_BTC-USDT_1h.csv.gz"
    first = run("data", "import", str(path))
    assert "37,216" in first
    again = run("data", "import", str(path))
    assert "│ 0 " in again  # nothing new the second time
    store = Store.open(home=redline_home)
    assert store.candles.series_info(BTC).rows == 37216
    listing = run("data", "list")
    # 15 real maintenance gaps, 32 candles in all (SOURCES.md)
    assert "37,216" in listing and "│ 15 " in listing and "│ 32 " in listing
    gaps = run("data", "gaps", "--symbol", "BTC/USDT")
    assert "15 gaps" in gaps and "2020-02-19 12:00" in gaps and "not asked yet" in gaps


def _corrupt_copy(shared_data: Path, tmp_path: Path) -> Path:
    """The real BTC 2024 Q1 candles with one row made impossible (high below low)."""
    frame = pd.read_csv(shared_data / "binance_BTC-USDT_1h.csv.gz")
    frame = frame[frame.timestamp >= int(JAN_2024)].reset_index(drop=True)
    frame.loc[17, "high"] = frame.loc[17, "low"] - 1.0
    path = tmp_path / "binance_BTC-USDT_1h.csv.gz"
    with gzip.open(path, "wt") as handle:
        frame.to_csv(handle, index=False)
    return path


def test_a_bad_row_refuses_the_file_and_keeps_what_was_stored(
    redline_home: Path, shared_data: Path, tmp_path: Path
) -> None:
    run("data", "import", str(shared_data / "binance_ETH-USDT_1h.csv.gz"))
    bad = _corrupt_copy(shared_data, tmp_path)
    result = CliRunner().invoke(app, ["data", "import", str(bad)])
    assert result.exit_code != 0
    assert "row 17" in str(result.exception) and "high" in str(result.exception)
    store = Store.open(home=redline_home)
    assert store.candles.series_info(BTC) is None  # nothing of the bad file
    assert store.candles.series_info(SeriesKey("binance", "ETH/USDT", "1h")).rows == 37216


@pytest.mark.parametrize("verbose", [[], ["--verbose"]], ids=["quiet", "verbose"])
def test_a_truncated_gzip_names_the_file_and_the_cause(
    redline_home: Path,
    shared_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    verbose: list[str],
) -> None:
    """A download cut short: `error: <path>: truncated gzip file (...)`, exit 2, never `Aborted.`."""
    real = (shared_data / "binance_BTC-USDT_1h.csv.gz").read_bytes()
    cut = tmp_path / "binance_BTC-USDT_1h.csv.gz"
    cut.write_bytes(real[: len(real) // 2])
    monkeypatch.setattr(sys, "argv", ["redline", *verbose, "data", "import", str(cut)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert (
        f"error: {cut}: truncated gzip file (Compressed file ended before the end-of-stream "
        "marker was reached)\n" in err
    )
    assert "Aborted" not in err
    assert Store.open(home=redline_home).candles.series_info(BTC) is None


def test_a_file_error_among_several_stops_at_that_file(
    redline_home: Path,
    shared_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Files before the bad one stay imported; the message names the bad one once."""
    broken = tmp_path / "binance_BTC-USDT_1h.parquet"
    broken.write_bytes(b"PAR1 not really")
    good = str(shared_data / "binance_ETH-USDT_1h.csv.gz")
    monkeypatch.setattr(sys, "argv", ["redline", "data", "import", good, str(broken)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: {broken}: not a readable parquet file, damaged or truncated (" in err
    assert err.count(str(broken)) == 2  # once as the file, once inside pyarrow's own words
    store = Store.open(home=redline_home)
    assert store.candles.series_info(SeriesKey("binance", "ETH/USDT", "1h")).rows == 37216


def test_skip_invalid_stores_the_good_rows_and_writes_the_rejects(
    redline_home: Path, shared_data: Path, tmp_path: Path
) -> None:
    bad = _corrupt_copy(shared_data, tmp_path)
    rejects_dir = tmp_path / "rejects"
    rejects_dir.mkdir()
    run("data", "import", str(bad), "--skip-invalid", "--rejects-dir", str(rejects_dir))
    total = len(pd.read_csv(bad))
    assert Store.open(home=redline_home).candles.series_info(BTC).rows == total - 1
    rejects = pd.read_csv(rejects_dir / "binance_BTC-USDT_1h.rejects.csv")
    assert len(rejects) == 1 and rejects.loc[0, "row"] == 17
    assert "high" in rejects.loc[0, "reason"]


def test_fetch_is_database_first(redline_home: Path, shared_data: Path) -> None:
    with FakeBinance(shared_data) as server:
        env = {"REDLINE_EXCHANGE_API_BASE": server.url}
        out = run(
            "data",
            "fetch",
            "--symbol",
            "BTC/USDT",
            "--since",
            JAN_2024,
            "--until",
            MAR_2024,
            env=env,
        )
        assert "1,440 bars requested, 0 already stored, 1,440 fetched" in out
        asked = server.count(KLINES)
        assert asked == 2  # 1,440 bars in pages of 1,000
        out = run(
            "data",
            "fetch",
            "--symbol",
            "BTC/USDT",
            "--since",
            JAN_2024,
            "--until",
            MAR_2024,
            env=env,
        )
        assert "1,440 already stored, 0 fetched" in out
        assert server.count(KLINES) == asked  # the second fetch never reached the exchange
    stored = Store.open(home=redline_home).candles.load_candles(BTC)
    expected = csv_rows(shared_data, "binance_BTC-USDT_1h.csv.gz", int(JAN_2024), int(MAR_2024))
    assert stored["ts"].tolist() == expected["timestamp"].tolist()
    assert stored["close"].tolist() == expected["close"].tolist()


def test_fetch_backfills_holes_and_remembers_the_exchanges_own_gaps(
    redline_home: Path, shared_data: Path, tmp_path: Path
) -> None:
    """2020-02: our copy lacks two days; the exchange has those, but not its maintenance gaps."""
    start, end = 1580515200000, 1583020800000  # 2020-02-01 .. 2020-03-01
    full = csv_rows(shared_data, "binance_BTC-USDT_1h.csv.gz", start, end)
    holed = full[
        (full.timestamp < 1581120000000) | (full.timestamp >= 1581292800000)
    ]  # drop 02-08..02-09
    path = tmp_path / "binance_BTC-USDT_1h.csv"
    holed.to_csv(path, index=False)
    run("data", "import", str(path))
    with FakeBinance(shared_data) as server:
        env = {"REDLINE_EXCHANGE_API_BASE": server.url}
        out = run(
            "data",
            "fetch",
            "--symbol",
            "BTC/USDT",
            "--since",
            str(start),
            "--until",
            str(end),
            env=env,
        )
        # 48 hours dropped, one of them (2020-02-09 02:00) a real gap the exchange lacks too
        assert f"{len(holed):,} already stored, 47 fetched, 47 new" in out
        assert (
            "2 gaps the exchange has no candles for" in out
        )  # 2020-02-09 02:00 and 02-19 12:00..16:00
        asked = server.count(KLINES)
        out = run(
            "data",
            "fetch",
            "--symbol",
            "BTC/USDT",
            "--since",
            str(start),
            "--until",
            str(end),
            env=env,
        )
        assert "0 fetched" in out and server.count(KLINES) == asked
    stored = Store.open(home=redline_home).candles.load_candles(BTC, start, end)
    assert stored["ts"].tolist() == full["timestamp"].tolist()
    gaps = run("data", "gaps")
    assert "2 gaps" in gaps and "not asked yet" not in gaps


def test_fetch_errors_are_clear(redline_home: Path, shared_data: Path) -> None:
    with FakeBinance(shared_data) as server:
        env = {"REDLINE_EXCHANGE_API_BASE": server.url}
        result = CliRunner().invoke(
            app, ["data", "fetch", "--symbol", "FOO/USDT", "--since", JAN_2024], env=env
        )
        assert result.exit_code != 0
        assert "binance has no symbol 'FOO/USDT'" in str(result.exception)
    result = CliRunner().invoke(
        app, ["data", "fetch", "--symbol", "BTC/USDT", "--since", "yesterday-ish"]
    )
    assert "--since must be a date like 2024-01-01" in str(result.exception)
    result = CliRunner().invoke(
        app, ["data", "fetch", "--symbol", "BTC/USDT", "--timeframe", "7x", "--since", JAN_2024]
    )
    assert "timeframe must be one of" in str(result.exception)


def _count_rows(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM market_data").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_fetch_killed_halfway_resumes_without_duplicates_or_holes(
    redline_home: Path, shared_data: Path, tmp_path: Path
) -> None:
    config = tmp_path / "small-pages.yaml"
    config.write_text("fetch:\n  page_limit: 200\n")
    since, until = (
        "1577836800000",
        "1609459200000",
    )  # all of 2020: 8,784 hours, 8 real gaps of 18 hours
    with FakeBinance(shared_data) as server:
        server.inject(
            *[Fault.delay(0.15) for _ in range(200)]
        )  # slow pages, so the kill lands midway
        env = {
            **os.environ,
            "REDLINE_HOME": str(redline_home),
            "REDLINE_EXCHANGE_API_BASE": server.url,
        }
        command = [sys.executable, "-m", "cli", "--config", str(config), "data", "fetch",
                   "--symbol", "BTC/USDT", "--since", since, "--until", until]  # fmt: skip
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 120
        while _count_rows(redline_home / "redline.db") < 2000 and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        partial = _count_rows(redline_home / "redline.db")
        assert 2000 <= partial < 8766
        server.reset()
        out = run("--config", str(config), "data", "fetch", "--symbol", "BTC/USDT",
                  "--since", since, "--until", until, env={"REDLINE_EXCHANGE_API_BASE": server.url})  # fmt: skip
        assert f"{partial:,} already stored" in out
    stored = Store.open(home=redline_home).candles.load_candles(BTC)
    expected = csv_rows(shared_data, "binance_BTC-USDT_1h.csv.gz", int(since), int(until))
    assert len(stored) == len(expected) == 8766
    assert stored["ts"].tolist() == expected["timestamp"].tolist()  # no duplicates, no holes


def test_export_and_regimes(redline_home: Path, shared_data: Path) -> None:
    run("data", "import", str(shared_data / "binance_BTC-USDT_1h.csv.gz"))
    out = run("data", "export", "--symbol", "BTC/USDT")
    path = redline_home / "raw_data" / "binance" / "BTC-USDT" / "1h.parquet"
    assert str(path) in out.replace("\n", "")
    exported = pd.read_parquet(path)
    assert len(exported) == 37216 and exported["open"].iloc[0] == 7195.24
    out = run("data", "regimes", "--symbol", "BTC/USDT")
    # the shares test_regimes.py checks on the same candles, to one decimal of a percent
    for name, share in (("bull_trending", "28.8%"), ("bear_trending", "18.6%"),
                        ("volatile_ranging", "14.4%"), ("calm_ranging", "38.3%")):  # fmt: skip
        assert name in out and share in out
    assert "last 15 regime periods" in out
    result = CliRunner().invoke(app, ["data", "regimes", "--symbol", "DOGE/USDT"])
    assert "no candles stored for binance:DOGE/USDT:1h" in str(result.exception)


def test_demo_loads_the_shipped_sample(redline_home: Path) -> None:
    out = run("demo", "--no-evolve")
    assert out.count("15,359") >= 3
    assert "binance BTC/USDT 1h" in out and "1 (1)" in out  # the 2023-03-24 maintenance gap
    again = run("demo", "--no-evolve")
    assert "imported" not in again  # the second run finds the sample already stored


def test_db_upgrade_and_a_bad_database_url(redline_home: Path) -> None:
    assert f"revision {migrate.head_revision()}" in run("db", "upgrade")
    result = CliRunner().invoke(
        app, ["db", "upgrade"], env={"REDLINE_DATABASE_URL": "mysql://root:hunter2@db/redline"}
    )
    message = str(result.exception)
    assert "REDLINE_DATABASE_URL must start with sqlite:/// or postgresql+psycopg://" in message
    assert "hunter2" not in message  # secrets are never shown


@pytest.mark.postgres
def test_import_on_postgres(postgres_url: str, shared_data: Path, tmp_path: Path) -> None:
    """The same command on REDLINE_DATABASE_URL: a fresh database on the throwaway server."""
    from sqlalchemy import create_engine, text

    name = f"redline_cli_{os.getpid()}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    env = {"REDLINE_DATABASE_URL": url, "REDLINE_HOME": str(tmp_path / "home")}
    path = str(shared_data / "binance_ETH-USDT_1h.csv.gz")
    assert "37,216" in run("data", "import", path, env=env)
    assert "│ 0 " in run("data", "import", path, env=env)
    with Store.open(url) as store:
        assert store.candles.series_info(SeriesKey("binance", "ETH/USDT", "1h")).rows == 37216
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


# -- plausibility and --replace ---------------------------------------------------------------


def _q1_2024(shared_data: Path) -> pd.DataFrame:
    frame = pd.read_csv(shared_data / "binance_BTC-USDT_1h.csv.gz")
    return frame[frame.timestamp >= int(JAN_2024)].reset_index(drop=True)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    with gzip.open(path, "wt") as handle:
        frame.to_csv(handle, index=False)
    return path


def _main_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> str:
    monkeypatch.setattr(sys, "argv", ["redline", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_a_price_of_1e308_is_refused_and_skip_invalid_rejects_it(
    redline_home: Path,
    shared_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    frame = _q1_2024(shared_data)
    frame.loc[17, "high"] = 1e308
    path = _write(frame, tmp_path / "binance_BTC-USDT_1h.csv.gz")
    err = _main_fails(monkeypatch, capsys, "data", "import", str(path))
    assert (
        "row 17: high 1e+308 is outside the plausible price range [1e-12, 1e+12] "
        "(validation.min_price, validation.max_price)" in err
    )
    assert Store.open(home=redline_home).candles.series_info(BTC) is None
    run("data", "import", str(path), "--skip-invalid")
    assert Store.open(home=redline_home).candles.series_info(BTC).rows == len(frame) - 1
    rejects = pd.read_csv(tmp_path / "binance_BTC-USDT_1h.rejects.csv")
    assert rejects["row"].tolist() == [17]
    assert rejects.loc[0, "reason"].startswith("high 1e+308 is outside the plausible price range")


def test_the_limits_come_from_the_config(
    redline_home: Path,
    shared_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _write(_q1_2024(shared_data), tmp_path / "binance_BTC-USDT_1h.csv.gz")
    tight = tmp_path / "tight.yaml"
    tight.write_text("validation:\n  max_bar_move: 1.02\n")  # BTC moved more than 2% in an hour
    err = _main_fails(monkeypatch, capsys, "--config", str(tight), "data", "import", str(path))
    assert "a move beyond validation.max_bar_move 1.02" in err
    assert "37,216" not in err and Store.open(home=redline_home).candles.series_info(BTC) is None


def test_replace_corrects_stored_candles_and_keeps_the_old_rows(
    redline_home: Path, shared_data: Path, tmp_path: Path
) -> None:
    """A wrong close stored first stays for good on a plain import; --replace corrects it."""
    real = _q1_2024(shared_data)
    wrong = real.copy()
    wrong.loc[17, ["open", "high", "low", "close"]] *= 1.05  # plausible, but not what happened
    run("data", "import", str(_write(wrong, tmp_path / "binance_BTC-USDT_1h.csv.gz")))
    run("data", "import", str(shared_data / "binance_ETH-USDT_1h.csv.gz"))
    fixed_dir = tmp_path / "fixed"
    fixed_dir.mkdir()
    day = real[(real.timestamp >= int(JAN_2024)) & (real.timestamp < int(JAN_2024) + 86_400_000)]
    fixed = _write(day, fixed_dir / "binance_BTC-USDT_1h.csv.gz")
    assert "│ 0 " in run("data", "import", str(fixed))  # first write wins: nothing changes
    store = Store.open(home=redline_home)
    assert store.candles.load_candles(BTC)["close"].iloc[17] == wrong.loc[17, "close"]

    out = run("data", "import", str(fixed), "--replace")
    assert "replaced" in out and "│ 24 " in out
    loaded = store.candles.load_candles(BTC)
    assert loaded["close"].tolist() == real["close"].tolist()  # corrected; the rest as it was
    assert len(loaded) == len(real)
    assert store.candles.series_info(SeriesKey("binance", "ETH/USDT", "1h")).rows == 37216
    (kept,) = fixed_dir.glob("binance_BTC-USDT_1h.replaced.*.csv")
    assert re.fullmatch(r"binance_BTC-USDT_1h\.replaced\.\d{8}T\d{6}Z\.csv", kept.name)
    old = pd.read_csv(kept)
    assert list(old.columns) == ["ts", "open", "high", "low", "close", "volume"]
    assert old["ts"].tolist() == day["timestamp"].tolist()
    assert old["close"].tolist() == wrong["close"].iloc[:24].tolist()  # the wrong row included


def test_replace_over_a_range_leaves_the_files_other_rows_out(
    redline_home: Path, shared_data: Path, tmp_path: Path
) -> None:
    real = _q1_2024(shared_data)
    path = _write(real, tmp_path / "binance_BTC-USDT_1h.csv.gz")
    run("data", "import", str(path))
    start, end = int(JAN_2024) + 5 * 3_600_000, int(JAN_2024) + 8 * 3_600_000
    out = run("data", "import", str(path), "--replace", "--from", str(start), "--to", str(end),
              "--rejects-dir", str(tmp_path / "kept"))  # fmt: skip
    assert f"│ {len(real) - 3:,} " in out  # the rows outside 05:00..08:00, left out
    (kept,) = (tmp_path / "kept").glob("*.replaced.*.csv")
    assert pd.read_csv(kept)["ts"].tolist() == [start, start + 3_600_000, start + 7_200_000]
    assert Store.open(home=redline_home).candles.series_info(BTC).rows == len(real)


def test_a_bad_replace_changes_nothing(
    redline_home: Path,
    shared_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real = _q1_2024(shared_data)
    run("data", "import", str(_write(real, tmp_path / "binance_BTC-USDT_1h.csv.gz")))
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = real.iloc[:48].copy()
    bad.loc[30, "close"] = bad.loc[30, "close"] * 50
    bad.loc[30, "high"] = bad.loc[30, "close"]
    path = _write(bad, bad_dir / "binance_BTC-USDT_1h.csv.gz")
    err = _main_fails(monkeypatch, capsys, "data", "import", str(path), "--replace")
    assert "row 30: close " in err and "a move beyond validation.max_bar_move 10" in err
    err = _main_fails(
        monkeypatch, capsys, "data", "import", str(path), "--replace", "--skip-invalid"
    )
    assert (
        "--replace takes the whole file or nothing; it cannot be combined with --skip-invalid"
        in err
    )
    err = _main_fails(monkeypatch, capsys, "data", "import", str(path), "--from", "2024-01-01")
    assert "--from/--to choose the range --replace replaces; pass --replace" in err
    err = _main_fails(
        monkeypatch, capsys, "data", "import", str(path), "--replace", "--from", "1704067200001"
    )
    assert (
        "--from must be a candle open time on the 1h grid (a multiple of 3600000 ms); got " in err
    )
    good = _write(real.iloc[:48], bad_dir / "binance_BTC-USDT_1h.csv.gz")
    err = _main_fails(
        monkeypatch, capsys, "data", "import", str(good), "--replace", "--to", "2024-01-05"
    )
    assert (
        f"--from/--to [{JAN_2024}, 1704412800000) reach beyond the file's candles [{JAN_2024}, "
        "1704240000000); a replace would delete stored candles the file has no replacement for"
    ) in err
    assert list(bad_dir.glob("*.replaced.*")) == []
    loaded = Store.open(home=redline_home).candles.load_candles(BTC)
    assert loaded["close"].tolist() == real["close"].tolist()


def test_fetch_writes_under_the_configs_limits(
    redline_home: Path,
    shared_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tight = tmp_path / "tight.yaml"
    tight.write_text("validation:\n  max_bar_move: 1.02\n")  # BTC moved more than 2% in an hour
    with FakeBinance(shared_data) as server:
        monkeypatch.setenv("REDLINE_EXCHANGE_API_BASE", server.url)
        err = _main_fails(monkeypatch, capsys, "--config", str(tight), "data", "fetch",
                          "--symbol", "BTC/USDT", "--since", JAN_2024, "--until", MAR_2024)  # fmt: skip
    assert "a move beyond validation.max_bar_move 1.02" in err
    assert (
        Store.open(home=redline_home).candles.series_info(BTC) is None
    )  # the refused page: nothing


def test_a_configs_regime_rules_sync_the_table(redline_home: Path, tmp_path: Path) -> None:
    """The loaded config is the rules' one home: any command that opens the store makes the
    regime_definitions table hold that config's rules (and the built-ins without one)."""
    from market.regimes import RegimeRules

    config = tmp_path / "strict.yaml"
    config.write_text(
        "regimes:\n  window: 3d\n  rules:\n"
        "    - {name: volatile_ranging, vol_min: 0.9}\n"
        "    - {name: bull_trending, trend_min: 0.2}\n"
        "    - {name: bear_trending, trend_max: -0.2}\n"
        "    - {name: calm_ranging}\n"
    )
    run("--config", str(config), "data", "list")
    rules = Store.open(home=redline_home).regimes.regime_rules()
    assert rules.window == "3d"
    assert [(r.name, r.trend_min, r.vol_min) for r in rules.rules] == [
        ("volatile_ranging", None, 0.9), ("bull_trending", 0.2, None),
        ("bear_trending", None, None), ("calm_ranging", None, None),
    ]  # fmt: skip
    run("data", "list")
    assert Store.open(home=redline_home).regimes.regime_rules() == RegimeRules()
