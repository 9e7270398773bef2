"""``RedlineClient``: the Python client a trading bot uses to reach the Redline Serve application.

    from serving.client import RedlineClient

    with RedlineClient("http://127.0.0.1:8000") as redline:
        call = redline.predict("BTC/USDT", timeframe="1h")
        if call.signal.direction != 0:
            ...  # trade, then report it:
        redline.feedback(request_id=call.request_id, model_version=call.model_version, ...)

Results are the API's own pydantic models (``serving.schemas``), checked on arrival.

**Timeouts and retries.** Every request has a timeout (``timeout`` seconds, 10 by default). A
connection error, a timeout or a 5xx answer is retried up to ``retries`` times with exponential
backoff (``backoff`` x 2^attempt seconds, at most ``max_backoff``; a 503's ``Retry-After`` is
honoured within that bound); every route can be retried safely: predict and rugpull only read,
and feedback (trades and tokens' outcomes) is idempotent on the request id. A 4xx is never retried: the request
itself is wrong (:class:`RedlineHTTPError` carries the status and the server's detail, e.g. the
field a 422 names). After the last attempt the error of that attempt is raised.

**Auth.** ``token`` (else ``REDLINE_SERVE_TOKEN``) is sent as ``Authorization: Bearer <token>``;
it is never logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from serving.schemas import (
    FeedbackRequest,
    FeedbackResponse,
    HealthResponse,
    ModelsResponse,
    PredictResponse,
    RugpullFeedbackRequest,
    RugpullFeedbackResponse,
    RugpullResponse,
)

__all__ = [
    "RedlineClient",
    "RedlineConnectionError",
    "RedlineError",
    "RedlineHTTPError",
]

logger = logging.getLogger(__name__)

_M = TypeVar("_M", bound=BaseModel)
_CANDLE_COLUMNS = ("open", "high", "low", "close", "volume")


class RedlineError(Exception):
    """Anything the client could not get an answer for."""


class RedlineHTTPError(RedlineError):
    """The server answered with an error status; ``detail`` is its JSON ``detail`` (or text)."""

    def __init__(self, method: str, path: str, status_code: int, detail: Any) -> None:
        self.status_code = status_code
        self.detail = detail
        super().__init__(f"{method} {path} answered {status_code}: {detail}")


class RedlineConnectionError(RedlineError):
    """No answer: the connection failed or timed out on every attempt."""


class RedlineClient:
    """A synchronous client of the Redline Serve API v1 (module docstring). Thread-safe."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not (isinstance(retries, int) and retries >= 0):
            raise ValueError(f"retries must be an integer >= 0; got {retries!r}")
        for name, value in (
            ("timeout", timeout),
            ("backoff", backoff),
            ("max_backoff", max_backoff),
        ):
            if not (isinstance(value, int | float) and value >= 0):
                raise ValueError(f"{name} must be a number >= 0; got {value!r}")
        token = token if token is not None else os.environ.get("REDLINE_SERVE_TOKEN") or None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=timeout,
            transport=transport,
        )
        self._retries = retries
        self._backoff = float(backoff)
        self._max_backoff = float(max_backoff)
        self._sleep = sleep

    def __enter__(self) -> RedlineClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the routes ------------------------------------------------------------------------------

    def predict(
        self,
        symbol: str,
        *,
        exchange: str = "binance",
        timeframe: str = "1h",
        candles: Any = None,
    ) -> PredictResponse:
        """``POST /v1/predict``. ``candles``: rows ``[ts_ms, open, high, low, close, volume]``
        oldest first, or a frame with those columns (``ts`` or ``timestamp``); None uses the
        store's latest candles of the series."""
        body: dict[str, Any] = {"exchange": exchange, "symbol": symbol, "timeframe": timeframe}
        if candles is not None:
            body["candles"] = _candle_rows(candles)
        return self._call("POST", "/v1/predict", PredictResponse, body)

    def rugpull(self, features: Mapping[str, float]) -> RugpullResponse:
        """``POST /v1/rugpull``: a token's raw features by name."""
        return self._call(
            "POST",
            "/v1/rugpull",
            RugpullResponse,
            {"features": {k: float(v) for k, v in features.items()}},
        )

    def rugpull_feedback(
        self, request_id: str, is_rugpull: bool, note: str | None = None
    ) -> RugpullFeedbackResponse:
        """``POST /v1/rugpull/feedback``: what the token a rugpull answer's ``request_id`` named
        turned out to be. Checked here before it is sent."""
        body = RugpullFeedbackRequest(request_id=request_id, is_rugpull=is_rugpull, note=note)
        return self._call("POST", "/v1/rugpull/feedback", RugpullFeedbackResponse,
                          body.model_dump(mode="json"))  # fmt: skip

    def feedback(self, trade: FeedbackRequest | None = None, /, **fields: Any) -> FeedbackResponse:
        """``POST /v1/feedback``: a trade made on a prediction, as a :class:`FeedbackRequest` or
        its fields (``request_id``, ``model_version``, ``symbol``, ``side``, ``entry_ts``,
        ``exit_ts``, ``entry_price``, ``exit_price``, ``pnl``, ``fees``, optional ``qty``,
        ``exchange``). Checked here before it is sent."""
        if trade is None:
            trade = FeedbackRequest(**fields)
        elif fields:
            raise ValueError("feedback takes a FeedbackRequest or its fields, not both")
        return self._call("POST", "/v1/feedback", FeedbackResponse, trade.model_dump(mode="json"))

    def models(self) -> ModelsResponse:
        """``GET /v1/models``: what is live, per regime."""
        return self._call("GET", "/v1/models", ModelsResponse)

    def health(self) -> HealthResponse:
        """``GET /healthz``: also an unhealthy service's answer (a 503 with its health is an
        answer, not retried: ``status`` "unhealthy" and ``reason`` say why; another 503, e.g.
        Serve's own while no replica runs, is retried as any 5xx)."""
        response = self._send("GET", "/healthz", None, answer=_unhealthy)
        return HealthResponse.model_validate(response.json())

    # -- transport -------------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, model: type[_M], body: Mapping[str, Any] | None = None
    ) -> _M:
        response = self._send(method, path, body)
        return model.model_validate(response.json())

    def _send(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        answer: Callable[[httpx.Response], bool] | None = None,
    ) -> httpx.Response:
        """The response (``answer``: which error responses are returned, not raised nor
        retried)."""
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, json=body)
            except httpx.TransportError as error:  # connection refused, reset, timeouts
                if attempt >= self._retries:
                    raise RedlineConnectionError(
                        f"{method} {path}: no answer after {attempt + 1} attempts: {error!r}"
                    ) from error
                delay = self._delay(attempt, None)
                logger.warning("%s %s failed (%r); retrying in %.2fs", method, path, error, delay)
            else:
                if response.status_code < 400 or (answer is not None and answer(response)):
                    return response
                if response.status_code < 500 or attempt >= self._retries:
                    raise RedlineHTTPError(method, path, response.status_code, _detail(response))
                delay = self._delay(attempt, response.headers.get("Retry-After"))
                logger.warning(
                    "%s %s answered %d; retrying in %.2fs",
                    method,
                    path,
                    response.status_code,
                    delay,
                )
            self._sleep(delay)
            attempt += 1

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        delay = self._backoff * 2**attempt
        if retry_after is not None:
            with contextlib.suppress(ValueError):  # an HTTP date: keep our own backoff
                delay = max(delay, float(retry_after))
        return min(delay, self._max_backoff)


