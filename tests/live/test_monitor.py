"""Label and monitor on real candles: served votes are labelled with the realized forward return
once their horizon has passed; a voting champion whose live hit rate falls below 0.5 over at
least ``monitor.min_votes`` labelled votes goes to DECAY with its numbers; one not re-validated
for ``expiration_hours`` stops voting too."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cluster.config import LiveConfig, MonitorConfig, load_config
from live.jobs import LiveContext, label, monitor
from market.series import SeriesKey
from market.when import parse_when
from store.db import Store
from store.records.champions import PromotionDecision, PromotionRecord, RegimeBestRecord, Stage
from store.records.population import RunRecord

BTC = SeriesKey("binance", "BTC/USDT", "1h")
HOUR = 3_600_000
START = parse_when("2024-01-08", "start")
VOTES = 60


@pytest.fixture
def store(tmp_path: Path, btc_1h: pd.DataFrame) -> Store:
    opened = Store.open(f"sqlite:///{tmp_path / 'redline.db'}")
    week = btc_1h[(btc_1h["ts"] >= START - 7 * 24 * HOUR) & (btc_1h["ts"] < START + 80 * HOUR)]
    opened.candles.write_candles(BTC, week)
    opened.runs.create_run(RunRecord(run_id="r1", config={"seed": 1}, config_hash="c" * 64,
                                     root_seed=1, generations_planned=1))  # fmt: skip
    champions = (("r1.ta-wrong", "technical_analyst", "calm_ranging"),
                 ("r1.vh-right", "volume_hunter", "bull_trending"))  # fmt: skip
    for agent, specialty, regime in champions:
        row = RegimeBestRecord("r1", specialty, regime, agent, sharpe=1.0)
        opened.champions.promote(row, PromotionRecord(
            row.specialty, regime, PromotionDecision.PROMOTED, f"r1/{agent}", None, "test",
            {}, {"sharpe": 1.0}, None, 1, 0.25,
        ))  # fmt: skip
    return opened


def _serve_votes(store: Store, closes: pd.Series) -> None:
    """Predictions at each of ``VOTES`` closes: the technical analyst votes against the next
    bar's move, the volume hunter with it (what a bot would have been answered)."""
    for i in range(VOTES):
        ts = START + i * HOUR
        move = 1 if closes[ts + HOUR] > closes[ts] else -1
        members = [
            {"run_id": "r1", "agent_id": "r1.ta-wrong", "specialty": "technical_analyst",
             "regime": "calm_ranging", "generation": 0, "vote": -move, "weight": 0.5},
            {"run_id": "r1", "agent_id": "r1.vh-right", "specialty": "volume_hunter",
             "regime": "bull_trending", "generation": 0, "vote": move, "weight": 0.5},
        ]  # fmt: skip
        store.trades.record_predictions([(f"p-{i}", "v1", members, "calm_ranging", "binance",
                                          "BTC/USDT", "1h", ts)])  # fmt: skip


def _context(store: Store, home: Path, **live: object) -> LiveContext:
    config = LiveConfig(watch=("BTC/USDT",), fear_greed=False, **live)  # type: ignore[arg-type]
    return LiveContext(load_config().model_copy(update={"live": config}), config, store, home,
                       lambda: 0)  # fmt: skip


def test_votes_are_labelled_once_their_horizon_has_passed(
    store: Store, tmp_path: Path, btc_1h: pd.DataFrame
) -> None:
    closes = btc_1h.set_index("ts")["close"]
    _serve_votes(store, closes)
    ctx = _context(store, tmp_path)
    now = START + 80 * HOUR
    assert label(ctx, now) == f"{2 * VOTES} votes labelled"
    assert label(ctx, now) == "0 votes labelled"  # labelled once
    labels = store.live.labels("r1", "r1.ta-wrong")
    assert len(labels) == VOTES and not any(x.hit for x in labels)
    first = labels[0]
    assert first.forward_return == pytest.approx(closes[START + HOUR] / closes[START] - 1)
    assert all(x.hit for x in store.live.labels("r1", "r1.vh-right"))


def test_a_champion_below_half_right_over_min_votes_stops_voting(
    store: Store, tmp_path: Path, btc_1h: pd.DataFrame
) -> None:
    _serve_votes(store, btc_1h.set_index("ts")["close"])
    ctx = _context(store, tmp_path, monitor=MonitorConfig(min_votes=VOTES, min_hit_rate=0.5))
    now = START + 80 * HOUR
    label(ctx, now)
    assert monitor(ctx, now) == "1 voting; stopped technical_analyst/calm_ranging r1.ta-wrong"
    stages = {row.agent_id: row.stage for row in store.champions.champions()}
    assert stages == {"r1.ta-wrong": Stage.DECAY, "r1.vh-right": Stage.PAPER}
    [decay] = store.live.events(kinds=["decay"])
    assert decay.detail["votes"] == VOTES and decay.detail["hit_rate"] == 0.0
    assert decay.detail["reason"] == f"live hit rate 0.000 below 0.5 over {VOTES} labelled votes"


def test_fewer_votes_than_the_minimum_decide_nothing(
    store: Store, tmp_path: Path, btc_1h: pd.DataFrame
) -> None:
    _serve_votes(store, btc_1h.set_index("ts")["close"])
    ctx = _context(store, tmp_path, monitor=MonitorConfig(min_votes=VOTES + 1))
    now = START + 80 * HOUR
    label(ctx, now)
    assert monitor(ctx, now) == "2 voting"


def test_a_champion_not_revalidated_for_expiration_hours_stops_voting(
    store: Store, tmp_path: Path
) -> None:
    ctx = _context(store, tmp_path, expiration_hours=48)
    assert monitor(ctx, START) == "2 voting"  # first sight: adopted as validated now
    assert monitor(ctx, START + 48 * HOUR) == "2 voting"
    outcome = monitor(ctx, START + 49 * HOUR)
    assert outcome.startswith("0 voting; stopped")
    [first, _] = store.live.events(kinds=["expire"])
    assert first.detail["reason"] == "expired: not re-validated for 49 h (expiration_hours 48)"
