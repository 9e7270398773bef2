"""The ccxt adapter against the real ccxt binance client talking to FakeBinance on loopback."""

from __future__ import annotations

import ipaddress
import itertools
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ccxt
import pandas as pd
import pytest

from market.errors import ExchangeError, FixConfig, RetryLater, translate
from market.exchange import fetch_candles, make_exchange, point_at
from market.series import CANDLE_COLUMNS, SeriesKey
from tests.support.fake_binance import EXCHANGE_INFO, KLINES, FakeBinance, Fault

H = 3_600_000
JAN_2024 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
BTC_1H = SeriesKey("binance", "BTC/USDT", "1h")


def utc_ms(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").timestamp() * 1000)


class SleepRecorder:
    """Stands in for time.sleep: records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Fail loudly if anything in these tests opens a connection to a non-loopback address."""
    seen: list[Any] = []
    real_connect = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> None:
        seen.append(address)
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"test tried to reach {address}: only loopback is allowed")
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield seen


@pytest.fixture(scope="module")
def server(shared_data: Path) -> Iterator[FakeBinance]:
    with FakeBinance(shared_data) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeBinance) -> Iterator[FakeBinance]:
    server.reset()
    yield server
    assert server.pending_faults() == 0, "a test left injected faults unused"
    server.reset()


@pytest.fixture
def exchange(fake: FakeBinance) -> ccxt.Exchange:
    return make_exchange("binance", api_base=fake.url, timeout_ms=2000, enable_rate_limit=False)


@pytest.fixture(scope="module")
def btc_csv(shared_data: Path) -> pd.DataFrame:
    frame = pd.read_csv(shared_data / "binance_BTC-USDT_1h.csv.gz")
    return frame.rename(columns={"timestamp": "ts"})


def csv_slice(csv: pd.DataFrame, since_ms: int, until_ms: int) -> pd.DataFrame:
    rows = csv[(csv["ts"] >= since_ms) & (csv["ts"] < until_ms)]
    return rows.reset_index(drop=True)


def fetch_all(exchange: ccxt.Exchange, key: SeriesKey, since: int, until: int, **kw: Any) -> Any:
    pages = list(fetch_candles(exchange, key, since, until, **kw))
    frame = pd.concat(pages, ignore_index=True) if pages else None
    return pages, frame