def _unhealthy(response: httpx.Response) -> bool:
    """Whether ``response`` is the service's own 503 of ``/healthz`` (its health, unhealthy)."""
    if response.status_code != 503:
        return False
    try:
        HealthResponse.model_validate(response.json())
    except ValueError:  # not JSON, or not a health answer
        return False
    return True


def _detail(response: httpx.Response) -> Any:
    try:
        payload = response.json()
    except ValueError:
        return response.text
    return payload.get("detail", payload) if isinstance(payload, dict) else payload


def _candle_rows(candles: Any) -> list[list[float]]:
    """Rows ``[ts, open, high, low, close, volume]`` of a sequence of rows or a candle frame."""
    columns = getattr(candles, "columns", None)
    if columns is not None:
        ts = "ts" if "ts" in columns else "timestamp"
        missing = [name for name in (ts, *_CANDLE_COLUMNS) if name not in columns]
        if missing:
            raise ValueError(f"candles frame needs columns {missing}; got {list(columns)}")
        return [
            [int(row[0]), *(float(value) for value in row[1:])]
            for row in candles[[ts, *_CANDLE_COLUMNS]].itertuples(index=False, name=None)
        ]
    if not isinstance(candles, Sequence):
        raise ValueError(f"candles must be rows or a frame; got {type(candles).__name__}")
    return [[int(row[0]), *(float(value) for value in row[1:])] for row in candles]
