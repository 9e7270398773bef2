"""The service on a replay clock against the loopback exchange (real ccxt, real SQLite, real
candles): exchange errors are retried and the loop goes on, a series that keeps failing is
backfilled at the next close, a bad candle is refused with its reason and nothing stored is lost,
and jobs run once per slot in their order."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.config import FetchConfig, LiveConfig, load_config
from live.clock import ReplayClock
from live.loopback import Fault, LoopbackExchange
from live.service import LiveService
from market.series import SeriesKey
from market.when import parse_when
from store.db import Store

BTC = SeriesKey("binance", "BTC/USDT", "1h")
ETH = SeriesKey("binance", "ETH/USDT", "1h")
HOUR = 3_600_000
START = parse_when("2024-02-05T00:00", "start")


@pytest.fixture
def server(shared_data: Path) -> LoopbackExchange:
    return LoopbackExchange(shared_data)


def _service(store: Store, home: Path, server: LoopbackExchange, clock: ReplayClock,
             until: int) -> LiveService:  # fmt: skip
    live = LiveConfig(
        watch=("BTC/USDT", "ETH/USDT"), api_base=server.url, fear_greed_url=server.url,
        history_days=2, auto_enable_threshold=1_000_000,  # nothing trains here
        schedules={"evolve": None, "analysis": None},  # type: ignore[arg-type]
    )  # fmt: skip
    fetch = FetchConfig(max_retries=2, backoff_initial_s=0.0, backoff_max_s=0.0, timeout_ms=500)
    config = load_config().model_copy(update={"live": live, "fetch": fetch})
    return LiveService(config, store, home, clock, until_ms=until)


def test_exchange_errors_are_retried_and_a_series_that_keeps_failing_is_backfilled_later(
    tmp_path: Path, shared_data: Path
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'redline.db'}")
    clock = ReplayClock(START)
    with LoopbackExchange(shared_data, now_ms=clock.now_ms) as server:
        service = _service(store, tmp_path, server, clock, START + 3 * HOUR)
        service.start()
        service.run_due(clock.now_ms())  # the backfill: 48 bars each
        assert {k.symbol: store.candles.series_info(k).rows for k in (BTC, ETH)} == {  # type: ignore[union-attr]
            "BTC/USDT": 48, "ETH/USDT": 48}  # fmt: skip
        # 01:00: a 429 and a 503, retried; then ETH's requests time out 3 times (1 + 2 retries).
        server.inject(Fault.rate_limit(0), Fault.http_status(503))
        clock.wait_until(START + HOUR, service.stop)
        service.run_due(clock.now_ms())
        server.inject(Fault.delay(1.0), Fault.delay(1.0), Fault.delay(1.0))
        clock.wait_until(START + 2 * HOUR, service.stop)
        service.run_due(clock.now_ms())
        collect = store.live.job("collect")
        assert collect is not None and collect.outcome == "error"
        assert collect.detail.startswith("CollectError: 1 candles, ")  # ETH's, collected
        assert "failed: BTC/USDT: RetryLater" in collect.detail and "ETH" not in collect.detail
        [error] = store.live.events(kinds=["error"])
        assert error.subject == "collect binance:BTC/USDT:1h"
        for name in ("label", "answer", "monitor"):  # the loop went on
            job = store.live.job(name)
            assert job is not None and job.outcome == "ok" and job.last_slot_ms == START + 2 * HOUR
        clock.wait_until(START + 3 * HOUR, service.stop)
        service.run_due(clock.now_ms())  # BTC backfilled: 00:00, 01:00 and 02:00 added
    assert {k.symbol: store.candles.series_info(k).last_ts for k in (BTC, ETH)} == dict.fromkeys(  # type: ignore[union-attr]
        ("BTC/USDT", "ETH/USDT"), START + 2 * HOUR
    )
    rows = {k.symbol: store.candles.series_info(k).rows for k in (BTC, ETH)}  # type: ignore[union-attr]
    assert rows == {"BTC/USDT": 51, "ETH/USDT": 51}


def test_a_bad_candle_is_refused_with_its_reason_and_nothing_stored_is_lost(
    tmp_path: Path, shared_data: Path
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'redline.db'}")
    clock = ReplayClock(START)
    with LoopbackExchange(shared_data, now_ms=clock.now_ms) as server:
        service = _service(store, tmp_path, server, clock, START + 2 * HOUR)
        service.start()
        service.run_due(clock.now_ms())
        before = store.candles.load_candles(BTC)
        server.inject(Fault.corrupt("close", "-5"))
        clock.wait_until(START + HOUR, service.stop)
        service.run_due(clock.now_ms())
        [error] = store.live.events(kinds=["error"])
        assert error.subject == "collect binance:BTC/USDT:1h"
        assert "close -5.0 is not positive" in error.detail["error"]
        assert store.candles.load_candles(BTC).equals(before)  # nothing lost, nothing added
        clock.wait_until(START + 2 * HOUR, service.stop)
        service.run_due(clock.now_ms())  # the exchange is right again: the hour comes in
    info = store.candles.series_info(BTC)
    assert info is not None and (info.rows, info.last_ts) == (50, START + HOUR)
