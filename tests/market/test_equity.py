"""The walk-forward report's numbers on real candles: by hand, without look-ahead, the SMA choice."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.baselines import sma_cross
from market.equity import (
    SMA_GRID,
    STATS,
    answer_positions,
    choose_sma,
    compare_series,
    equity_stats,
)
from market.when import parse_when

START = parse_when("2024-01-01", "start")
END = parse_when("2024-01-15", "end")
HOUR = 3_600_000


@pytest.fixture(scope="module")
def btc(btc_1h: pd.DataFrame) -> pd.DataFrame:
    """Real BTC/USDT 1h from 2023-10-01 to 2024-02-01: history, the two weeks, and after."""
    ts = btc_1h["ts"]
    keep = (ts >= parse_when("2023-10-01", "from")) & (ts < parse_when("2024-02-01", "to"))
    return btc_1h[keep].reset_index(drop=True)


@pytest.fixture(scope="module")
def eth(shared_data: Path) -> pd.DataFrame:
    frame = pd.read_csv(shared_data / "binance_ETH-USDT_1h.csv.gz").rename(
        columns={"timestamp": "ts"}
    )
    keep = (frame.ts >= parse_when("2023-10-01", "from")) & (frame.ts < END)
    return frame[keep].reset_index(drop=True)


def answers_of(ts: np.ndarray, positions: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {"ts": ts, "direction": np.sign(positions).astype(int), "size": np.abs(positions)}
    )


def test_five_real_bars_by_hand(btc_1h: pd.DataFrame) -> None:
    head = btc_1h.iloc[:5].reset_index(drop=True)  # 2020-01-01 00:00..04:00 UTC
    c0, c1, c2, c3, c4 = 7177.02, 7216.27, 7242.85, 7225.01, 7217.27
    assert head.close.tolist() == [c0, c1, c2, c3, c4]
    stats = equity_stats(head, np.array([1.0, 1.0, 0.5, -1.0, 0.0]))
    # Equity after each close, 10 bps per unit of change:
    e0 = 1 - 0.001 * 1.0  # buy 1 at close 0: fee 0.001 -> 0.999
    e1 = e0 * c1 / c0  # held long over bar 1, no change -> 1.004463
    pre2 = e1 * c2 / c1  # long over bar 2 -> 1.008163, then cut to 0.5: fee 0.0005 * pre2
    e2 = pre2 * (1 - 0.0005)  # -> 1.007659
    pre3 = e2 * (1 + 0.5 * (c3 / c2 - 1))  # half long over bar 3 (BTC -0.25%) -> 1.006418
    e3 = pre3 * (1 - 0.0015)  # flip 0.5 -> -1: 1.5 units, fee 0.0015 * pre3 -> 1.004908
    pre4 = e3 * (1 - (c4 / c3 - 1))  # short over bar 4 (BTC -0.11%) -> 1.005985
    e4 = pre4 * (1 - 0.001)  # close the short: fee 0.001 * pre4 -> 1.004979
    assert e4 - 1 == pytest.approx(0.004979009658690581, rel=1e-12)
    assert stats["total_return"] == pytest.approx(e4 - 1, rel=1e-12)
    fees = 0.001 + 0.0005 * pre2 + 0.0015 * pre3 + 0.001 * pre4  # = 0.0040196937
    assert stats["fees"] == pytest.approx(fees, rel=1e-12)
    assert stats["fees"] == pytest.approx(0.004019693700766397, rel=1e-12)
    assert stats["traded"] == 4.0  # 1 + 0 + 0.5 + 1.5 + 1
    assert stats["exposure"] == 0.8  # 4 of 5 bars hold a position
    assert stats["mean_abs_position"] == pytest.approx(0.7)  # (1 + 1 + 0.5 + 1 + 0) / 5
    # The peak is e2; the trough after it e3 (the start, 1.0, is the first peak).
    assert stats["max_drawdown"] == pytest.approx(e3 / e2 - 1, rel=1e-12)
    assert stats["max_drawdown"] == pytest.approx(-0.0027297120608599235, rel=1e-9)
    # Bar returns -0.001, e1/e0 - 1, e2/e1 - 1, e3/e2 - 1, e4/e3 - 1; 8,760 hourly bars a year.
    r = np.array([e0 - 1, e1 / e0 - 1, e2 / e1 - 1, e3 / e2 - 1, e4 / e3 - 1])
    assert stats["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(8760), rel=1e-9)
    assert stats["sharpe"] == pytest.approx(28.328094085466493, rel=1e-9)
    assert stats["bars"] == 5
    assert tuple(stats) == STATS


def test_exposure_counts_bars_in_the_market_whatever_the_size(btc_1h: pd.DataFrame) -> None:
    head = btc_1h.iloc[:8].reset_index(drop=True)
    stats = equity_stats(head, np.array([0, 0, 0.25, 0.25, 0, -0.5, 0, 0]))
    assert stats["exposure"] == 3 / 8
    assert stats["mean_abs_position"] == pytest.approx(1.0 / 8)
    assert stats["traded"] == pytest.approx(0.25 + 0.25 + 0.5 + 0.5)


def test_buy_and_hold_drawdown_is_the_close_drawdown_after_the_entry_fee(
    btc_1h: pd.DataFrame,
) -> None:
    head = btc_1h.iloc[:5].reset_index(drop=True)
    stats = equity_stats(head, np.ones(5))
    # Equity 0.999 * close / c0: the peak is at c2 = 7242.85, the trough after it c4 = 7217.27.
    assert stats["max_drawdown"] == pytest.approx(7217.27 / 7242.85 - 1, rel=1e-12)
    assert stats["total_return"] == pytest.approx(0.999 * 7217.27 / 7177.02 - 1, rel=1e-12)
    assert stats["exposure"] == 1.0
    assert stats["fees"] == pytest.approx(0.001)


def test_never_in_the_market_is_sharpe_zero_not_nan(btc_1h: pd.DataFrame) -> None:
    stats = equity_stats(btc_1h.iloc[:50].reset_index(drop=True), np.zeros(50))
    assert stats == {
        "bars": 50, "sharpe": 0.0, "total_return": 0.0, "max_drawdown": 0.0, "exposure": 0.0,
        "mean_abs_position": 0.0, "traded": 0.0, "fees": 0.0,
    }  # fmt: skip


def test_served_answers_equal_to_the_sma_score_as_the_sma(btc: pd.DataFrame) -> None:
    report = compare_series(btc, pd.DataFrame(columns=["ts", "direction", "size"]), START, END)
    fast, slow = report["sma_cross"]["fast"], report["sma_cross"]["slow"]
    assert (fast, slow) == choose_sma(btc[btc.ts < START])
    history = btc[btc.ts < END].reset_index(drop=True)
    inside = history.ts.to_numpy() >= START
    sma = sma_cross(history, fast, slow)[inside]
    served = compare_series(btc, answers_of(history.ts[inside].to_numpy(), sma), START, END)
    assert served["unanswered"] == 0
    assert served["served"] == {k: served["sma_cross"][k] for k in STATS}
    assert served["bars"] == 14 * 24 == served["served"]["bars"]
    # nothing answered: flat over every bar, each counted
    assert report["unanswered"] == 14 * 24
    assert report["served"]["sharpe"] == 0.0 and report["served"]["exposure"] == 0.0


def test_unanswered_bars_are_flat_and_counted(btc: pd.DataFrame) -> None:
    window = btc[(btc.ts >= START) & (btc.ts < END)].reset_index(drop=True)
    positions = np.where(np.arange(len(window)) % 3 == 0, 0.0, -0.4)
    answers = answers_of(window.ts.to_numpy(), positions).iloc[::2]  # every other bar answered
    before = answers_of(np.array([START - HOUR]), np.array([1.0]))  # outside: ignored
    report = compare_series(btc, pd.concat([before, answers]), START, END)
    expected = np.zeros(len(window))
    expected[::2] = positions[::2]
    assert report["unanswered"] == len(window) - len(answers)
    assert report["served"] == equity_stats(window, expected)
    assert report["buy_and_hold"] == equity_stats(window, np.ones(len(window)))


def test_two_real_series_each_choose_their_pair_before_the_start(
    btc: pd.DataFrame, eth: pd.DataFrame
) -> None:
    none = pd.DataFrame(columns=["ts", "direction", "size"])
    pairs = {name: compare_series(c, none, START, END)["sma_cross"] for name, c in
             (("btc", btc), ("eth", eth))}  # fmt: skip
    for name, sma in pairs.items():
        assert (sma["fast"], sma["slow"]) in SMA_GRID, name
        frame = btc if name == "btc" else eth
        before = frame[frame.ts < START].reset_index(drop=True)
        trained = equity_stats(before, sma_cross(before, sma["fast"], sma["slow"]))
        assert sma["train_sharpe"] == trained["sharpe"]
        # the chosen pair has the best training Sharpe of the grid
        for fast, slow in SMA_GRID:
            assert (
                equity_stats(before, sma_cross(before, fast, slow))["sharpe"] <= trained["sharpe"]
            )


@settings(max_examples=25, deadline=None)
@given(
    cut=st.integers(min_value=1, max_value=14 * 24 - 1),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_no_look_ahead_later_closes_and_answers_change_nothing_before(
    btc: pd.DataFrame, cut: int, seed: int
) -> None:
    """The report up to bar ``cut`` is the same whatever comes after it (prices or answers)."""
    rng = np.random.default_rng(seed)
    ts = btc.ts.to_numpy()
    window = (ts >= START) & (ts < END)
    answers = answers_of(ts[window], rng.choice([-1.0, -0.5, 0.0, 0.3, 1.0], window.sum()))
    end = START + cut * HOUR
    before = compare_series(btc, answers, START, end)
    changed = btc.copy()
    later = changed.ts >= end
    changed.loc[later, "close"] *= rng.uniform(0.5, 1.5, later.sum())
    answers.loc[answers.ts >= end, "direction"] *= -1
    after = compare_series(changed, answers, START, end)
    assert after == before
    assert before["bars"] == cut


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_the_sma_pair_reads_only_the_candles_before_the_start(btc: pd.DataFrame, seed: int) -> None:
    rng = np.random.default_rng(seed)
    none = pd.DataFrame(columns=["ts", "direction", "size"])
    changed = btc.copy()
    later = changed.ts >= START
    changed.loc[later, "close"] *= rng.uniform(0.5, 1.5, later.sum())
    chosen = compare_series(btc, none, START, END)["sma_cross"]
    again = compare_series(changed, none, START, END)["sma_cross"]
    assert (again["fast"], again["slow"], again["train_sharpe"]) == (
        chosen["fast"], chosen["slow"], chosen["train_sharpe"],
    )  # fmt: skip
    assert choose_sma(changed[~later]) == choose_sma(btc[btc.ts < START])


@settings(max_examples=20, deadline=None)
@given(
    steps=st.lists(st.floats(min_value=1e-4, max_value=0.05), min_size=201, max_size=400),
    first=st.floats(min_value=10.0, max_value=1e5),
)
def test_a_tie_goes_to_the_first_pair_of_the_grid(steps: list[float], first: float) -> None:
    """Closes that only fall keep every crossover flat: all score 0, the first pair wins."""
    close = first * np.cumprod(1.0 - np.array(steps))
    candles = pd.DataFrame({"ts": np.arange(len(close)) * HOUR, "close": close})
    assert choose_sma(candles) == SMA_GRID[0]
    assert choose_sma(candles, grid=[(50, 200), (5, 20)]) == (50, 200)


def test_bad_answers_are_refused_with_the_row(btc: pd.DataFrame) -> None:
    ts = btc.ts[btc.ts >= START].to_numpy()[:3]
    for answers, match in (
        (answers_of(ts, np.ones(3)).assign(direction=[1, 2, 0]), r"direction .* row 1 has 2"),
        (answers_of(ts, np.ones(3)).assign(size=[0.5, 1.5, 0]), r"size .* row 1 has 1.5"),
        (answers_of(ts[[0, 1, 1]], np.ones(3)), r"unique: 1704070800000 \(2024-01-01 01:00"),
        (answers_of(ts + 60_000, np.ones(3)), r"ts 1704067260000 \(2024-01-01 00:01 UTC\) is no"),
        (answers_of(ts, np.ones(3)).drop(columns="size"), r"columns \['size'\]"),
    ):
        with pytest.raises(ValueError, match=match):
            answer_positions(ts, answers)


def test_too_little_history_or_an_empty_window_is_refused(btc: pd.DataFrame) -> None:
    none = pd.DataFrame(columns=["ts", "direction", "size"])
    with pytest.raises(ValueError, match=r"longest slow window \(200\); got 150"):
        compare_series(btc.iloc[:400], none, int(btc.ts[150]), END)
    with pytest.raises(ValueError, match=r"no candles in \[2025-01-01 00:00, 2025-02-01 00:00\)"):
        compare_series(btc, none, parse_when("2025-01-01", "s"), parse_when("2025-02-01", "e"))
    with pytest.raises(ValueError, match="start_ms must be before end_ms"):
        compare_series(btc, none, END, START)
