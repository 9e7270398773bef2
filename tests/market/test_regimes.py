"""Regimes of the real BTC candles: measured shares, hand-checked measures, no look-ahead."""

from __future__ import annotations

import csv
import gzip
import itertools
import math
import statistics
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.regimes import (
    NO_REGIME,
    REGIMES,
    RegimePeriod,
    RegimeRule,
    RegimeRules,
    classify_regimes,
    regime_confidence,
    regime_frame,
    regime_periods,
    regime_shares,
    trend_and_vol,
)
from tests.conftest import shared_data_dir

WEEK_1H = 168


@cache
def raw_closes() -> tuple[list[int], list[float]]:
    with gzip.open(shared_data_dir() / "binance_BTC-USDT_1h.csv.gz", "rt", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        rows = [(int(r[0]), float(r[4])) for r in reader]
    return [r[0] for r in rows], [r[1] for r in rows]


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def btc_regimes(btc_1h: pd.DataFrame) -> pd.DataFrame:
    return regime_frame(btc_1h, "1h", RegimeRules())


def test_default_rules_split_btc_2020_2024(btc_1h: pd.DataFrame) -> None:
    labels = classify_regimes(btc_1h, "1h", RegimeRules())
    shares = regime_shares(labels)
    assert list(shares) == list(REGIMES)
    assert {name: round(share, 4) for name, share in shares.items()} == {
        "bull_trending": 0.2878,
        "bear_trending": 0.1855,
        "volatile_ranging": 0.1438,
        "calm_ranging": 0.3829,
    }
    assert math.fsum(shares.values()) == pytest.approx(1.0, abs=1e-12)
    assert all(share > 0.10 for share in shares.values())  # every regime well represented
    assert (labels == NO_REGIME).sum() == WEEK_1H  # only the first week has no full window


def test_trend_and_vol_by_hand_at_the_may_2021_crash(btc_1h: pd.DataFrame) -> None:
    ts_list, closes = raw_closes()
    i = ts_list.index(ms("2021-05-19 12:00"))
    expected_trend = closes[i] / closes[i - WEEK_1H] - 1
    logs = [math.log(closes[j] / closes[j - 1]) for j in range(i - WEEK_1H + 1, i + 1)]
    expected_vol = statistics.stdev(logs) * math.sqrt(24 * 365)
    trend, vol = trend_and_vol(btc_1h, "1h", "7d")
    assert trend[i] == pytest.approx(expected_trend, rel=1e-12)
    assert vol[i] == pytest.approx(expected_vol, rel=1e-10)
    assert trend[i] == pytest.approx(-0.3743, abs=1e-4)  # down 37% in a week
    assert vol[i] == pytest.approx(1.4621, abs=1e-4)
    labels = classify_regimes(btc_1h, "1h", RegimeRules())
    assert labels[i] == "bear_trending"


@pytest.mark.parametrize(
    ("when", "regime", "confidence"),
    [
        ("2020-03-13 12:00", "bear_trending", 1.0),  # covid crash, far past -5%
        ("2021-01-08 12:00", "bull_trending", 1.0),  # up 41% in a week
        ("2023-07-01 12:00", "calm_ranging", None),
    ],
)
def test_known_bars_and_their_confidence(
    btc_regimes: pd.DataFrame, when: str, regime: str, confidence: float | None
) -> None:
    row = btc_regimes[btc_regimes["ts"] == ms(when)].iloc[0]
    assert row["regime"] == regime
    if confidence is None:
        # Calm: the nearest threshold is the 60% volatility of volatile_ranging (above the bar), as
        # the trend (-0.4%) is nearly a full 5% from both trend thresholds.
        assert abs(row["trend"]) < 0.01
        confidence = (0.6 - row["vol"]) / 0.6
        assert confidence == pytest.approx(0.3750, abs=1e-4)
    assert row["confidence"] == pytest.approx(confidence, rel=1e-12)


def test_confidence_is_in_unit_range_and_nan_without_regime(btc_regimes: pd.DataFrame) -> None:
    confidence = btc_regimes["confidence"].to_numpy()
    named = btc_regimes["regime"].to_numpy() != NO_REGIME
    assert np.isnan(confidence[~named]).all()
    assert ((confidence[named] >= 0) & (confidence[named] <= 1)).all()
    # Strong trends are confident, bars next to the 5% trend threshold are not.
    near = named & (np.abs(np.abs(btc_regimes["trend"].to_numpy()) - 0.05) < 0.001)
    assert near.sum() > 100 and (confidence[near] < 0.021).all()


def test_confidence_formula_on_every_btc_bar(btc_1h: pd.DataFrame) -> None:
    """The documented formula, written out per regime for the default rules."""
    frame = regime_frame(btc_1h, "1h")
    trend, vol, regime = frame["trend"], frame["vol"], frame["regime"]
    up = (0.05 - trend) / 0.05  # distance to entering bull (for bars that are not bull)
    down = (trend + 0.05) / 0.05  # distance to entering bear
    spike = (0.6 - vol) / 0.6  # distance to entering volatile_ranging
    expected = np.select(
        [regime == "bull_trending", regime == "bear_trending", regime == "volatile_ranging"],
        [-up, np.fmin(-down, up), np.fmin(-spike, np.fmin(up, down))],
        np.fmin(spike, np.fmin(up, down)),
    )
    expected = np.where(regime == NO_REGIME, np.nan, np.clip(expected, 0, 1))
    got = regime_confidence(btc_1h, "1h")
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15, equal_nan=True)
    np.testing.assert_array_equal(got, frame["confidence"].to_numpy())
    np.testing.assert_array_equal(classify_regimes(btc_1h, "1h"), regime.to_numpy())


