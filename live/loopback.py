"""Our loopback exchange: Binance's public spot REST API and alternative.me's Fear & Greed index,
served on 127.0.0.1 from files shaped like ../shared/data's, optionally as of a simulated now.

The real ccxt ``binance`` client talks to it unchanged once ``market.exchange.make_exchange`` points
its URLs here (``api_base=server.url``), and ``market.sentiment.fetch_fear_greed(server.url)``
reads the index from it. ``redline live --replay-data DIR`` runs the whole service against it; the
tests use it to script exchange failures. It answers:

- ``GET /api/v3/exchangeInfo``: one TRADING spot market per symbol that has a candle or trades file;
- ``GET /api/v3/klines``: Binance semantics (open time >= startTime and <= endTime, at most
  ``limit`` rows, default 500, max 1000; no startTime: the latest rows), the 12-field array format
  with prices as strings;
- ``GET /api/v3/aggTrades``: Binance's compressed trades (``fromId``, ``startTime``, ``endTime``,
  ``limit``; none: the most recent), one per row of a trades file, its row number as its id;
- ``GET /api/v3/time`` and ``GET /api/v3/ping``;
- ``GET /fng/?limit=N&format=json``: alternative.me's answer (``name``, ``data`` newest first with
  ``value``, ``value_classification``, ``timestamp`` in seconds as strings and
  ``time_until_update`` on the newest row, ``metadata.error``); ``limit`` defaults to 1 as there,
  0 means every day;
- anything else: HTTP 404 with a Binance-style JSON error.

Candles come from ``binance_<BASE>-<QUOTE>_<tf>.csv.gz`` files, trades from
``binance_<BASE>-<QUOTE>_trades.csv.gz`` (``timestamp,price,amount,side``) and the index from
``feargreed_crypto_1d.csv.gz`` (``timestamp,value,label``, ms of the day's 00:00 UTC), loaded on
first use. Values are served as the files' own text, so a client parses exactly what they hold.

The clock: with ``now_ms`` (a callable returning epoch ms), the server lives at that simulated time.
A candle is served only once closed (open time + timeframe <= now), a trade once made (time <=
now), a Fear & Greed day once its timestamp <= now (alternative.me publishes a day's value at its
start), and ``/api/v3/time`` and exchangeInfo's ``serverTime`` answer now. Without it, every row of
the files is served and the server's time is the wall clock.

Faults are scripted: ``server.inject(Fault.http_status(503), Fault.truncated())`` makes the next
two klines requests fail that way, in order (``path="/fng/"`` for the index); later requests are
served normally again. ``server.requests`` lists every request served, with the fault applied to it.
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from live.loopback_files import Candles, Days, Trades, load_candles, load_days, load_trades, scan
from market.timeframes import timeframe_ms

__all__ = [
    "AGG_TRADES",
    "DEFAULT_LIMIT",
    "EXCHANGE_INFO",
    "FEAR_GREED",
    "FEAR_GREED_FILE",
    "KLINES",
    "MAX_LIMIT",
    "Fault",
    "LoopbackExchange",
    "Served",
]

KLINES = "/api/v3/klines"
AGG_TRADES = "/api/v3/aggTrades"
EXCHANGE_INFO = "/api/v3/exchangeInfo"
FEAR_GREED = "/fng/"
FEAR_GREED_FILE = "feargreed_crypto_1d.csv.gz"
FEAR_GREED_NAME = "Fear and Greed Index"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 500
DAY_MS = 86_400_000

FaultKind = Literal[
    "status", "delay", "truncated", "disconnect", "short_page", "binance_error", "corrupt"
]

# Where a corrupt fault may write: a klines row's price/volume columns, a Fear & Greed row's keys.
_KLINE_FIELDS = {"open": 1, "high": 2, "low": 3, "close": 4, "volume": 5}
_FEAR_GREED_FIELDS = ("value", "value_classification", "timestamp")
_CORRUPTIBLE = {KLINES: tuple(_KLINE_FIELDS), FEAR_GREED: _FEAR_GREED_FIELDS}


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, applied to one request of the path it was injected for."""

    kind: FaultKind
    status: int = 200
    retry_after_s: int | None = None
    delay_s: float = 0.0
    rows: int = 0
    code: int = 0
    msg: str = ""
    column: str = ""
    text: str = ""

    @classmethod
    def rate_limit(cls, retry_after_s: int = 1) -> Fault:
        """HTTP 429 with ``Retry-After``, as Binance answers a client over its request weight."""
        return cls("status", status=429, retry_after_s=retry_after_s)

    @classmethod
    def http_status(cls, status: int) -> Fault:
        """A bare HTTP error such as 500, 502 or 503 (an HTML body, as a load balancer sends)."""
        return cls("status", status=status)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Answer normally but only after ``seconds``: past the client's timeout, a timeout."""
        return cls("delay", delay_s=seconds)

    @classmethod
    def truncated(cls) -> Fault:
        """HTTP 200 whose JSON body is cut halfway (Content-Length matches the cut body)."""
        return cls("truncated")

    @classmethod
    def disconnect(cls) -> Fault:
        """Promise the full body, send half of it, then close the connection."""
        return cls("disconnect")

    @classmethod
    def short_page(cls, rows: int) -> Fault:
        """A well-formed page holding only the first ``rows`` rows of what the request asked for."""
        return cls("short_page", rows=rows)

    @classmethod
    def binance_error(cls, code: int, msg: str, status: int = 400) -> Fault:
        """Binance's JSON error, e.g. ``(-1121, "Invalid symbol.")``."""
        return cls("binance_error", status=status, code=code, msg=msg)

    @classmethod
    def corrupt(cls, column: str, text: str, row: int = 0) -> Fault:
        """A well-formed page whose ``row``-th row (0 = first served) has ``column`` set to ``text``:
        a bad candle (``corrupt("close", "-5")``, ``corrupt("high", "1")`` under its low) or a bad
        Fear & Greed day (``corrupt("value", "140")``). A page shorter than ``row`` is left as is.
        """
        known = sorted({*_KLINE_FIELDS, *_FEAR_GREED_FIELDS})
        if column not in known:
            raise ValueError(f"column must be one of {', '.join(known)}; got {column!r}")
        if row < 0:
            raise ValueError(f"row must be 0 or more; got {row}")
        return cls("corrupt", rows=row, column=column, text=text)


