"""The loopback exchange as of a simulated now: the real ccxt client and store.fetch collect only
closed candles, ``fetch_fear_greed`` reads only published days, and both ride out the exchange's
faults; a bad candle is refused and nothing stored is lost."""

from __future__ import annotations

import gzip
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from live.loopback import FEAR_GREED, FEAR_GREED_FILE, KLINES, Fault, LoopbackExchange
from market.errors import FixConfig, RetryLater
from market.exchange import make_exchange
from market.sentiment import fetch_fear_greed, read_sentiment, write_sentiment
from market.series import SeriesKey
from market.validation import CandleValidationError
from store.db import Store
from store.fetch import FetchSettings, fetch_series

H = 3_600_000
BTC_1H = SeriesKey("binance", "BTC/USDT", "1h")


def utc_ms(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").timestamp() * 1000)


SINCE = utc_ms("2024-01-09 00:00")
T0530 = utc_ms("2024-01-10 05:30")


class Clock:
    """The simulated now, moved by the test."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


class SleepRecorder:
    """Stands in for time.sleep: records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0530)


@pytest.fixture
def server(shared_data: Path, clock: Clock) -> Iterator[LoopbackExchange]:
    with LoopbackExchange(shared_data, now_ms=clock) as loopback:
        yield loopback
        assert loopback.pending_faults(KLINES) == 0, "a test left klines faults unused"
        assert loopback.pending_faults(FEAR_GREED) == 0, "a test left /fng/ faults unused"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'redline.db'}") as opened:
        yield opened


@pytest.fixture(scope="module")
def btc_closes(shared_data: Path) -> dict[int, float]:
    """Open time -> close of the real BTC/USDT 1h file, read straight from its gzip CSV."""
    with gzip.open(shared_data / "binance_BTC-USDT_1h.csv.gz", "rt") as handle:
        header = handle.readline().strip().split(",")
        at = header.index("close")
        return {int(p[0]): float(p[at]) for line in handle if (p := line.strip().split(","))}


def settings(server: LoopbackExchange, timeout_ms: int = 2000) -> FetchSettings:
    return FetchSettings(api_base=server.url, timeout_ms=timeout_ms, enable_rate_limit=False)


def collect(store: Store, server: LoopbackExchange, clock: Clock) -> int:
    """What a collect does: every closed candle since SINCE (until: the newest candle's close)."""
    until = clock.now_ms - clock.now_ms % H
    return fetch_series(store, BTC_1H, SINCE, until, settings(server)).inserted


def stored_ts(store: Store) -> list[int]:
    return store.candles.load_candles(BTC_1H)["ts"].astype(int).tolist()


# --- candles as of the clock --------------------------------------------------------------------


def test_collect_stores_only_closed_candles_and_adds_exactly_the_new_ones(
    server: LoopbackExchange, store: Store, clock: Clock, btc_closes: dict[int, float]
) -> None:
    assert collect(store, server, clock) == 29  # 2024-01-09 00:00 .. 2024-01-10 04:00
    first = stored_ts(store)
    assert first[0] == SINCE and first[-1] == utc_ms("2024-01-10 04:00")

    clock.now_ms = utc_ms("2024-01-10 07:00")
    assert collect(store, server, clock) == 2
    frame = store.candles.load_candles(BTC_1H)
    added = frame[~frame["ts"].isin(first)]
    assert added["ts"].tolist() == [utc_ms("2024-01-10 05:00"), utc_ms("2024-01-10 06:00")]
    assert added["close"].tolist() == [btc_closes[ts] for ts in added["ts"]]
    assert frame["ts"].is_unique and len(frame) == 31
    assert collect(store, server, clock) == 0  # nothing new: nothing asked, nothing written


def test_the_server_answers_as_of_its_clock(server: LoopbackExchange, clock: Clock) -> None:
    exchange = make_exchange("binance", api_base=server.url, enable_rate_limit=False)
    assert exchange.fetch_time() == T0530
    # Asked for far past now, it still ends with the last closed candle (04:00 opens, 05:00 closes).
    rows = exchange.fetch_ohlcv("BTC/USDT", "1h", since=utc_ms("2024-01-10 00:00"), limit=50)
    assert [r[0] for r in rows][-1] == utc_ms("2024-01-10 04:00") and len(rows) == 5
    clock.now_ms = utc_ms("2024-01-10 06:59:59")  # the 06:00 candle is still forming
    latest = exchange.fetch_ohlcv("BTC/USDT", "1h", limit=3)  # no startTime: the latest closed
    assert [r[0] for r in latest] == [utc_ms(f"2024-01-10 0{h}:00") for h in (3, 4, 5)]
    assert exchange.fetch_time() == clock.now_ms