def test_rule_order_decides(btc_1h: pd.DataFrame, btc_regimes: pd.DataFrame) -> None:
    vol_first = RegimeRules(
        rules=(
            RegimeRule("volatile_ranging", vol_min=0.6),
            RegimeRule("bull_trending", trend_min=0.05),
            RegimeRule("bear_trending", trend_max=-0.05),
            RegimeRule("calm_ranging"),
        )
    )
    labels = classify_regimes(btc_1h, "1h", vol_first)
    vol = btc_regimes["vol"].to_numpy()
    named = labels != NO_REGIME
    np.testing.assert_array_equal(labels[named] == "volatile_ranging", vol[named] >= 0.6)
    # Calm bars are the same under both orders: no trend and vol below 60%.
    np.testing.assert_array_equal(
        labels == "calm_ranging", btc_regimes["regime"].to_numpy() == "calm_ranging"
    )
    assert round(regime_shares(labels)["volatile_ranging"], 4) == 0.4087


def test_same_thresholds_mean_the_same_on_5m(shared_data: Path, btc_1h: pd.DataFrame) -> None:
    five = pd.read_csv(shared_data / "binance_BTC-USDT_5m.csv.gz").rename(
        columns={"timestamp": "ts"}
    )
    fine = regime_frame(five, "5m")
    assert (fine["regime"] == NO_REGIME).sum() == 2016  # 7d of 5m bars
    # The 5m bar opening at hh:55 closes with the 1h bar opening at hh:00.
    fine = fine[fine["ts"] % 3_600_000 == 55 * 60_000].assign(ts=lambda f: f["ts"] - 55 * 60_000)
    joined = regime_frame(btc_1h, "1h").merge(fine, on="ts", suffixes=("_1h", "_5m"))
    joined = joined[(joined["regime_1h"] != NO_REGIME) & (joined["regime_5m"] != NO_REGIME)]
    assert len(joined) == 2016
    np.testing.assert_allclose(joined["trend_5m"], joined["trend_1h"], rtol=1e-12)
    assert (joined["regime_5m"] == joined["regime_1h"]).mean() > 0.95


def test_bad_inputs_are_named(btc_1h: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"timeframe must be one of .*got '7x'"):
        trend_and_vol(btc_1h, "7x", "7d")
    with pytest.raises(ValueError, match=r"window must span at least 2 bars of 1h; got '1h'"):
        trend_and_vol(btc_1h, "1h", "1h")
    with pytest.raises(ValueError, match=r"duration must look like .*got '7 days'"):
        classify_regimes(btc_1h, "1h", RegimeRules(window="7 days"))
    with pytest.raises(ValueError, match=r"regime labels must be one of .*got \['sideways'\]"):
        regime_shares(["bull_trending", "sideways"])
    with pytest.raises(ValueError, match=r"same length; got 2 and 1"):
        regime_periods([0, 1], ["bull_trending"])


# --- shares and periods --------------------------------------------------------------------------


def test_shares_and_periods_by_hand() -> None:
    calm, bull = "calm_ranging", "bull_trending"
    labels = ["", "", calm, calm, bull, calm, calm]
    ts = [h * 3_600_000 for h in range(7)]
    assert regime_shares(labels) == {
        "bull_trending": 0.2,
        "bear_trending": 0.0,
        "volatile_ranging": 0.0,
        "calm_ranging": 0.8,
    }
    assert regime_periods(ts, labels) == [
        RegimePeriod("calm_ranging", 2 * 3_600_000, 3 * 3_600_000, 2),
        RegimePeriod("bull_trending", 4 * 3_600_000, 4 * 3_600_000, 1),
        RegimePeriod("calm_ranging", 5 * 3_600_000, 6 * 3_600_000, 2),
    ]
    assert regime_shares(["", ""]) == dict.fromkeys(REGIMES, 0.0)
    assert regime_periods([], []) == []


