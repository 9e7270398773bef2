"""Retention on real candles: candles and answers older than ``retention_days`` go, newer ones and
everything of other series stay, and model files are pruned by ``redline models prune``'s rules."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cluster.config import LiveConfig, RetentionConfig, load_config
from live.jobs import LiveContext, retention
from market.series import SeriesKey
from market.when import parse_when
from store.db import Store
from store.records.live import LiveAnswerRecord

BTC = SeriesKey("binance", "BTC/USDT", "1h")
ETH = SeriesKey("binance", "ETH/USDT", "1h")
DAY = 86_400_000


def test_retention_drops_only_what_is_older_than_retention_days(
    tmp_path: Path, btc_1h: pd.DataFrame, shared_data: Path
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'redline.db'}")
    start, now = parse_when("2024-01-01", "s"), parse_when("2024-01-11", "n")
    store.candles.write_candles(BTC, btc_1h[(btc_1h["ts"] >= start) & (btc_1h["ts"] < now)])
    eth = pd.read_csv(shared_data / "binance_ETH-USDT_1h.csv.gz").rename(
        columns={"timestamp": "ts"}
    )
    store.candles.write_candles(ETH, eth[(eth["ts"] >= start) & (eth["ts"] < now)])
    store.live.record_answers([
        LiveAnswerRecord(BTC, ts, 1, 1.0, 0.5, "calm_ranging", "v1")
        for ts in (start, now - DAY)
    ])  # fmt: skip
    live = LiveConfig(watch=("BTC/USDT",), fear_greed=False,
                      retention=RetentionConfig(retention_days=3))  # fmt: skip
    ctx = LiveContext(load_config().model_copy(update={"live": live}), live, store, tmp_path,
                      lambda: now)  # fmt: skip
    outcome = retention(ctx, now)
    assert outcome.startswith("dropped 168 candles, 1 answers before the cutoff; kept 0 models")
    btc = store.candles.series_info(BTC)
    assert btc is not None and (btc.rows, btc.first_ts) == (72, now - 3 * DAY)
    eth_info = store.candles.series_info(ETH)  # not watched: not the loop's to drop
    assert eth_info is not None and eth_info.rows == 240
    assert store.live.answers(BTC)["ts"].tolist() == [now - DAY]
    [event] = store.live.events(kinds=["retention"])
    assert (event.detail["candles"], event.detail["answers"]) == (168, 1)