def hosts_of(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(hosts_of(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(hosts_of(v) for v in value)) if value else set()
    return {urlsplit(value).hostname or ""} if isinstance(value, str) else set()


# --- the client and its URLs -----------------------------------------------------------------


def test_every_rest_url_points_at_the_loopback_server(exchange: ccxt.Exchange) -> None:
    for table in ("api", "test", "demo"):
        assert hosts_of(exchange.urls[table]) == {"127.0.0.1"}, table
    assert exchange.urls["api"]["public"].endswith("/api/v3")
    assert exchange.urls["api"]["fapiPublic"].endswith("/fapi/v1")
    assert exchange.options["fetchMarkets"]["types"] == ["spot"]


def test_point_at_keeps_paths_and_a_prefix() -> None:
    exchange = make_exchange("binance")
    assert exchange.urls["api"]["public"] == "https://api.binance.com/api/v3"
    point_at(exchange, "https://proxy.internal:8443/binance/")
    assert exchange.urls["api"]["public"] == "https://proxy.internal:8443/binance/api/v3"
    with pytest.raises(
        ValueError, match=r"api_base must look like 'http://127\.0\.0\.1:8123'; got 'x'"
    ):
        point_at(exchange, "x")


def test_unknown_exchange_id_is_a_config_error() -> None:
    with pytest.raises(FixConfig, match="ccxt has no exchange 'binanse'; check --exchange"):
        make_exchange("binanse")


# --- full ranges, pagination, gaps ---------------------------------------------------------


def test_full_history_equals_the_csv_exactly(
    exchange: ccxt.Exchange, fake: FakeBinance, btc_csv: pd.DataFrame
) -> None:
    since, until = int(btc_csv["ts"].iloc[0]), int(btc_csv["ts"].iloc[-1]) + H
    pages, frame = fetch_all(exchange, BTC_1H, since, until)

    assert len(frame) == len(btc_csv) == 37216
    assert list(frame.columns) == list(CANDLE_COLUMNS)
    assert frame["ts"].dtype == "int64"
    assert all(frame[c].dtype == "float64" for c in CANDLE_COLUMNS[1:])
    pd.testing.assert_frame_equal(frame, btc_csv, check_exact=True)
    new_year = frame[frame["ts"] == JAN_2024].iloc[0]
    assert new_year[["open", "high", "low", "close", "volume"]].tolist() == [
        42283.58,
        42554.57,
        42261.02,
        42475.23,
        1271.68108,
    ]
    # 37216 rows at 1000 a page, plus the one exchangeInfo call
    assert len(pages) == fake.count(KLINES) == 38
    assert fake.count(EXCHANGE_INFO) == 1
    assert {r.path for r in fake.requests} == {KLINES, EXCHANGE_INFO}


def test_pages_of_500_over_3000_bars(
    exchange: ccxt.Exchange, fake: FakeBinance, btc_csv: pd.DataFrame
) -> None:
    since = utc_ms("2022-01-01")  # no maintenance gap in the next 3000 hours
    until = since + 3000 * H
    pages, frame = fetch_all(exchange, BTC_1H, since, until, page_limit=500)

    assert [len(p) for p in pages] == [500] * 6
    pd.testing.assert_frame_equal(frame, csv_slice(btc_csv, since, until))
    for before, after in itertools.pairwise(pages):
        assert int(after["ts"].iloc[0]) == int(before["ts"].iloc[-1]) + H
    klines = [r for r in fake.requests if r.path == KLINES]
    asked = [(int(r.params["startTime"]), int(r.params["limit"])) for r in klines]
    assert asked == [(since, 500)] + [(since + n * 500 * H - H + 1, 500) for n in range(1, 6)]
    assert all(int(r.params["endTime"]) == until - 1 for r in klines)


def test_range_is_half_open_and_unaligned_bounds_are_respected(
    exchange: ccxt.Exchange, btc_csv: pd.DataFrame
) -> None:
    since, until = JAN_2024 + 1, JAN_2024 + 5 * H  # 01:00 .. 04:00 inclusive
    _, frame = fetch_all(exchange, BTC_1H, since, until, page_limit=2)
    assert frame["ts"].tolist() == [JAN_2024 + n * H for n in range(1, 5)]
    pd.testing.assert_frame_equal(frame, csv_slice(btc_csv, since, until))


def test_other_timeframes_and_symbols(exchange: ccxt.Exchange, shared_data: Path) -> None:
    key = SeriesKey("binance", "ETH/USDT", "5m")
    csv = pd.read_csv(shared_data / "binance_ETH-USDT_5m.csv.gz").rename(
        columns={"timestamp": "ts"}
    )
    _, frame = fetch_all(exchange, key, JAN_2024, JAN_2024 + 24 * H)
    assert len(frame) == 288
    pd.testing.assert_frame_equal(frame, csv_slice(csv, JAN_2024, JAN_2024 + 24 * H))


def test_real_maintenance_gaps_are_passed_over_without_inventing_candles(
    exchange: ccxt.Exchange, btc_csv: pd.DataFrame
) -> None:
    # February to mid-March 2020 holds three real gaps: 1, 5 and 1 missing hours.
    since, until = utc_ms("2020-02-01"), utc_ms("2020-03-15")
    _, frame = fetch_all(exchange, BTC_1H, since, until, page_limit=100)
    expected = csv_slice(btc_csv, since, until)
    assert len(frame) == len(expected) == (until - since) // H - 7
    pd.testing.assert_frame_equal(frame, expected)
    assert utc_ms("2020-02-19 12:00") not in set(frame["ts"])


def test_a_range_ending_inside_a_gap_stops_cleanly(
    exchange: ccxt.Exchange, fake: FakeBinance, btc_csv: pd.DataFrame
) -> None:
    since, until = utc_ms("2020-02-19 00:00"), utc_ms("2020-02-19 15:00")  # gap: 12:00..16:00
    _, frame = fetch_all(exchange, BTC_1H, since, until)
    assert frame["ts"].iloc[-1] == utc_ms("2020-02-19 11:00")
    pd.testing.assert_frame_equal(frame, csv_slice(btc_csv, since, until))
    # the page was short, so one more request confirmed nothing is left before `until`
    assert fake.count(KLINES) == 2


def test_a_range_inside_a_gap_yields_nothing(exchange: ccxt.Exchange) -> None:
    pages, _ = fetch_all(exchange, BTC_1H, utc_ms("2020-02-19 12:00"), utc_ms("2020-02-19 17:00"))
    assert pages == []


def test_before_listing_and_empty_ranges_yield_nothing(exchange: ccxt.Exchange) -> None:
    sol = SeriesKey("binance", "SOL/USDT", "1h")  # listed 2020-08-11 06:00
    _, frame = fetch_all(exchange, sol, utc_ms("2020-08-01"), utc_ms("2020-08-11 08:00"))
    assert frame["ts"].tolist() == [utc_ms("2020-08-11 06:00"), utc_ms("2020-08-11 07:00")]
    assert list(fetch_candles(exchange, BTC_1H, JAN_2024, JAN_2024)) == []
    with pytest.raises(ValueError, match="since_ms must not be after until_ms"):
        list(fetch_candles(exchange, BTC_1H, JAN_2024 + H, JAN_2024))


def test_pages_are_fetched_only_as_the_consumer_asks(
    exchange: ccxt.Exchange, fake: FakeBinance, btc_csv: pd.DataFrame
) -> None:
    until = JAN_2024 + 10 * H
    written: list[pd.DataFrame] = []
    pages = fetch_candles(exchange, BTC_1H, JAN_2024, until, page_limit=4, on_page=written.append)
    first = next(pages)
    assert fake.count(KLINES) == 1 and len(written) == 1
    cursor = int(first["ts"].iloc[-1])  # what the orchestration stores before the next page
    pages.close()  # a run killed here...
    # ...resumes from the cursor and gets exactly the rest
    _, rest = fetch_all(exchange, BTC_1H, cursor + H, until, page_limit=4)
    resumed = pd.concat([first, rest], ignore_index=True)
    pd.testing.assert_frame_equal(resumed, csv_slice(btc_csv, JAN_2024, until))


# --- faults: retried with growing backoff --------------------------------------------------

FAULTS = {
    "429": Fault.rate_limit(retry_after_s=1),
    "500": Fault.http_status(500),
    "502": Fault.http_status(502),
    "503": Fault.http_status(503),
    "timeout": Fault.delay(1.0),
    "truncated": Fault.truncated(),
    "disconnect": Fault.disconnect(),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_each_fault_is_retried_and_recovered(
    name: str, fake: FakeBinance, btc_csv: pd.DataFrame
) -> None:
    exchange = make_exchange("binance", api_base=fake.url, timeout_ms=500, enable_rate_limit=False)
    exchange.load_markets()
    fake.inject(FAULTS[name], FAULTS[name])
    sleep = SleepRecorder()
    until = JAN_2024 + 48 * H
    _, frame = fetch_all(exchange, BTC_1H, JAN_2024, until, page_limit=24, sleep=sleep)

    pd.testing.assert_frame_equal(frame, csv_slice(btc_csv, JAN_2024, until))
    klines = [r for r in fake.requests if r.path == KLINES]
    assert [r.fault for r in klines] == [FAULTS[name].kind] * 2 + [None, None]
    expected = [1.0, 1.0] if name == "429" else [0.5, 1.0]  # Retry-After: 1 wins over 0.5
    assert sleep.delays == expected


def test_backoff_doubles_up_to_its_ceiling_across_mixed_faults(
    fake: FakeBinance, btc_csv: pd.DataFrame
) -> None:
    exchange = make_exchange("binance", api_base=fake.url, timeout_ms=500, enable_rate_limit=False)
    fake.inject(
        Fault.http_status(500),
        Fault.http_status(502),
        Fault.truncated(),
        Fault.http_status(503),
        Fault.delay(1.0),
        Fault.disconnect(),
    )
    sleep = SleepRecorder()
    until = JAN_2024 + 24 * H
    _, frame = fetch_all(
        exchange, BTC_1H, JAN_2024, until, sleep=sleep, backoff_initial_s=0.5, backoff_max_s=5.0
    )
    pd.testing.assert_frame_equal(frame, csv_slice(btc_csv, JAN_2024, until))
    assert sleep.delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_retry_after_longer_than_our_backoff_is_obeyed(
    exchange: ccxt.Exchange, fake: FakeBinance
) -> None:
    fake.inject(Fault.rate_limit(retry_after_s=7))
    sleep = SleepRecorder()
    fetch_all(exchange, BTC_1H, JAN_2024, JAN_2024 + 3 * H, sleep=sleep)
    assert sleep.delays == [7.0]


def test_a_truncated_market_listing_is_retried(
    exchange: ccxt.Exchange, fake: FakeBinance, btc_csv: pd.DataFrame
) -> None:
    fake.inject(Fault.truncated(), path=EXCHANGE_INFO)
    sleep = SleepRecorder()
    _, frame = fetch_all(exchange, BTC_1H, JAN_2024, JAN_2024 + 5 * H, sleep=sleep)
    assert len(frame) == 5
    assert fake.count(EXCHANGE_INFO) == 2
    assert sleep.delays == [0.5]


def test_a_short_page_is_noticed_and_the_rest_fetched(
    exchange: ccxt.Exchange,
    fake: FakeBinance,
    btc_csv: pd.DataFrame,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.inject(Fault.short_page(rows=3))
    until = JAN_2024 + 20 * H
    with caplog.at_level(logging.WARNING, logger="market.exchange"):
        pages, frame = fetch_all(exchange, BTC_1H, JAN_2024, until, page_limit=10)
    pd.testing.assert_frame_equal(frame, csv_slice(btc_csv, JAN_2024, until))
    assert [len(p) for p in pages] == [3, 10, 7]
    assert "was short although candles continue" in caplog.text


def test_max_retries_exhausted_raises_retry_later_naming_the_attempts(
    exchange: ccxt.Exchange, fake: FakeBinance
) -> None:
    fake.inject(*[Fault.http_status(503)] * 3)
    sleep = SleepRecorder()
    with pytest.raises(RetryLater, match=r"failed 3 times \(1 try \+ 2 retries\).*503") as info:
        fetch_all(exchange, BTC_1H, JAN_2024, JAN_2024 + 5 * H, max_retries=2, sleep=sleep)
    assert "binance:BTC/USDT:1h fetch_ohlcv from 2024-01-01T00:00Z" in str(info.value)
    assert isinstance(info.value.__cause__, ccxt.ExchangeNotAvailable)
    assert sleep.delays == [0.5, 1.0]
    assert fake.count(KLINES) == 3


def test_the_same_client_works_again_after_retries_ran_out(
    exchange: ccxt.Exchange, fake: FakeBinance, btc_csv: pd.DataFrame
) -> None:
    fake.inject(Fault.truncated(), Fault.truncated())
    sleep = SleepRecorder()
    with pytest.raises(RetryLater, match=r"failed 2 times.*truncated or garbled page"):
        fetch_all(exchange, BTC_1H, JAN_2024, JAN_2024 + 5 * H, max_retries=1, sleep=sleep)
    # the orchestration retries the run later with the same client: the stale garbled body of
    # the last failure must not be mistaken for a new one
    _, frame = fetch_all(exchange, BTC_1H, JAN_2024, JAN_2024 + 5 * H, sleep=sleep)
    pd.testing.assert_frame_equal(frame, csv_slice(btc_csv, JAN_2024, JAN_2024 + 5 * H))
    assert sleep.delays == [0.5]


# --- configuration errors: raised at once, never retried ----------------------------------


def test_unknown_symbol_is_a_config_error_before_any_candle_request(
    exchange: ccxt.Exchange, fake: FakeBinance
) -> None:
    key = SeriesKey("binance", "FOO/USDT", "1h")
    with pytest.raises(
        FixConfig, match=r"binance has no symbol 'FOO/USDT'; check --symbol \(similar: ADA/USDT"
    ):
        list(fetch_candles(exchange, key, JAN_2024, JAN_2024 + H))
    assert fake.count(KLINES) == 0


def test_exchange_rejecting_the_symbol_is_a_config_error_not_retried(
    exchange: ccxt.Exchange, fake: FakeBinance
) -> None:
    fake.inject(Fault.binance_error(-1121, "Invalid symbol."))
    sleep = SleepRecorder()
    with pytest.raises(FixConfig, match="binance has no symbol 'BTC/USDT'; check --symbol"):
        list(fetch_candles(exchange, BTC_1H, JAN_2024, JAN_2024 + H, sleep=sleep))
    assert sleep.delays == []
    assert fake.count(KLINES) == 1


def test_timeframe_the_exchange_lacks_is_a_config_error(fake: FakeBinance) -> None:
    kraken = make_exchange("kraken", api_base=fake.url, enable_rate_limit=False)
    assert hosts_of(kraken.urls["api"]) == {"127.0.0.1"}
    key = SeriesKey("kraken", "BTC/USDT", "3m")
    with pytest.raises(
        FixConfig, match="kraken does not support timeframe '3m'; check --timeframe"
    ):
        list(fetch_candles(kraken, key, JAN_2024, JAN_2024 + H))
    assert fake.requests == []


def test_timeframe_the_server_has_no_data_for_is_a_config_error(exchange: ccxt.Exchange) -> None:
    key = SeriesKey("binance", "BTC/USDT", "4h")  # binance has 4h; FakeBinance has no such file
    with pytest.raises(FixConfig, match="FakeBinance has no 4h candles for BTCUSDT"):
        list(fetch_candles(exchange, key, JAN_2024, JAN_2024 + 8 * H))


def test_series_of_another_exchange_is_refused(exchange: ccxt.Exchange) -> None:
    key = SeriesKey("kraken", "BTC/USDT", "1h")
    with pytest.raises(FixConfig, match="is for exchange 'kraken' but the client is 'binance'"):
        list(fetch_candles(exchange, key, JAN_2024, JAN_2024 + H))


@pytest.mark.parametrize(
    ("error", "group", "message"),
    [
        (ccxt.AuthenticationError("binance bad key"), FixConfig, "check the API key"),
        (ccxt.PermissionDenied("binance nope"), FixConfig, "lacks the permission"),
        (ccxt.BadSymbol("binance x"), FixConfig, "binance has no symbol 'BTC/USDT'"),
        (ccxt.RateLimitExceeded("binance 429"), RetryLater, "rate limited"),
        (ccxt.DDoSProtection("binance 418"), RetryLater, "rate limited"),
        (ccxt.RequestTimeout("binance GET"), RetryLater, "did not answer in time"),
        (ccxt.ExchangeNotAvailable("binance 503"), RetryLater, "unavailable"),
        (ccxt.NetworkError("binance reset"), RetryLater, "network error"),
        (ccxt.BadResponse("binance junk"), RetryLater, "garbled"),
        (ccxt.ExchangeError("binance odd"), ExchangeError, "unexpected exchange error"),
    ],
)
def test_translate_groups_ccxt_errors_by_what_to_do(
    error: Exception, group: type[ExchangeError], message: str
) -> None:
    translated = translate(error, exchange_id="binance", symbol="BTC/USDT", timeframe="1h")
    assert type(translated) is group
    assert message in str(translated)


def test_rate_limiter_on_still_fetches_and_only_loopback_is_reached(
    fake: FakeBinance, btc_csv: pd.DataFrame, loopback_only: list[Any]
) -> None:
    exchange = make_exchange("binance", api_base=fake.url)  # defaults: rate limiting on
    _, frame = fetch_all(exchange, BTC_1H, JAN_2024, JAN_2024 + 6 * H, page_limit=3)
    pd.testing.assert_frame_equal(frame, csv_slice(btc_csv, JAN_2024, JAN_2024 + 6 * H))
    assert urlsplit(exchange.last_request_url).hostname == "127.0.0.1"
    port = int(urlsplit(fake.url).port or 0)
    assert loopback_only and all(address == ("127.0.0.1", port) for address in loopback_only)