def test_without_a_clock_every_row_of_the_file_is_served(shared_data: Path) -> None:
    with LoopbackExchange(shared_data) as loopback:
        exchange = make_exchange("binance", api_base=loopback.url, enable_rate_limit=False)
        latest = exchange.fetch_ohlcv("BTC/USDT", "1h", limit=1)
    assert latest[0][0] == utc_ms("2024-03-31 23:00")  # the file's last row


# --- collect through exchange faults ------------------------------------------------------------


def test_collect_retries_through_429_503_timeout_and_truncation_and_stores_the_right_rows(
    server: LoopbackExchange, store: Store, clock: Clock, btc_closes: dict[int, float]
) -> None:
    server.inject(
        Fault.rate_limit(retry_after_s=7),
        Fault.http_status(503),
        Fault.delay(2.0),  # past the 500 ms timeout below
        Fault.truncated(),
    )
    sleep = SleepRecorder()
    until = clock.now_ms - clock.now_ms % H
    result = fetch_series(store, BTC_1H, SINCE, until, settings(server, 500), sleep=sleep)
    assert sleep.delays == [7.0, 1.0, 2.0, 4.0]  # Retry-After honoured, then 0.5 s doubled
    assert [r.fault for r in server.requests if r.path == KLINES] == [
        "status",
        "status",
        "delay",
        "truncated",
        None,
    ]
    frame = store.candles.load_candles(BTC_1H)
    assert result.inserted == len(frame) == 29
    assert frame["close"].tolist() == [btc_closes[ts] for ts in frame["ts"]]


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault.corrupt("close", "-5"), r"row 0: close -5\.0 is not positive"),
        # 45890.58: the real low of the first candle asked for, 2024-01-10 05:00
        (Fault.corrupt("high", "1"), r"row 0: high 1\.0 is below low 45890\.58"),
    ],
    ids=["negative-close", "high-below-low"],
)
def test_a_bad_candle_is_refused_with_its_reason_and_nothing_stored_is_lost(
    server: LoopbackExchange, store: Store, clock: Clock, fault: Fault, message: str
) -> None:
    assert collect(store, server, clock) == 29
    before = store.candles.load_candles(BTC_1H)
    clock.now_ms = utc_ms("2024-01-10 07:00")
    server.inject(fault)
    with pytest.raises(CandleValidationError, match=message):
        collect(store, server, clock)
    pd.testing.assert_frame_equal(store.candles.load_candles(BTC_1H), before)
    assert collect(store, server, clock) == 2  # the exchange's next answer is good: collected


def test_a_corrupt_fault_must_name_a_field_of_its_path(server: LoopbackExchange) -> None:
    with pytest.raises(ValueError, match=r"column must be one of close, .*, volume; got 'bogus'"):
        Fault.corrupt("bogus", "1")
    with pytest.raises(ValueError, match=r"column must be one of value, .* on /fng/; got 'close'"):
        server.inject(Fault.corrupt("close", "1"), path=FEAR_GREED)


# --- Fear & Greed ------------------------------------------------------------------------------


def test_fear_greed_serves_the_days_published_by_the_clock(
    server: LoopbackExchange, shared_data: Path, clock: Clock
) -> None:
    frame = fetch_fear_greed(server.url, limit=0)
    shipped = read_sentiment(shared_data / FEAR_GREED_FILE)
    expected = shipped[shipped["ts"] <= utc_ms("2024-01-10")].reset_index(drop=True)
    pd.testing.assert_frame_equal(frame[["ts", "value"]], expected)
    labels = pd.read_csv(shared_data / FEAR_GREED_FILE).set_index("timestamp")["label"]
    assert frame["label"].tolist() == labels.loc[frame["ts"]].tolist()

    clock.now_ms = utc_ms("2024-01-12 00:00")  # the 12th is published at its start
    newest = fetch_fear_greed(server.url, limit=3)
    assert newest["ts"].tolist() == [utc_ms(f"2024-01-{d}") for d in (10, 11, 12)]


