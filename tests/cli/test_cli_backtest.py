"""``redline backtest`` on a real SQLite store holding the real Binance BTC/USDT 1h candles.

The report's numbers are checked against positions recomputed here from pandas rolling means and
backtested with ``market.backtest.backtest``; a few facts are checked by hand (bars in 2023, trades
as SMA up-crossings, buy-and-hold's return as the ratio of closes).
"""

from __future__ import annotations

import json
import math
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.main import app, main
from market.backtest import backtest
from market.regimes import REGIMES, RegimeRules, classify_regimes
from market.series import SeriesKey
from store.db import Store

BTC = SeriesKey("binance", "BTC/USDT", "1h")
SINCE_2023 = 1672531200000  # 2023-01-01 00:00 UTC
UNTIL_2024 = 1704067200000  # 2024-01-01 00:00 UTC
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def env(home: Path) -> dict[str, str | None]:
    return {"REDLINE_HOME": str(home), "REDLINE_DATABASE_URL": None, "REDLINE_LOG_LEVEL": "WARNING"}


def run(home: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["backtest", *args], env=env(home), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@dataclass(frozen=True)
class Ran:
    out: Path
    output: str
    report: dict[str, Any]


def ran(home: Path, out: Path, *args: str) -> Ran:
    output = run(home, "--symbol", "BTC/USDT", "--timeframe", "1h", "--out", str(out), *args)
    return Ran(out, output, json.loads((out / "report.json").read_text()))


@pytest.fixture(scope="module")
def btc_home(tmp_path_factory: pytest.TempPathFactory, btc_1h: pd.DataFrame) -> Path:
    """A data root whose SQLite store holds the 37,216 real BTC 1h candles (2020-01 to 2024-03)."""
    home = tmp_path_factory.mktemp("backtest") / "redline_data"
    store = Store.open(home=home)
    assert store.candles.write_candles(BTC, btc_1h) == 37216
    store.close()
    return home


@pytest.fixture(scope="module")
def year_2023(btc_home: Path) -> Ran:
    """The defaults (sma_cross 20/50, 10 bps) over 2023, warmed up by the 2020-2022 history."""
    out = btc_home.parent / "bt2023"
    return ran(btc_home, out, "--since", "2023-01-01", "--until", "2024-01-01")


def history_before(btc_1h: pd.DataFrame, until_ms: int) -> pd.DataFrame:
    return btc_1h[btc_1h["ts"] < until_ms].reset_index(drop=True)


def sma_positions(close: pd.Series, fast: int, slow: int) -> np.ndarray:
    """Long (1) while the fast rolling mean is above the slow one; NaN windows compare False."""
    above = close.rolling(fast).mean() > close.rolling(slow).mean()
    return above.to_numpy(dtype=np.float64)


def test_report_equals_market_backtest_on_independently_computed_positions(
    year_2023: Ran, btc_1h: pd.DataFrame
) -> None:
    history = history_before(btc_1h, UNTIL_2024)
    in_range = (history["ts"] >= SINCE_2023).to_numpy()
    candles = history[in_range].reset_index(drop=True)
    positions = {
        "strategy": sma_positions(history["close"], 20, 50),
        "buy_and_hold": np.ones(len(history)),
        "sma_cross": sma_positions(history["close"], 20, 50),
    }
    labels = classify_regimes(history, "1h", RegimeRules())[in_range]
    for column, p in positions.items():
        expected = backtest(candles, p[in_range], fee_bps=10.0, timeframe="1h")
        got = year_2023.report["results"][column]
        metrics = expected.metrics()
        for name in ("total_return", "sharpe", "max_drawdown", "trade_count", "turnover"):
            assert got["metrics"][name] == metrics[name], (column, name)
        per = expected.metrics_by_regime(labels)
        for regime in REGIMES:
            for name in ("total_return", "sharpe", "bars"):
                assert got["by_regime"][regime][name] == per[regime][name], (column, regime, name)


def test_hand_checked_facts_of_2023(year_2023: Ran, btc_1h: pd.DataFrame) -> None:
    report = year_2023.report
    span = report["inputs"]["range"]
    # 2023 has 8,760 hours; Binance's 2023-03-24 14:00 maintenance candle is missing everywhere.
    assert span["bars"] == 8759
    assert span["first_bar"] == "2023-01-01 00:00" and span["last_bar"] == "2023-12-31 23:00"
    assert span["warmup_bars"] == 26273  # every stored candle of 2020-2022 fed the SMAs
    assert report["inputs"]["fee_bps"] == 10.0 and report["inputs"]["slippage_bps"] == 0.0
    assert report["inputs"]["strategy"] == {
        "name": "sma_cross", "fast": 20, "slow": 50, "label": "sma_cross 20/50",
    }  # fmt: skip
    assert "close of bar t+1" in report["inputs"]["convention"]

    # Trades are the SMA up-crossings inside the range, plus one: 2023 opened with the fast
    # average above the slow one, and the backtest starts flat, so it buys at the first close.
    history = history_before(btc_1h, UNTIL_2024)
    above = sma_positions(history["close"], 20, 50).astype(bool)
    first = int(np.argmax((history["ts"] >= SINCE_2023).to_numpy()))
    crossings = int(np.sum(above[first:] & ~above[first - 1 : -1]))
    assert above[first - 1] and above[first]
    strategy = report["results"]["strategy"]["metrics"]
    assert strategy["trade_count"] == crossings + 1 == 116

    # Buy and hold: bought at the first close (10 bps), marked at the last close.
    closes = history["close"].to_numpy()[first:]
    hold = report["results"]["buy_and_hold"]["metrics"]
    assert hold["total_return"] == pytest.approx(
        closes[-1] / closes[0] * (1 - 0.001) - 1, rel=1e-12
    )
    assert hold["trade_count"] == 1 and hold["profit_factor"] is None  # inf: no losing trade
    assert hold["exposure"] == pytest.approx((8759 - 1) / 8759, rel=1e-12)
    # The baseline is the same 20/50 crossover as the default strategy.
    assert report["results"]["sma_cross"]["metrics"] == strategy


def test_per_regime_sections_cover_the_four_regimes_and_compound_to_the_total(
    year_2023: Ran,
) -> None:
    report = year_2023.report
    assert set(report["regime_bars"]) == {*REGIMES, "no_regime"}
    assert report["regime_bars"]["no_regime"] == 0  # the 2022 history fills the 7d window
    assert sum(report["regime_bars"].values()) == 8759
    for column in ("strategy", "buy_and_hold", "sma_cross"):
        section = report["results"][column]
        assert list(section["by_regime"]) == list(REGIMES)
        assert section["no_regime"] is None
        per = section["by_regime"]
        assert [per[r]["bars"] for r in REGIMES] == [report["regime_bars"][r] for r in REGIMES]
        growth = math.prod(1 + per[r]["total_return"] for r in REGIMES)
        assert growth - 1 == pytest.approx(section["metrics"]["total_return"], rel=1e-9)


def test_report_is_strict_json_and_the_png_is_a_real_plot(year_2023: Ran) -> None:
    def refuse(constant: str) -> None:
        raise AssertionError(f"report.json holds {constant}")

    json.loads((year_2023.out / "report.json").read_text(), parse_constant=refuse)
    png = (year_2023.out / "equity.png").read_bytes()
    assert png[:8] == PNG_SIGNATURE and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 1000 and height >= 600
    from matplotlib.image import imread

    pixels = imread(year_2023.out / "equity.png")
    assert pixels.shape[:2] == (height, width)
    assert float(pixels[..., :3].std()) > 0.05  # lines and shading, not a blank canvas


def test_the_printed_tables_show_the_report_values(year_2023: Ran) -> None:
    out, results = year_2023.output, year_2023.report["results"]
    for header in ("strategy", "buy & hold", "sma cross 20/50", "sma_cross 20/50", "per regime"):
        assert header in out
    for label in ("total return", "Sharpe", "max drawdown", "trades", "turnover"):
        assert label in out
    for column in ("strategy", "buy_and_hold"):
        metrics = results[column]["metrics"]
        assert f"{metrics['total_return']:+.2%}" in out
        assert f"{metrics['sharpe']:.2f}" in out
    for regime in REGIMES:
        assert regime in out
    assert f"report: {year_2023.out / 'report.json'} (8,759 bars)" in out


def test_other_strategies_fees_and_slippage(btc_home: Path, btc_1h: pd.DataFrame) -> None:
    # Q1 2024: slippage is charged like a fee, so 5 + 5 bps equals a 10 bps fee bit for bit.
    out = btc_home.parent / "bt_fast"
    tuned = ran(btc_home, out, "--since", "2024-01-01", "--fast", "10", "--slow", "30",
                "--fee-bps", "5", "--slippage-bps", "5").report  # fmt: skip
    assert tuned["inputs"]["slippage_bps"] == 5.0
    assert tuned["results"]["strategy"]["label"] == "sma_cross 10/30"
    assert tuned["results"]["sma_cross"]["label"] == "sma_cross 20/50"
    history = btc_1h.reset_index(drop=True)
    in_range = (history["ts"] >= UNTIL_2024).to_numpy()
    expected = backtest(
        history[in_range].reset_index(drop=True),
        sma_positions(history["close"], 10, 30)[in_range],
        fee_bps=10.0,
    ).metrics()
    got = tuned["results"]["strategy"]["metrics"]
    assert got["total_return"] == expected["total_return"] and got["sharpe"] == expected["sharpe"]
    assert got["trade_count"] != tuned["results"]["sma_cross"]["metrics"]["trade_count"]

    hold = ran(btc_home, btc_home.parent / "bt_hold", "--strategy", "buy_and_hold",
               "--since", "2024-03-01", "--fee-bps", "0").report  # fmt: skip
    closes = history["close"].to_numpy()[(history["ts"] >= 1709251200000).to_numpy()]
    total = hold["results"]["strategy"]["metrics"]["total_return"]
    assert total == pytest.approx(closes[-1] / closes[0] - 1, rel=1e-12)
    assert hold["results"]["strategy"] == hold["results"]["buy_and_hold"]
    assert hold["inputs"]["strategy"] == {"name": "buy_and_hold", "fast": None, "slow": None,
                                          "label": "buy_and_hold"}  # fmt: skip


def test_a_sample_series_missing_from_the_store_is_imported(
    redline_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eth"
    output = run(redline_home, "--symbol", "ETH/USDT", "--since", "2024-03-25", "--out", str(out))
    assert "imported the shipped sample" in output
    info = Store.open(home=redline_home).candles.series_info(SeriesKey("binance", "ETH/USDT", "1h"))
    assert info is not None and info.rows == 15359  # market/sample/README.md
    report = json.loads((out / "report.json").read_text())
    assert report["inputs"]["range"]["first_bar"] == "2024-03-25 00:00"
    assert report["inputs"]["range"]["bars"] == 7 * 24


BAD_INPUTS = [
    (["--fast", "50", "--slow", "20"], r"--fast must be smaller than --slow; got --fast 50, --slow 20"),
    (["--fast", "20", "--slow", "20"], r"--fast must be smaller than --slow; got --fast 20, --slow 20"),
    (["--fast", "0"], r"--fast must be a number of bars >= 1; got 0"),
    (["--strategy", "rsi"], r"--strategy must be one of sma_cross, buy_and_hold; got 'rsi'"),
    (["--fee-bps", "-1"], r"--fee-bps must be a finite number of basis points >= 0; got -1.0"),
    (["--slippage-bps", "nan"], r"--slippage-bps must be a finite number .* got nan"),
    (["--timeframe", "7x"], r"--timeframe must be one of .*; got '7x'"),
    (["--since", "soon"], r"--since must be a date like 2024-01-01 .*; got 'soon'"),
    (["--since", "2030-01-01"],
     r"no candles of binance:BTC/USDT:1h in the range --since 2030-01-01 00:00 to --until the end"),
    (["--since", "2019-01-01", "--until", "2019-06-01"],
     r"no candles of binance:BTC/USDT:1h in the range .* the store holds nothing before --until"),
    (["--since", "2024-01-02", "--until", "2024-01-01"],
     r"--since must be before --until; got --since 2024-01-02 00:00 UTC"),
    (["--symbol", "LTC/USDT"],
     r"no candles stored for binance:LTC/USDT:1h .* run `redline data import FILE` or "
     r"`redline data fetch --symbol LTC/USDT"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS)
def test_bad_input_names_the_flag_and_the_value(
    btc_home: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "never"
    with pytest.raises(ValueError, match=message):
        CliRunner().invoke(
            app,
            ["backtest", "--symbol", "BTC/USDT", "--out", str(out), *args],
            env=env(btc_home),
            catch_exceptions=False,
        )
    assert not out.exists()


def test_main_prints_the_error_and_exits_2(
    btc_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDLINE_HOME", str(btc_home))
    monkeypatch.setattr(
        sys, "argv", ["redline", "backtest", "--symbol", "BTC/USDT", "--out", "x", "--slow", "5"]
    )
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert (
        "error: --fast must be smaller than --slow; got --fast 20, --slow 5"
        in capsys.readouterr().err
    )