def test_periods_of_btc_rebuild_the_labels(btc_1h: pd.DataFrame) -> None:
    labels = classify_regimes(btc_1h, "1h", RegimeRules())
    periods = regime_periods(btc_1h["ts"], labels)
    assert sum(p.bars for p in periods) == len(btc_1h) - WEEK_1H
    assert periods[0].start_ts == btc_1h["ts"].iloc[WEEK_1H]
    assert periods[-1].end_ts == btc_1h["ts"].iloc[-1]
    rebuilt = np.concatenate([np.full(p.bars, p.regime) for p in periods])
    np.testing.assert_array_equal(rebuilt, labels[WEEK_1H:])
    assert all(a.regime != b.regime for a, b in itertools.pairwise(periods))
    assert all(a.end_ts < b.start_ts for a, b in itertools.pairwise(periods))
    longest = max(periods, key=lambda p: p.bars)
    assert longest.regime == "calm_ranging" and longest.bars > 500  # 2023's quiet summer


# --- no look-ahead --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def btc_window(btc_1h: pd.DataFrame) -> pd.DataFrame:
    return btc_1h.iloc[10_000:12_000].reset_index(drop=True)  # 2021: both booms and the crash


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 2000))
def test_regime_has_no_look_ahead(btc_window: pd.DataFrame, k: int) -> None:
    full = regime_frame(btc_window, "1h")
    prefix = regime_frame(btc_window.iloc[:k], "1h")
    np.testing.assert_array_equal(prefix["regime"].to_numpy(), full["regime"].to_numpy()[:k])
    for column in ("trend", "vol", "confidence"):
        np.testing.assert_allclose(
            prefix[column].to_numpy(), full[column].to_numpy()[:k], rtol=1e-12, equal_nan=True
        )


@settings(max_examples=40, deadline=None)
@given(
    closes=st.lists(st.floats(1.0, 1e4), min_size=1, max_size=80),
    data=st.data(),
)
def test_regime_has_no_look_ahead_on_generated_series(
    closes: list[float], data: st.DataObject
) -> None:
    candles = pd.DataFrame({"ts": np.arange(len(closes)) * 86_400_000, "close": closes})
    k = data.draw(st.integers(1, len(closes)))
    full = regime_frame(candles, "1d")
    prefix = regime_frame(candles.iloc[:k], "1d")
    np.testing.assert_array_equal(prefix["regime"].to_numpy(), full["regime"].to_numpy()[:k])
    np.testing.assert_allclose(
        prefix["confidence"].to_numpy(), full["confidence"].to_numpy()[:k], equal_nan=True
    )
    named = full["regime"].to_numpy() != NO_REGIME
    assert named.sum() == max(len(closes) - 7, 0)


def test_rules_round_trip_through_json_and_errors_name_the_key() -> None:
    from market.regimes import RegimeRules

    rules = RegimeRules()
    assert RegimeRules.from_dict(rules.to_dict()) == rules
    assert RegimeRules.from_dict(rules.to_dict()).digest() == rules.digest()
    other = RegimeRules(window="3d", rules=rules.rules)
    assert other.digest() != rules.digest()
    bad_name = {**rules.to_dict(), "rules": [{"name": "sideways"}, *rules.to_dict()["rules"][1:]]}
    with pytest.raises(
        ValueError, match=r"^run r1 settings\.regimes\.rules\.0\.name: must be one of .*'sideways'"
    ):
        RegimeRules.from_dict(bad_name, where="run r1 settings.regimes")
    with pytest.raises(ValueError, match=r"^regimes: unknown key 'windw' \(known: window, rules\)"):
        RegimeRules.from_dict({"windw": "7d"})
    with pytest.raises(
        ValueError, match=r"^regimes\.window: duration must look like .*'fortnight'"
    ):
        RegimeRules.from_dict({**rules.to_dict(), "window": "fortnight"})
    with pytest.raises(ValueError, match=r"^regimes\.rules: must name each of .* exactly once"):
        RegimeRules.from_dict({"window": "7d", "rules": [{"name": "bull_trending"}]})
    with pytest.raises(
        ValueError, match=r"^regimes\.rules\.0: .*unexpected keyword argument 'trend'"
    ):
        RegimeRules.from_dict({"rules": [{"name": "bull_trending", "trend": 0.1}]})
