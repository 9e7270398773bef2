"""The ccxt adapter: make a client, and page through an exchange's candles with retries.

``fetch_candles`` is a generator of pages so that a consumer can write each page to the store and
advance its cursor before the next request is made: a run killed between pages resumes from the
cursor without re-fetching or losing anything.

Failures are translated by ``market.errors``: ``RetryLater`` failures are retried here with
exponential backoff (the ``sleep`` parameter makes time a dependency), ``FixConfig`` failures are
raised at once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Generator
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ccxt
import pandas as pd

from market.errors import (
    FixConfig,
    RetryLater,
    translate,
    unknown_exchange,
    unknown_symbol,
    unsupported_timeframe,
)
from market.retry import check_backoff, with_retries
from market.series import CANDLE_COLUMNS, SeriesKey

__all__ = ["fetch_candles", "make_exchange", "point_at"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# URL tables that hold REST endpoints. "test" and "demo" are what ccxt swaps in for sandbox or demo
# mode; rewriting them too keeps such a switch on our host instead of silently going online.
_URL_TABLES = ("api", "test", "demo")


def make_exchange(
    exchange_id: str,
    *,
    api_base: str | None = None,
    timeout_ms: int = 10000,
    enable_rate_limit: bool = True,
) -> ccxt.Exchange:
    """A real synchronous ccxt client for ``exchange_id``, set up for public spot candles.

    ``api_base`` (e.g. ``"http://127.0.0.1:8123"``) sends every REST call to that host instead of
    the exchange's own: tests use a loopback server, operators a caching proxy. Market loading is
    restricted to spot where the exchange lets a user choose (binance would otherwise also load
    its futures listings from two more hosts).
    """
    if exchange_id not in ccxt.exchanges:
        raise unknown_exchange(exchange_id)
    if timeout_ms <= 0:
        raise ValueError(f"timeout_ms must be positive; got {timeout_ms}")
    exchange: ccxt.Exchange = getattr(ccxt, exchange_id)(
        {"timeout": timeout_ms, "enableRateLimit": enable_rate_limit}
    )
    # fetch_candles reads the raw body to tell a garbled page from an empty one.
    exchange.enableLastHttpResponse = True
    exchange.enableLastResponseHeaders = True
    _spot_only(exchange)
    if api_base is not None:
        point_at(exchange, api_base)
    return exchange


def point_at(exchange: ccxt.Exchange, api_base: str) -> None:
    """Rewrite the client's REST URLs so that their scheme and host are ``api_base``'s.

    Every URL in ``exchange.urls['api']`` (and the sandbox/demo tables) keeps its path:
    ``https://api.binance.com/api/v3`` becomes ``http://127.0.0.1:8123/api/v3``. A path in
    ``api_base`` is kept as a prefix (``http://proxy/binance`` + ``/api/v3``).
    """
    parts = urlsplit(api_base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"api_base must look like 'http://127.0.0.1:8123'; got {api_base!r}")
    base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    for table in _URL_TABLES:
        if table in exchange.urls:
            exchange.urls[table] = _rewrite(exchange.urls[table], base)


def _rewrite(value: Any, base: str) -> Any:
    if isinstance(value, dict):
        return {name: _rewrite(item, base) for name, item in value.items()}
    if isinstance(value, list):
        return [_rewrite(item, base) for item in value]
    if isinstance(value, str) and "://" in value:
        url = urlsplit(value)
        return base + url.path + (f"?{url.query}" if url.query else "")
    return value


def _spot_only(exchange: ccxt.Exchange) -> None:
    # ccxt spells this option two ways: {"types": [...]} (binance, bybit, okx) or a bare list.
    option = exchange.options.get("fetchMarkets")
    if isinstance(option, dict) and "spot" in option.get("types", ()):
        exchange.options["fetchMarkets"] = {**option, "types": ["spot"]}
    elif isinstance(option, list) and "spot" in option:
        exchange.options["fetchMarkets"] = ["spot"]
    if "defaultType" in exchange.options:
        exchange.options["defaultType"] = "spot"


def fetch_candles(
    exchange: ccxt.Exchange,
    key: SeriesKey,
    since_ms: int,
    until_ms: int,
    *,
    page_limit: int = 1000,
    max_retries: int = 6,
    backoff_initial_s: float = 0.5,
    backoff_max_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    on_page: Callable[[pd.DataFrame], None] | None = None,
) -> Generator[pd.DataFrame, None, None]:
    """Candles of ``key`` with open time in ``[since_ms, until_ms)``, one candle frame per page.

    Each page is a candle frame (``CANDLE_COLUMNS``, ts int64 ascending and unique, prices
    float64) holding only rows inside the range; pages follow each other in time. Times the
    exchange has no candle for (maintenance windows) are simply absent: nothing is invented.

    Failures marked ``RetryLater`` are retried up to ``max_retries`` times per request, waiting
    ``backoff_initial_s`` doubled per try up to ``backoff_max_s`` (or longer if the exchange asks
    for it with ``Retry-After``), through ``sleep``. ``FixConfig`` failures are raised at once.
    ``on_page`` is called with each page before it is yielded.

    Nothing is checked or requested until the first page is asked for; each next page is only
    requested when the consumer asks for it, after it has stored the previous one.
    """
    if since_ms > until_ms:
        raise ValueError(f"since_ms must not be after until_ms ({until_ms}); got {since_ms}")
    if page_limit < 1:
        raise ValueError(f"page_limit must be at least 1; got {page_limit}")
    check_backoff(max_retries, backoff_initial_s, backoff_max_s)
    if key.exchange != exchange.id:
        raise FixConfig(
            f"series {key} is for exchange {key.exchange!r} but the client is {exchange.id!r}; "
            "check --exchange"
        )
    supported = list(exchange.timeframes or {})
    if key.timeframe not in supported:
        raise unsupported_timeframe(exchange.id, key.timeframe, supported)

    def retrying(what: str, call: Callable[[], T]) -> T:
        return _with_retries(
            call,
            exchange=exchange,
            key=key,
            what=what,
            max_retries=max_retries,
            backoff=(backoff_initial_s, backoff_max_s),
            sleep=sleep,
        )

    retrying("load_markets", lambda: _load_markets(exchange))
    if key.symbol not in exchange.markets:
        raise unknown_symbol(exchange.id, key.symbol, _similar(exchange, key.symbol))

    step = key.timeframe_ms
    cursor = since_ms
    short_after: int | None = None  # last ts of a page that ended early, before until_ms
    while cursor < until_ms:
        slots = _slots(cursor, until_ms, step)
        if slots == 0:
            return
        limit = min(page_limit, slots)
        start = cursor
        rows = retrying(
            f"fetch_ohlcv from {_iso(start)}",
            partial(_fetch_page, exchange, key, start, until_ms, limit),
        )
        page = _to_frame(rows, start, until_ms)
        if page.empty:
            logger.debug("%s: no candles from %s to %s; done", key, _iso(start), _iso(until_ms))
            return
        first, last = int(page["ts"].iloc[0]), int(page["ts"].iloc[-1])
        if short_after is not None:
            if first == short_after + step:
                logger.warning(
                    "%s: the page ending %s was short although candles continue; "
                    "fetched the rest from there",
                    key,
                    _iso(short_after),
                )
            else:
                logger.info(
                    "%s: exchange has no candles from %s to %s",
                    key,
                    _iso(short_after + step),
                    _iso(first - step),
                )
        short_after = last if len(rows) < limit and last + step < until_ms else None
        cursor = last + 1  # Binance semantics: next page starts at open time >= cursor
        if on_page is not None:
            on_page(page)
        yield page


def _load_markets(exchange: ccxt.Exchange) -> None:
    if exchange.markets:
        return  # loaded before: no request made, and the last body belongs to an older call
    exchange.load_markets()
    _check_body(exchange)
    if not exchange.markets:
        exchange.markets = None  # so the next try loads again instead of trusting an empty list
        raise RetryLater(f"{exchange.id} listed no markets (a truncated page?); try again later")


def _fetch_page(
    exchange: ccxt.Exchange, key: SeriesKey, since_ms: int, until_ms: int, limit: int
) -> list[list[Any]]:
    # ccxt's unified "until" is inclusive (binance's endTime); our range is half-open.
    rows = exchange.fetch_ohlcv(
        key.symbol, key.timeframe, since=since_ms, limit=limit, params={"until": until_ms - 1}
    )
    _check_body(exchange)
    if not isinstance(rows, list) or not all(
        isinstance(row, list) and len(row) >= 6 and isinstance(row[0], int) for row in rows
    ):
        raise RetryLater(f"{exchange.id} {key.symbol} {key.timeframe}: garbled candle rows")
    return rows


def _check_body(exchange: ccxt.Exchange) -> None:
    # ccxt hands a body that is not valid JSON back as a string, and its parsers then turn that
    # string into an empty list: a truncated page would read as "no more candles". The raw body
    # is the only place the difference shows.
    body = getattr(exchange, "last_http_response", None)
    if not isinstance(body, str):
        return
    try:
        json.loads(body)
    except ValueError:
        preview = body[:60] + ("..." if len(body) > 60 else "")
        raise RetryLater(
            f"{exchange.id} sent a truncated or garbled page ({len(body)} bytes: {preview!r}); "
            "try again later"
        ) from None


def _with_retries(
    call: Callable[[], T],
    *,
    exchange: ccxt.Exchange,
    key: SeriesKey,
    what: str,
    max_retries: int,
    backoff: tuple[float, float],
    sleep: Callable[[float], None],
) -> T:
    def translated() -> T:
        try:
            return call()
        except ccxt.BaseError as exc:
            error = translate(
                exc,
                exchange_id=exchange.id,
                symbol=key.symbol,
                timeframe=key.timeframe,
                retry_after_s=_retry_after(exchange, exc),
            )
            raise error from exc

    return with_retries(
        translated,
        what=f"{key} {what}",
        max_retries=max_retries,
        backoff=backoff,
        sleep=sleep,
        log=logger,
    )


def _retry_after(exchange: ccxt.Exchange, error: BaseException) -> float | None:
    # Only a rate-limit answer's headers are read: after a timeout they belong to an older call.
    if not isinstance(error, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        return None
    headers = getattr(exchange, "last_response_headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _to_frame(rows: list[list[Any]], since_ms: int, until_ms: int) -> pd.DataFrame:
    frame = pd.DataFrame([row[:6] for row in rows], columns=list(CANDLE_COLUMNS))
    frame = frame.astype({"ts": "int64", **{c: "float64" for c in CANDLE_COLUMNS[1:]}})
    inside = (frame["ts"] >= since_ms) & (frame["ts"] < until_ms)
    frame = frame.loc[inside].drop_duplicates("ts").sort_values("ts", kind="stable")
    return frame.reset_index(drop=True)


def _slots(since_ms: int, until_ms: int, step: int) -> int:
    """How many grid open times lie in ``[since_ms, until_ms)``."""
    first = -(-since_ms // step) * step
    return max(0, -(-(until_ms - first) // step))


def _similar(exchange: ccxt.Exchange, symbol: str) -> list[str]:
    base, _, quote = symbol.partition("/")
    listed = sorted(exchange.markets or {})
    same_base = [s for s in listed if s.startswith(f"{base}/")]
    same_quote = [s for s in listed if s.endswith(f"/{quote}")]
    return (same_base or same_quote)[:5]


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")