@dataclass(frozen=True)
class Served:
    """One request as the server saw it."""

    path: str
    params: dict[str, str]
    status: int
    fault: FaultKind | None
    rows: int = 0


@dataclass
class _State:
    name: str
    data_dir: Path
    series: dict[tuple[str, str], Path]  # (exchange symbol id like BTCUSDT, interval) -> file
    trades: dict[str, Path]  # XRPETH -> its trades file
    markets: dict[str, tuple[str, str]]  # BTCUSDT -> (BTC, USDT)
    now_ms: Callable[[], int] | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    faults: dict[str, deque[Fault]] = field(default_factory=dict)
    served: list[Served] = field(default_factory=list)
    generation: int = 0  # bumped by reset(): answers to older requests are not logged
    cache: dict[tuple[str, str], Candles] = field(default_factory=dict)
    trade_cache: dict[str, Trades] = field(default_factory=dict)
    days: Days | None = None
    closing: threading.Event = field(default_factory=threading.Event)

    def now(self) -> int:
        return int(self.now_ms()) if self.now_ms is not None else int(time.time() * 1000)


def _market_entry(symbol_id: str, base: str, quote: str) -> dict[str, Any]:
    # The fields ccxt's binance.parse_market reads for a spot market; the rest of Binance's
    # listing (order types, rate limits per symbol...) is not needed to load or fetch candles.
    return {
        "symbol": symbol_id,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.00000001",
                "maxPrice": "1000000.00000000",
                "tickSize": "0.00000001",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00000001",
                "maxQty": "9000000.00000000",
                "stepSize": "0.00000001",
            },
        ],
        "permissions": ["SPOT"],
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as requests' session expects
    # Headers and body go out in two writes: with Nagle's algorithm on, the body waits for the
    # client's delayed ACK (about 40 ms a request on loopback). A replay makes thousands.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return  # stays quiet; server.requests is the log

    def do_GET(self) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        kind: FaultKind | None = None
        # Logged on arrival, so the log keeps request order even when a delayed answer finishes
        # late; the status is filled in when the answer is sent (0: the client had gone).
        with state.lock:
            queue = state.faults.get(url.path)
            fault = queue.popleft() if queue else None
            kind = fault.kind if fault else None
            generation, index = state.generation, len(state.served)
            state.served.append(Served(url.path, params, 0, kind))
        try:
            status, rows = self._answer(url.path, params, fault)
        except (BrokenPipeError, ConnectionResetError):
            status, rows = 0, 0
        with state.lock:
            if state.generation == generation:  # not reset meanwhile
                state.served[index] = Served(url.path, params, status, kind, rows)

    def _answer(self, path: str, params: dict[str, str], fault: Fault | None) -> tuple[int, int]:
        state = self.server.state
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": str(fault.retry_after_s)} if fault.retry_after_s else {}
            phrase = HTTPStatus(fault.status).phrase
            html = f"<html><body><h1>{fault.status} {phrase}</h1></body></html>"
            self._send(fault.status, html.encode(), "text/html", headers)
            return fault.status, 0
        if fault is not None and fault.kind == "binance_error":
            return self._error(fault.status, fault.code, fault.msg), 0
        if fault is not None and fault.kind == "delay" and state.closing.wait(fault.delay_s):
            return 0, 0  # server closing: drop the request
        if path == "/api/v3/ping":
            return self._json(200, {}), 0
        if path == "/api/v3/time":
            return self._json(200, {"serverTime": state.now()}), 0
        rows: list[Any]
        if path == EXCHANGE_INFO:
            payload: Any = self._exchange_info()
            rows = payload["symbols"]
        elif path == KLINES:
            result = self._klines(params)
            if isinstance(result, int):
                return result, 0
            payload = rows = result
        elif path == AGG_TRADES:
            trades = self._agg_trades(params)
            if isinstance(trades, int):
                return trades, 0
            payload = rows = trades
        elif path in (FEAR_GREED, FEAR_GREED.rstrip("/")):
            answer = self._fear_greed(params)
            if isinstance(answer, int):
                return answer, 0
            payload, rows = answer, answer["data"]
        else:
            return self._error(404, -1, f"{state.name} does not serve {path}"), 0
        if fault is not None and fault.kind == "short_page":
            del rows[fault.rows :]
        if fault is not None and fault.kind == "corrupt" and fault.rows < len(rows):
            row = rows[fault.rows]
            if isinstance(row, dict):
                row[fault.column] = fault.text
            else:
                row[_KLINE_FIELDS[fault.column]] = fault.text
        body = json.dumps(payload, separators=(",", ":")).encode()
        if fault is not None and fault.kind == "truncated":
            self._send(200, body[: len(body) // 2], "application/json;charset=UTF-8")
        elif fault is not None and fault.kind == "disconnect":
            self._send(
                200, body[: len(body) // 2], "application/json;charset=UTF-8", length=len(body)
            )
            self.close_connection = True
        else:
            self._send(200, body, "application/json;charset=UTF-8")
        return 200, len(rows)

    def _exchange_info(self) -> dict[str, Any]:
        state = self.server.state
        return {
            "timezone": "UTC",
            "serverTime": state.now(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 6000,
                },
            ],
            "exchangeFilters": [],
            "symbols": [_market_entry(sid, b, q) for sid, (b, q) in sorted(state.markets.items())],
        }

    def _klines(self, params: dict[str, str]) -> list[list[Any]] | int:
        state = self.server.state
        symbol = params.get("symbol")
        interval = params.get("interval")
        if not symbol:
            return self._error(400, -1102, "Mandatory parameter 'symbol' was not sent.")
        if symbol not in state.markets:
            return self._error(400, -1121, "Invalid symbol.")
        if not interval:
            return self._error(400, -1102, "Mandatory parameter 'interval' was not sent.")
        path = state.series.get((symbol, interval))
        if path is None:
            files = ", ".join(sorted(p.name for (s, _), p in state.series.items() if s == symbol))
            msg = f"{state.name} has no {interval} candles for {symbol}; it serves {files}"
            return self._error(400, -1120, msg)
        paging = self._paging(params)
        if isinstance(paging, int):
            return paging
        limit, start, end, _ = paging
        with state.lock:
            candles = state.cache.get((symbol, interval))
            if candles is None:
                candles = state.cache[(symbol, interval)] = load_candles(path)
        step = timeframe_ms(interval)
        lo = 0 if start is None else bisect.bisect_left(candles.ts, start)
        hi = len(candles.ts) if end is None else bisect.bisect_right(candles.ts, end)
        if state.now_ms is not None:  # only candles closed at the simulated now exist yet
            hi = min(hi, bisect.bisect_right(candles.ts, state.now() - step))
        # No startTime: Binance answers the latest rows up to endTime (or now).
        lo, hi = (lo, min(hi, lo + limit)) if start is not None else (max(lo, hi - limit), hi)
        return [
            [ts, o, h, low, c, v, ts + step - 1, "0", 0, "0", "0", "0"]
            for ts, (o, h, low, c, v) in zip(candles.ts[lo:hi], candles.fields[lo:hi], strict=True)
        ]

    def _paging(
        self, params: dict[str, str]
    ) -> tuple[int, int | None, int | None, int | None] | int:
        """``limit, startTime, endTime, fromId`` as Binance reads them, or the 400 sent."""
        try:
            limit = min(int(params.get("limit", DEFAULT_LIMIT)), MAX_LIMIT)
            start, end, from_id = (
                int(params[name]) if name in params else None
                for name in ("startTime", "endTime", "fromId")
            )
        except ValueError as exc:
            return self._error(400, -1100, f"Illegal characters found in a parameter: {exc}")
        if limit <= 0:
            return self._error(400, -1100, f"limit must be positive; got {limit}")
        return limit, start, end, from_id

    def _agg_trades(self, params: dict[str, str]) -> list[dict[str, Any]] | int:
        state = self.server.state
        symbol = params.get("symbol")
        if not symbol:
            return self._error(400, -1102, "Mandatory parameter 'symbol' was not sent.")
        if symbol not in state.markets:
            return self._error(400, -1121, "Invalid symbol.")
        path = state.trades.get(symbol)
        if path is None:
            served = ", ".join(sorted(p.name for p in state.trades.values())) or "none"
            msg = f"{state.name} has no trades for {symbol}; it serves {served}"
            return self._error(400, -1120, msg)
        paging = self._paging(params)
        if isinstance(paging, int):
            return paging
        limit, start, end, from_id = paging
        with state.lock:
            trades = state.trade_cache.get(symbol)
            if trades is None:
                trades = state.trade_cache[symbol] = load_trades(path)
        # Only trades made by the simulated now have happened.
        hi = len(trades.ts) if state.now_ms is None else bisect.bisect_right(trades.ts, state.now())
        if end is not None:
            hi = min(hi, bisect.bisect_right(trades.ts, end))
        if from_id is not None:  # Binance: ids from fromId on, oldest first
            lo, hi = max(0, from_id), min(hi, max(0, from_id) + limit)
        elif start is not None:
            lo = bisect.bisect_left(trades.ts, start)
            hi = min(hi, lo + limit)
        else:  # the most recent trades
            lo = max(0, hi - limit)
        return [
            {
                "a": i,
                "p": trades.prices[i],
                "q": trades.amounts[i],
                "f": i,
                "l": i,
                "T": trades.ts[i],
                "m": trades.sells[i],
                "M": True,
            }
            for i in range(lo, hi)
        ]

    def _fear_greed(self, params: dict[str, str]) -> dict[str, Any] | int:
        state = self.server.state
        path = state.data_dir / FEAR_GREED_FILE
        if not path.is_file():
            return self._fng_error(404, f"{state.name} has no Fear & Greed file: {path} is missing")
        try:
            limit = int(params.get("limit", "1"))  # alternative.me's default: the newest day only
        except ValueError:
            return self._fng_error(400, f"limit must be an integer; got {params['limit']!r}")
        if limit < 0:
            return self._fng_error(400, f"limit must be 0 (every day) or more; got {limit}")
        if params.get("format", "json") != "json":
            return self._fng_error(400, f"{state.name} serves format=json only")
        with state.lock:
            days = state.days
            if days is None:
                days = state.days = load_days(path)
        now = state.now()
        hi = bisect.bisect_right(days.ts, now) if state.now_ms is not None else len(days.ts)
        lo = 0 if limit == 0 else max(0, hi - limit)
        data: list[dict[str, str]] = [
            {
                "value": days.values[i],
                "value_classification": days.labels[i],
                "timestamp": str(days.ts[i] // 1000),
            }
            for i in range(hi - 1, lo - 1, -1)
        ]
        if data:  # as alternative.me: on the newest day only, seconds until the next value
            data[0]["time_until_update"] = str(max(0, (days.ts[hi - 1] + DAY_MS - now) // 1000))
        return {"name": FEAR_GREED_NAME, "data": data, "metadata": {"error": None}}

    def _fng_error(self, status: int, message: str) -> int:
        payload = {"name": FEAR_GREED_NAME, "data": [], "metadata": {"error": message}}
        return self._json(status, payload)

    def _error(self, status: int, code: int, msg: str) -> int:
        return self._json(status, {"code": code, "msg": msg})

    def _json(self, status: int, payload: Any) -> int:
        self._send(status, json.dumps(payload).encode(), "application/json;charset=UTF-8")
        return status

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: _State) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class LoopbackExchange:
    """``with LoopbackExchange(data_dir) as server:`` serves on ``server.url`` until the block ends.

    ``now_ms``: the simulated clock (epoch ms), read on every request; None serves every row and
    answers the wall clock's time. ``NAME`` is how the server names itself in its error messages.
    """

    NAME = "loopback exchange"

    def __init__(self, data_dir: Path, now_ms: Callable[[], int] | None = None) -> None:
        if not data_dir.is_dir():
            raise ValueError(f"data_dir must be a directory of candle files; got {data_dir}")
        listing = scan(data_dir)
        if not listing.series:
            raise ValueError(
                f"data_dir holds no binance_<BASE>-<QUOTE>_<tf>.csv.gz files: {data_dir}"
            )
        self._state = _State(
            name=self.NAME,
            data_dir=data_dir,
            series=listing.series,
            trades=listing.trades,
            markets=listing.markets,
            now_ms=now_ms,
        )
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: pass it as ``api_base``."""
        if self._server is None:
            raise RuntimeError(f"{self.NAME} is not running: use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def symbols(self) -> list[str]:
        """Unified symbols listed in exchangeInfo, e.g. ``BTC/USDT``."""
        return sorted(f"{b}/{q}" for b, q in self._state.markets.values())

    def inject(self, *faults: Fault, path: str = KLINES) -> None:
        """Queue ``faults`` for the next requests of ``path``, one fault per request, in order."""
        for fault in faults:
            if fault.kind == "corrupt" and fault.column not in _CORRUPTIBLE.get(path, ()):
                fields = ", ".join(_CORRUPTIBLE.get(path, ())) or "nothing"
                raise ValueError(
                    f"Fault.corrupt column must be one of {fields} on {path}; got {fault.column!r}"
                )
        with self._state.lock:
            self._state.faults.setdefault(path, deque()).extend(faults)

    def pending_faults(self, path: str = KLINES) -> int:
        with self._state.lock:
            return len(self._state.faults.get(path, ()))

    def reset(self) -> None:
        """Forget queued faults and the request log (loaded candles stay cached)."""
        with self._state.lock:
            self._state.faults.clear()
            self._state.served.clear()
            self._state.generation += 1

    @property
    def requests(self) -> list[Served]:
        """Every request served so far (a copy), oldest first."""
        with self._state.lock:
            return list(self._state.served)

    def count(self, path: str = KLINES) -> int:
        """How many requests of ``path`` were served."""
        with self._state.lock:
            return sum(1 for r in self._state.served if r.path == path)

    def start(self) -> LoopbackExchange:
        self._server = _Server(self._state)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._state.closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> LoopbackExchange:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
