"""The replay report on two real weeks of BTC/USDT and ETH/USDT: JSON, the tables, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from live.report import REPORT_FILE, ReplayReport, fmt_number
from market.baselines import sma_cross
from market.equity import STATS, choose_sma, compare_series
from market.when import parse_when

START, END = parse_when("2024-01-01", "start"), parse_when("2024-01-15", "end")
SYMBOLS = ("BTC/USDT", "ETH/USDT")
EVENTS: list[dict[str, Any]] = [
    {"at": "2024-01-01T00:05:00+00:00", "kind": "auto_enable", "subject": "binance ETH/USDT 1h",
     "numbers": {"labelled": 2000, "threshold": 2000}},
    {"at": "2024-01-01T06:00:00+00:00", "kind": "retrain", "subject": "technical_analyst",
     "numbers": {"challengers": 6, "seconds": 41.27, "generation": 3}},
    {"at": "2024-01-01T06:00:00+00:00", "kind": "refusal", "subject": "ta-0007 bull_trending",
     "numbers": {"sharpe": 0.4123456789, "dsr": 0.62, "bars": 240, "reason": "DSR 0.62 < 0.95"}},
    {"at": "2024-01-02T12:00:00+00:00", "kind": "promotion", "subject": "ta-0011 calm_ranging",
     "numbers": {"sharpe": 1.87, "dsr": 0.97, "margin": 0.31, "bars": 312}},
    {"at": "2024-01-02T12:00:00+00:00", "kind": "swap", "subject": "ensemble v4",
     "numbers": {"members": 3}},
    {"at": "2024-01-09T13:00:00+00:00", "kind": "decay", "subject": "vh-0002 volatile_ranging",
     "numbers": {"hit_rate": 0.4716, "votes": 106, "sharpe": -0.82}},
    {"at": "2024-01-12T06:00:00+00:00", "kind": "expire", "subject": "ss-0004 bear_trending",
     "numbers": {"hours_since_validation": 72, "limit": 72}},
]  # fmt: skip


@pytest.fixture(scope="module")
def candles(shared_data: Path) -> dict[str, pd.DataFrame]:
    """Real Binance 1h candles from 2023-10-01 (history) to the end of the two weeks."""
    out = {}
    for symbol in SYMBOLS:
        frame = pd.read_csv(shared_data / f"binance_{symbol.replace('/', '-')}_1h.csv.gz")
        frame = frame.rename(columns={"timestamp": "ts"})
        keep = (frame.ts >= parse_when("2023-10-01", "from")) & (frame.ts < END)
        out[symbol] = frame[keep].reset_index(drop=True)
    return out


def sma_answers(candles: pd.DataFrame) -> pd.DataFrame:
    """What a Serve that followed the chosen SMA crossover would have answered each hour."""
    fast, slow = choose_sma(candles[candles.ts < START])
    positions = sma_cross(candles, fast, slow)
    inside = candles.ts.to_numpy() >= START
    return pd.DataFrame(
        {"ts": candles.ts[inside], "direction": positions[inside].astype(int), "size": 1.0}
    )


@pytest.fixture(scope="module")
def report(candles: dict[str, pd.DataFrame]) -> ReplayReport:
    series = {
        f"binance {symbol} 1h": compare_series(frame, sma_answers(frame), START, END)
        for symbol, frame in candles.items()
    }
    return ReplayReport(
        started_at="2026-12-03T20:00:00+00:00", ended_at="2026-12-03T20:04:31.5+00:00",
        replay_from="2024-01-01", replay_until="2024-01-15", wall_seconds=271.5, sim_days=14.0,
        series=series, events=EVENTS, retrains=1, promotions=1, refusals=1,
    )  # fmt: skip


def test_served_answers_that_follow_the_sma_score_exactly_as_the_sma(report: ReplayReport) -> None:
    for name, result in report.series.items():
        assert result["served"] == {k: result["sma_cross"][k] for k in STATS}, name
        assert result["unanswered"] == 0
        assert result["bars"] == result["served"]["bars"] == 14 * 24
        assert result["served"] != result["buy_and_hold"]


def test_json_is_stable_rounded_and_round_trips(report: ReplayReport, tmp_path: Path) -> None:
    text = report.to_json()
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, indent=2) + "\n"  # sorted, canonical
    btc = report.series["binance BTC/USDT 1h"]["served"]
    assert data["series"]["binance BTC/USDT 1h"]["served"]["sharpe"] == round(btc["sharpe"], 6)
    assert data["events"][2]["numbers"]["sharpe"] == 0.412346
    again = ReplayReport.from_json(text)
    assert again.to_json() == text
    assert again.events[2]["numbers"]["reason"] == "DSR 0.62 < 0.95"
    assert (
        again.series["binance ETH/USDT 1h"]["sma_cross"]["fast"]
        == (report.series["binance ETH/USDT 1h"]["sma_cross"]["fast"])
    )
    path = report.write(tmp_path)
    assert path == tmp_path / REPORT_FILE
    assert path.read_text() == text
    assert ReplayReport.read(path).to_json() == text
    assert not list(tmp_path.glob("*.partial"))


def test_non_finite_numbers_are_null(report: ReplayReport) -> None:
    events = [{**EVENTS[0], "numbers": {"sharpe": float("nan"), "pf": np.float64("inf")}}]
    odd = ReplayReport(**{**report.__dict__, "events": events})
    assert json.loads(odd.to_json())["events"][0]["numbers"] == {"sharpe": None, "pf": None}


def test_the_tables_show_every_figure(report: ReplayReport) -> None:
    console = Console(record=True, width=200)
    report.render(console, hide=())
    text = console.export_text()
    assert "replay 2024-01-01 to 2024-01-15 UTC: 14.0 simulated days in 272 s" in text
    assert "(1 retrains, 1 promotions, 1 refusals)" in text
    lines = text.splitlines()
    for name, result in report.series.items():
        assert f"{name}: 336 bars" in text
        sma = result["sma_cross"]
        label = f"SMA {sma['fast']}/{sma['slow']}"
        for row, stats in (("served", result["served"]), ("buy & hold", result["buy_and_hold"]),
                           (label, sma)):  # fmt: skip
            figures = [f"{stats['sharpe']:+.2f}", f"{stats['total_return']:+.2%}",
                       f"{stats['max_drawdown']:+.2%}", f"{stats['exposure']:.1%}"]  # fmt: skip
            # the row of this series' table: the first line with the label after the title
            start = next(i for i, line in enumerate(lines) if f"{name}: 336 bars" in line)
            line = next(line for line in lines[start:] if line.strip("│ ").startswith(row))
            for figure in figures:
                assert figure in line, (name, row, figure, line)
        assert f"chosen before 2024-01-01 (Sharpe {sma['train_sharpe']:+.2f} there)" in text
    assert "7 events" in text
    assert "2024-01-01 06:00 │ refusal     │ ta-0007 bull_trending" in text
    assert "bars 240, dsr 0.62, reason DSR 0.62 < 0.95, sharpe 0.412" in text
    assert "hit_rate 0.472, sharpe -0.82, votes 106" in text


def test_only_the_last_events_when_asked(report: ReplayReport) -> None:
    console = Console(record=True, width=200)
    report.render(console, max_events=2, hide=())
    text = console.export_text()
    assert "decay" in text and "expire" in text and "auto_enable" not in text
    assert f"the first 5 are in {REPORT_FILE}" in text


def test_refusals_are_counted_not_listed_by_default(report: ReplayReport) -> None:
    console = Console(record=True, width=200)
    report.render(console)
    text = console.export_text()
    assert "6 events" in text and "ta-0007 bull_trending" not in text
    assert "not shown: 1 refusal events, 0 validation events; replay_report.json lists each" in text


def test_short_numbers() -> None:
    assert [fmt_number(v) for v in (2000, 1234.56, 0.95, 2.0, -0.0001, None, np.float64(0.5))] == [
        "2,000", "1,235", "0.95", "2", "0", "-", "0.5",
    ]  # fmt: skip


def test_bad_reports_are_refused_naming_the_field(report: ReplayReport) -> None:
    base = report.__dict__
    bad_event = {**EVENTS[1], "kind": "retire"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"events": [EVENTS[0], bad_event]}, r"events\[1\]\.kind must be one of .* got 'retire'"),
        ({"events": [{**EVENTS[0], "at": "yesterday"}]}, r"events\[0\]\.at must be an ISO"),
        ({"events": [{"at": EVENTS[0]["at"]}]}, r"events\[0\] must be a dict with keys"),
        ({"events": [{**EVENTS[0], "numbers": {"x": [1]}}]}, r"events\[0\]\.numbers\['x'\]"),
        ({"replay_from": "Jan 2024"}, r"replay_from must be an ISO .* got 'Jan 2024'"),
        ({"retrains": -1}, r"retrains must be an integer >= 0; got -1"),
        ({"wall_seconds": float("nan")}, r"wall_seconds must be a finite number >= 0; got nan"),
        ({"series": {"x": {"served": {}}}}, r"series\['x'\]\.served lacks \['bars', 'sharpe'"),
    ]
    for change, match in cases:
        with pytest.raises(ValueError, match=match):
            ReplayReport(**{**base, **change})
    data = json.loads(report.to_json()) | {"seed": 7}
    with pytest.raises(ValueError, match=r"has no keys \['seed'\]"):
        ReplayReport.from_json(json.dumps(data))