def test_fear_greed_answers_in_alternative_me_s_shape(server: LoopbackExchange) -> None:
    with urllib.request.urlopen(f"{server.url}/fng/?limit=2&format=json", timeout=5) as answer:
        payload = json.loads(answer.read())
    assert payload["name"] == "Fear and Greed Index"
    assert payload["metadata"] == {"error": None}
    newest, older = payload["data"]
    assert newest["timestamp"] == str(utc_ms("2024-01-10") // 1000)
    assert newest["time_until_update"] == str((utc_ms("2024-01-11") - T0530) // 1000)
    assert set(older) == {"value", "value_classification", "timestamp"}
    assert int(older["timestamp"]) == int(newest["timestamp"]) - 86_400


def test_fear_greed_retries_429_truncation_and_a_timeout_then_succeeds(
    server: LoopbackExchange,
) -> None:
    expected = fetch_fear_greed(server.url, limit=5)
    server.inject(
        Fault.rate_limit(retry_after_s=3),
        Fault.http_status(503),
        Fault.truncated(),
        Fault.delay(2.0),
        path=FEAR_GREED,
    )
    sleep = SleepRecorder()
    frame = fetch_fear_greed(server.url, limit=5, timeout_s=0.5, sleep=sleep)
    assert sleep.delays == [3.0, 1.0, 2.0, 4.0]
    pd.testing.assert_frame_equal(frame, expected)


def test_fear_greed_gives_up_naming_the_url_and_status(server: LoopbackExchange) -> None:
    server.inject(*[Fault.http_status(500)] * 3, path=FEAR_GREED)
    sleep = SleepRecorder()
    with pytest.raises(
        RetryLater,
        match=r"GET http://127\.0\.0\.1:\d+/fng/\?limit=0&format=json failed 3 times "
        r"\(1 try \+ 2 retries\); last error: .*HTTP 500 Internal Server Error",
    ):
        fetch_fear_greed(server.url, max_retries=2, sleep=sleep)
    assert sleep.delays == [0.5, 1.0]


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (
            Fault.corrupt("value", "140"),
            r"data\[0\]\.value must be a number from 0 to 100; got '140'",
        ),
        (
            Fault.corrupt("value", "n/a", row=1),
            r"data\[1\]\.value must be a number from 0 to 100; got 'n/a'",
        ),
        (Fault.corrupt("timestamp", "1704870000"), r"data\[0\]\.timestamp must be 00:00 UTC"),
    ],
    ids=["above-100", "not-a-number", "off-the-day"],
)
def test_a_malformed_fear_greed_day_is_refused_naming_field_and_value(
    server: LoopbackExchange, fault: Fault, message: str
) -> None:
    server.inject(fault, path=FEAR_GREED)
    with pytest.raises(ValueError, match=message):
        fetch_fear_greed(server.url, limit=3)


def test_fear_greed_without_its_file_is_a_404_naming_the_file(
    shared_data: Path, tmp_path: Path
) -> None:
    (tmp_path / "binance_BTC-USDT_1h.csv.gz").symlink_to(shared_data / "binance_BTC-USDT_1h.csv.gz")
    with (
        LoopbackExchange(tmp_path) as loopback,
        pytest.raises(
            FixConfig,
            match=rf"HTTP 404 Not Found \(loopback exchange has no Fear & Greed file: .*{FEAR_GREED_FILE} is missing\)",
        ),
    ):
        fetch_fear_greed(loopback.url, sleep=SleepRecorder())


def test_fetched_days_written_to_the_live_copy_read_back_as_the_shipped_file(
    server: LoopbackExchange, shared_data: Path, clock: Clock, tmp_path: Path
) -> None:
    copy = tmp_path / FEAR_GREED_FILE
    assert write_sentiment(fetch_fear_greed(server.url, limit=0), copy) > 2000
    clock.now_ms = utc_ms("2024-01-13 12:00")
    assert write_sentiment(fetch_fear_greed(server.url, limit=7), copy) == 3  # the 11th to 13th
    shipped = read_sentiment(shared_data / FEAR_GREED_FILE)
    expected = shipped[shipped["ts"] <= utc_ms("2024-01-13")].reset_index(drop=True)
    pd.testing.assert_frame_equal(read_sentiment(copy), expected)


# --- trades (the whale watcher's) -----------------------------------------------------------------


def test_trades_are_served_as_binance_agg_trades_up_to_the_clock(shared_data: Path) -> None:
    trades = pd.read_csv(shared_data / "binance_XRP-ETH_trades.csv.gz")
    first = int(trades["timestamp"].iloc[0])
    clock = Clock(first + 2 * H)
    with LoopbackExchange(shared_data, now_ms=clock) as loopback:
        exchange = make_exchange("binance", api_base=loopback.url, enable_rate_limit=False)
        assert "XRP/ETH" in loopback.symbols
        hour = exchange.fetch_trades("XRP/ETH", since=first, limit=1000)  # ccxt asks for 1 hour
        latest = exchange.fetch_trades("XRP/ETH", limit=3)
        assert loopback.count("/api/v3/aggTrades") == 2
    expected = trades[trades["timestamp"] <= first + H]
    assert [t["timestamp"] for t in hour] == expected["timestamp"].tolist()
    assert [t["price"] for t in hour] == expected["price"].tolist()
    assert [t["amount"] for t in hour] == expected["amount"].tolist()
    assert [t["side"] for t in hour] == expected["side"].tolist()
    made = trades[trades["timestamp"] <= clock.now_ms]
    assert [t["timestamp"] for t in latest] == made["timestamp"].tail(3).tolist()
    assert [t["id"] for t in latest] == [str(i) for i in made.index[-3:]]
