"""Cost-aware positions (agents.positions): causal, bounded, on their grid, holding as told."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.genome import Genome
from agents.positions import VOL_WINDOW, WARMUP_SLACK, PositionRule
from agents.scoring import positions_from_scores, score_series

# A generated series is fine here: PositionRule is a pure function of scores and closes.
SCORES = st.lists(st.floats(-1.0, 1.0, allow_nan=False, width=32), min_size=1, max_size=300)
RULES = st.builds(
    PositionRule,
    threshold=st.floats(0.0, 0.8),
    band=st.floats(0.0, 0.3),
    min_hold=st.integers(1, 24),
    levels=st.integers(1, 4),
    vol_target=st.sampled_from([0.0, 0.0, 0.25, 0.5, 1.0]),
    vol_window=st.integers(2, 30),
)


def _closes(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))


def _breaks(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed + 1).random(n) < 0.03


@settings(max_examples=150, deadline=None)
@given(SCORES, RULES, st.integers(0, 10_000), st.data())
def test_positions_never_look_ahead(
    scores: list[float], rule: PositionRule, seed: int, data: st.DataObject
) -> None:
    s, close, brk = np.array(scores), _closes(len(scores), seed), _breaks(len(scores), seed)
    full = rule.positions(s, close, breaks=brk, timeframe="1h")
    k = data.draw(st.integers(1, len(s)))
    prefix = rule.positions(s[:k], close[:k], breaks=brk[:k], timeframe="1h")
    np.testing.assert_array_equal(prefix, full[:k])


@settings(max_examples=150, deadline=None)
@given(SCORES, RULES, st.integers(0, 10_000))
def test_positions_stay_in_bounds_on_the_grid_and_hold(
    scores: list[float], rule: PositionRule, seed: int
) -> None:
    s, close, brk = np.array(scores), _closes(len(scores), seed), _breaks(len(scores), seed)
    p = rule.positions(s, close, breaks=brk, timeframe="1h")
    assert p.shape == s.shape and np.all(np.abs(p) <= 1.0)
    assert np.all(p[brk] == 0.0)
    if rule.vol_target == 0:
        grid = p * rule.levels
        np.testing.assert_array_equal(grid, np.round(grid))
    # min_hold: two changes are at least min_hold bars apart, unless a break (or a volatility
    # warm-up after one) forced the position flat.
    forced = brk | np.append(False, brk[:-1])
    changes = np.flatnonzero(np.diff(p, prepend=0.0) != 0)
    free = [c for c in changes if not forced[max(c - 1, 0) : c + 1].any()]
    assert all(c % rule.min_hold == 0 for c in changes if not brk[c])  # the schedule (no ts)
    for a, b in itertools.pairwise(free):
        if not forced[a : b + 1].any():
            assert b - a >= rule.min_hold, (a, b)


@settings(max_examples=150, deadline=None)
@given(SCORES, st.floats(0.0, 1.2), st.integers(0, 10_000))
def test_the_default_rule_is_the_threshold_rule(
    scores: list[float], threshold: float, seed: int
) -> None:
    s = np.array(scores)
    rule = PositionRule.from_genome(Genome("technical_analyst", (("threshold", threshold),)))
    assert rule == PositionRule(threshold) and rule.stateless and rule.warmup == 1
    np.testing.assert_array_equal(rule.positions(s), positions_from_scores(s, threshold))
    brk = _breaks(len(s), seed)
    expected = positions_from_scores(s, threshold)
    expected[brk] = 0.0
    np.testing.assert_array_equal(rule.positions(s, breaks=brk), expected)


def test_eight_bars_by_hand() -> None:
    # threshold 0.3, band 0.1 (held while the score in the held direction is > 0.2), min_hold 2:
    # without ts the position may change on rows 0, 2, 4, 6.
    scores = np.array([0.35, 0.25, 0.1, -0.4, -0.35, 0.22, 0.5, 0.28])
    rule = PositionRule(threshold=0.3, band=0.1, min_hold=2)
    # bar 1: 0.25 is inside the band, the long is kept; bar 2: out; bar 3: the short waits for
    # the schedule; bar 5: 0.22 would exit the short, the schedule keeps it a bar; bar 6: 0.5
    # flips beyond the threshold; bar 7: 0.28 is inside the band.
    np.testing.assert_array_equal(rule.positions(scores), [1, 1, 0, 0, -1, -1, 1, 1])
    np.testing.assert_array_equal(positions_from_scores(scores, 0.3), [1, 0, 0, -1, -1, 0, 1, 0])
    # The schedule follows the clock: bars 1..8 since the epoch put the changes on rows 1, 3, 5, 7.
    ts = np.arange(1, 9) * 3_600_000
    np.testing.assert_array_equal(rule.positions(scores, ts=ts, timeframe="1h"),
                                  [0, 0, 0, -1, -1, 0, 0, 0])  # fmt: skip
    # A break closes the position and the state restarts flat.
    brk = np.zeros(8, dtype=bool)
    brk[0] = True
    np.testing.assert_array_equal(rule.positions(scores, breaks=brk), [0, 0, 0, 0, -1, -1, 1, 1])
    # Two levels above threshold 0.2: edges 0.2 and 0.6; band 0.1 below each held edge.
    levels = PositionRule(threshold=0.2, band=0.1, levels=2)
    scores = np.array([0.7, 0.55, 0.45, 0.15, 0.05, -0.65, -0.3, 0.0])
    np.testing.assert_array_equal(levels.positions(scores),
                                  [1, 1, 0.5, 0.5, 0, -1, -0.5, 0])  # fmt: skip


def test_vol_targeting_scales_by_past_returns_only() -> None:
    close = np.array([100.0, 101.0, 100.0, 101.0, 100.0, 102.0, 100.0, 99.0])
    rule = PositionRule(threshold=0.1, vol_target=0.5, vol_window=4, min_hold=1)
    p = rule.positions(np.full(8, 0.9), close, timeframe="1h")
    assert np.all(p[:4] == 0.0)  # no full window of 4 returns before bar 4
    r = np.log(close[1:5] / close[:4])
    realized = np.sqrt(np.mean(r**2) * 24 * 365)
    assert p[4] == pytest.approx(min(0.5 / realized, 1.0))
    assert np.all(p[4:] == p[4])  # the size is read at the entry and held with the position
    assert rule.warmup == 4 + 1 + WARMUP_SLACK
    assert PositionRule(band=0.1, min_hold=6).warmup == 6 + WARMUP_SLACK
    assert PositionRule(vol_target=0.2).warmup == VOL_WINDOW + 1 + WARMUP_SLACK


@settings(max_examples=60, deadline=None)
@given(SCORES, RULES, st.integers(0, 10_000), st.data())
def test_a_replay_from_a_later_start_agrees_once_it_has_met_the_same_state(
    scores: list[float], rule: PositionRule, seed: int, data: st.DataObject
) -> None:
    # What Serve relies on: from a row where the full history is flat on a schedule bar with a
    # volatility estimate, a replay started at that row's window gives the same positions.
    s, close = np.array(scores), _closes(len(scores), seed)
    ts = (np.arange(len(s)) + data.draw(st.integers(0, 50))) * 3_600_000
    full = rule.positions(s, close, timeframe="1h", ts=ts)
    start = data.draw(st.integers(0, len(s) - 1))
    vol = rule.vol_window if rule.vol_target > 0 else 0
    late = rule.positions(s[start:], close[start:], timeframe="1h", ts=ts[start:])
    if start == 0:
        np.testing.assert_array_equal(late, full)
    # The replay is flat through its volatility warm-up; where both are flat and the clock lets
    # the position change, the two states are equal, and so is everything after.
    flat = [i for i in range(start + vol, len(s)) if full[i] == 0 and late[i - start] == 0
            and (ts[i] // 3_600_000) % rule.min_hold == 0]  # fmt: skip
    if flat:
        i = flat[0]
        np.testing.assert_array_equal(late[i - start :], full[i:])


def _momentum_scores(frame: pd.DataFrame) -> np.ndarray:
    """A causal score of real candles: the 24-bar log return over its trailing 168-bar scale."""
    close = frame["close"].to_numpy(dtype=np.float64)
    ret = pd.Series(np.log(close)).diff(24)
    scale = ret.rolling(168).std()
    return np.nan_to_num(np.tanh((ret / scale).to_numpy() / 2.0))


def test_band_and_min_hold_trade_less_on_real_btc(btc_1h: pd.DataFrame) -> None:
    frame = btc_1h.iloc[-8000:].reset_index(drop=True)
    scores = _momentum_scores(frame)
    close = frame["close"].to_numpy(dtype=np.float64)
    plain = PositionRule(threshold=0.2)
    calm = PositionRule(threshold=0.2, band=0.15, min_hold=12)

    def changes(rule: PositionRule) -> int:
        return int(np.count_nonzero(np.diff(rule.positions(scores, close, timeframe="1h"),
                                            prepend=0.0)))  # fmt: skip

    assert changes(calm) < changes(plain)
    # ... and through the one scoring path every fitness uses, it pays less in fees.
    ts = frame["ts"].to_numpy()
    turnover = [score_series(ts, close, scores, rule, timeframe="1h").metrics["turnover"]
                for rule in (plain, calm)]  # fmt: skip
    assert turnover[1] < turnover[0]


@pytest.mark.parametrize(
    ("genes", "message"),
    [
        ({"band": -0.1}, r"gene band must be a finite number >= 0; got -0.1"),
        ({"min_hold": 0}, r"gene min_hold must be an integer >= 1; got 0"),
        ({"levels": 2.5}, r"gene levels must be an integer >= 1; got 2.5"),
        ({"vol_target": float("nan")}, r"gene vol_target must be a finite number >= 0; got nan"),
        ({"threshold": "high"}, r"gene threshold must be a finite number >= 0; got 'high'"),
    ],
)
def test_bad_genes_are_named_with_their_value(genes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PositionRule.from_genome(genes)


def test_bad_rules_and_inputs_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match=r"max_leverage must be a finite number > 0 and <= 1"):
        PositionRule(max_leverage=1.5)
    with pytest.raises(ValueError, match="vol_target > 0 needs the closes and the timeframe"):
        PositionRule(vol_target=0.3).positions(np.zeros(3))
    with pytest.raises(ValueError, match=r"breaks must have one entry per score \(3\)"):
        PositionRule(band=0.1).positions(np.zeros(3), breaks=np.zeros(2, dtype=bool))
