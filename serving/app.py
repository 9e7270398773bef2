"""The Ray Serve application: a FastAPI ingress deployment ``RedlineAPI`` around the live ensemble.

Routes (API v1, models in :mod:`serving.schemas`): ``POST /v1/predict``, ``POST /v1/rugpull``,
``POST /v1/rugpull/feedback``, ``POST /v1/feedback``, ``GET /v1/models``, ``GET /healthz``; the OpenAPI schema at
``/openapi.json``. The maths is :mod:`serving.ensemble` (no Ray); this module only moves data.

- **Hot swap without blocking.** Serve's ``user_config``/``reconfigure`` takes a replica out of
  traffic while it reloads (ray-project/ray#54509). Instead each replica runs a daemon thread that
  asks the store for :func:`serving.ensemble.ensemble_version` every ``reload_interval_s``; on a
  change it loads the new :class:`Ensemble` *beside* the old one, then swaps one reference.
  A request reads the reference once when it starts, so in-flight requests finish on the old
  ensemble and no request ever waits for a load. ``swaps`` counts the swaps.
- **Batching.** Predictions go through ``@serve.batch`` (``max_batch_size``,
  ``batch_wait_timeout_s``; ``batching: false`` calls the ensemble per request); a batch is
  computed in a worker thread so the replica's event loop keeps accepting requests, and its
  predictions are remembered for feedback by the replica's writer thread after the answers leave,
  a fifth of a second's worth per transaction (``serving.writer``: feedback on a request id not
  written yet has it written at once). The default wait is 0: a lone request is not held back,
  and under load a batch is whatever queued while the previous one ran. Candles seen recently cost no feature work (``serving.ensemble``).
- **Safety.** With ``REDLINE_SERVE_TOKEN`` set (or ``token=``), every route but ``/healthz`` needs
  ``Authorization: Bearer <token>`` (401 otherwise). A body over ``max_body_bytes`` answers 413
  before it is parsed. Bad fields answer 422 naming the field (FastAPI's ``loc``, e.g.
  ``["body", "candles", 3, 1]``), also for ``NaN``, ``Infinity`` or ``1e309``, which the answer
  echoes as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (JSON has no such numbers).
  Every status a route answers is in ``/openapi.json`` with its body.
- **Health: what "unhealthy" means.** A replica is unhealthy when its store cannot be read or
  its live ensemble holds no champion (an empty store: typically a wrong ``REDLINE_HOME`` or
  ``REDLINE_DATABASE_URL``, which used to answer "no validated champion" forever while looking
  healthy). ``/healthz`` says so at once (503; 200 when healthy; both name the store, password
  masked, the data root and the champions loaded), for load balancers; Serve's ``check_health``
  raises with the same reason. Serve runs that check before a replica takes traffic, so a
  deployment on an empty or unreachable store never starts: ``serve.run`` raises and
  ``serve status`` shows DEPLOY_FAILED with the reason, after Serve's three attempts per
  replica, instead of a replica that restarts forever or serves nothing. A store that empties
  or becomes unreachable while serving answers 503 at once; after three failed checks Serve
  marks the deployment UNHEALTHY and replaces the replica, and the replacement starts only once
  the store is readable and holds a champion again (the deployment stays UNHEALTHY meanwhile).
- **Metrics** (``ray.serve.metrics``, on the Ray dashboard beside Serve's own):
  ``redline_predictions`` {regime}, ``redline_feedback``, ``redline_swaps`` (exported with
  ``_total``). Predictions are counted in the replica and pushed every ``reload_interval_s``.

``build_app(...)`` binds the deployment (``serve.run(build_app(), name=..., route_prefix=...)``);
``app`` is the builder ``serve run serving.app:app`` and ``serve deploy configs/serve.yaml``
call with the config's ``args``.

No ``from __future__ import annotations`` here: Serve's ingress rebuilds the route methods'
signatures, and FastAPI must see real classes, not strings, to read the request bodies.
"""

import asyncio
import hmac
import logging
import math
import os
import threading
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from ray import serve
from ray.serve import metrics
from ray.serve.deployment import Application
from starlette.exceptions import HTTPException as StarletteHTTPException

from market.series import SeriesKey
from market.timeframes import timeframe_ms
from serving.ensemble import (
    DEFAULT_MAX_INPUT_AGE_DAYS,
    Ensemble,
    candle_columns,
    ensemble_version,
)
from serving.feedback import FeedbackMismatchError, apply_feedback, apply_rugpull_feedback
from serving.schemas import (
    ErrorResponse,
    FeedbackAttribution,
    FeedbackRequest,
    FeedbackResponse,
    HealthResponse,
    ModelsResponse,
    PredictRequest,
    PredictResponse,
    RugpullFeedbackRequest,
    RugpullFeedbackResponse,
    RugpullRequest,
    RugpullResponse,
    ValidationErrorResponse,
)
from serving.writer import PredictionLog
from store.db import Store
from store.errors import NotFoundError
from store.paths import home_from_env, local_home
from store.records.rugpulls import RugpullAnswerRecord, RugpullOutcomeRecord
from store.records.trades import TradeRecord
from store.rugpulls import OutcomeConflictError
from store.trades import FeedbackConflictError

__all__ = [
    "TOKEN_ENV",
    "RedlineAPI",
    "ServeOptions",
    "api",
    "app",
    "build_app",
    "health",
    "no_champions",
]

logger = logging.getLogger(__name__)

TOKEN_ENV = "REDLINE_SERVE_TOKEN"
OPEN_PATHS = frozenset({"/healthz"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class ServeOptions:
    """The replica's settings (``args`` of ``configs/serve.yaml``; errors name the key)."""

    reload_interval_s: float = 2.0
    batching: bool = True
    max_batch_size: int = 16
    batch_wait_timeout_s: float = 0.0
    max_body_bytes: int = 2 * 1024 * 1024
    history_bars: int = 1000
    max_input_age_days: float = DEFAULT_MAX_INPUT_AGE_DAYS  # a sentiment member's daily input

    def __post_init__(self) -> None:
        checks = (
            ("reload_interval_s", self.reload_interval_s > 0, "a number > 0"),
            ("max_batch_size", self.max_batch_size >= 1, "an integer >= 1"),
            ("batch_wait_timeout_s", self.batch_wait_timeout_s >= 0, "a number >= 0"),
            ("max_body_bytes", self.max_body_bytes >= 1024, "an integer >= 1024"),
            ("history_bars", self.history_bars >= 2, "an integer >= 2"),
            ("max_input_age_days", self.max_input_age_days > 0, "a number > 0"),
        )
        for name, ok, rule in checks:
            if not ok or isinstance(getattr(self, name), bool):
                raise ValueError(f"serve.{name} must be {rule}; got {getattr(self, name)!r}")
        if not isinstance(self.batching, bool):
            raise ValueError(f"serve.batching must be true or false; got {self.batching!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "ServeOptions":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"serve.{unknown[0]} is not a setting; known: {', '.join(sorted(known))}"
            )
        return cls(**values)


# -- the guard: auth and body size, before FastAPI parses anything --------------------------------


@dataclass
class _GuardSettings:
    token: str | None = None
    max_body_bytes: int = ServeOptions.max_body_bytes


# One replica is one process: its constructor sets this (configure_guard) before any request.
_guard = _GuardSettings()


def configure_guard(token: str | None, max_body_bytes: int) -> None:
    """Set the replica's guard. A function, not a write to ``_guard`` from the deployment class:
    Serve pickles the class by value (with copies of the globals it reads), while this module's
    functions and the middleware are imported by reference in the replica and share ``_guard``."""
    _guard.token = token
    _guard.max_body_bytes = max_body_bytes


async def _reply(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = ('{"detail":"' + detail.replace('"', "'") + '"}').encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """Pure ASGI: 401 without the bearer token (``/healthz`` is open), 413 for a large body."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
        local = path[len(root) :] if root and path.startswith(root) else path
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        token = _guard.token
        if token and local not in OPEN_PATHS:
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                await _reply(send, 401, "missing or wrong bearer token",
                             [(b"www-authenticate", b"Bearer")])  # fmt: skip
                return
        limit = _guard.max_body_bytes
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit() or int(length) > limit:
                await _reply(send, 413, f"request body over {limit} bytes", [])
                return
            await self.app(scope, receive, send)
            return
        # No length (chunked): read up to the limit, then replay what was read.
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = bool(message.get("more_body", False))
            if size > limit:
                await _reply(send, 413, f"request body over {limit} bytes", [])
                return
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


api = FastAPI(
    title="Redline",
    version="1",
    description="Per-regime champion ensembles for trading bots (see serving/ensemble.py).",
)
api.add_middleware(GuardMiddleware)


def _json_safe(value: Any) -> Any:
    """``value`` writable as JSON: non-finite floats as strings (JSON has no NaN or Infinity,
    and Starlette refuses to write them: a 422 echoing ``NaN`` used to become a 500), strings
    that UTF-8 cannot encode with the offending characters escaped."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):  # a lone surrogate ("\\ud874" in the JSON) has no UTF-8
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_json_safe(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


@api.exception_handler(RequestValidationError)
async def _refused(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 (``detail``: the errors with their ``loc``), writable as JSON."""
    return JSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, status_code=422)


@api.exception_handler(StarletteHTTPException)
async def _failed(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's answer to an HTTP error, writable as JSON (a detail may quote the input)."""
    headers = getattr(exc, "headers", None)
    return JSONResponse({"detail": _json_safe(exc.detail)}, exc.status_code, headers=headers)


def _answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error ``statuses`` a route answers besides its 200."""
    said = {
        400: "The body could not be read as text (not UTF-8): FastAPI's parse error.",
        401: "Missing or wrong bearer token (when the service has one).",
        404: "No prediction (or rug-pull answer) carried this request id.",
        409: "Another trade (or token outcome) was already reported on this request id.",
        413: "The request body is over the replica's max_body_bytes.",
        422: "A field breaks the schema or a rule; loc names it.",
    }
    return {
        status: {
            "model": ValidationErrorResponse if status == 422 else ErrorResponse,
            "description": said[status],
        }
        for status in statuses
    }


@dataclass(frozen=True)
class _Failure:
    status: int
    detail: Any


def _field_error(field: str, message: str) -> _Failure:
    return _Failure(422, [{"loc": ["body", field], "msg": message, "type": "value_error"}])


Model = TypeVar("Model", bound=BaseModel)


def _parsed(model: type[Model], body: bytes) -> Model:
    """``body`` validated straight from JSON bytes (pydantic's parser: one pass, no ``json.loads``
    then a second walk over 3,000 candle numbers); errors are FastAPI's 422, located in the body.
    """
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = []
        for error in exc.errors(include_url=False):
            located = {**error, "loc": ("body", *error["loc"])}
            raw = located.get("input")
            if isinstance(raw, bytes):  # a body that is not JSON: echoed as text, cut short
                located["input"] = raw.decode("utf-8", "replace")[:200]
            errors.append(located)
        raise RequestValidationError(errors) from None


#: ``/v1/predict`` reads its body itself (``_parsed``); its schema is declared here for OpenAPI.
_PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
    }
}


def no_champions(where: str, home: Path) -> str:
    """What an empty store means to someone serving it (``/healthz``, ``redline serve``)."""
    return (
        f"the store {where} has no champions: is REDLINE_HOME ({home}) or "
        "REDLINE_DATABASE_URL the right one? (`redline evolve` crowns champions)"
    )


def health(store: Store, home: Path, ensemble: Ensemble, swaps: int = 0) -> HealthResponse:
    """The replica's health (module docstring, "Health"): unhealthy, with the reason, when the
    store cannot be read or ``ensemble`` holds no champion."""
    loaded = sum(len(found) for found in ensemble.members.values())
    loaded += ensemble.rugpull_member is not None
    where = store.url_for_display
    reason = None
    try:
        stored = len(store.champions.champions())
    except Exception as exc:  # any failure to read is the answer: the store is not usable
        said = str(exc).strip().splitlines() or [""]  # SQLAlchemy's: the cause, then the SQL
        reason = f"the store {where} cannot be read: {type(exc).__name__}: {said[0]}"
    else:
        if stored == 0:
            reason = no_champions(where, home)
        elif loaded == 0:
            reason = (
                f"none of the {stored} champions of the store {where} is loaded yet, or any "
                "could be: /v1/models lists them under unavailable with the reason"
            )
    return HealthResponse(
        status="unhealthy" if reason else "ok", store=where, home=str(home), champions=loaded,
        model_version=ensemble.version, swaps=swaps, reason=reason,
    )  # fmt: skip


@serve.deployment(name="RedlineAPI")  # its options: DEPLOYMENT_DEFAULTS, applied by build_app
@serve.ingress(api)
class RedlineAPI:
    """One replica: the live ensemble, its hot-swap thread and the routes."""

    def __init__(
        self,
        store_url: str | None,
        home: str | None,
        token: str | None,
        options: Mapping[str, Any],
    ) -> None:
        self.settings = ServeOptions.from_mapping(options)
        configure_guard(token or os.environ.get(TOKEN_ENV) or None, self.settings.max_body_bytes)
        self.home = Path(home) if home else home_from_env()
        self.store = Store.open(store_url, home=self.home)
        self.trades = self.store.trades
        self.predictions = PredictionLog(self.trades, rugpulls=self.store.rugpulls)
        self.ensemble = self._load()
        self.swaps = 0
        self.last_poll_error: str | None = None
        self._predictions = metrics.Counter(
            "redline_predictions", description="Predictions answered, by live regime.",
            tag_keys=("regime",),
        )  # fmt: skip
        self._feedback = metrics.Counter("redline_feedback", description="Trades reported back.")
        self._swaps = metrics.Counter("redline_swaps", description="Hot swaps of the ensemble.")
        batcher: Any = self._predict_batch  # serve.batch's wrapper carries the setters
        batcher.set_max_batch_size(self.settings.max_batch_size)
        batcher.set_batch_wait_timeout_s(self.settings.batch_wait_timeout_s)
        self._counts: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="redline-hot-swap", daemon=True)
        self._poller.start()
        logger.info("RedlineAPI up: ensemble %s", self.ensemble.version)

    # -- hot swap --------------------------------------------------------------------------------

    def _load(self) -> Ensemble:
        return Ensemble.load(
            self.store, self.home, max_input_age_days=self.settings.max_input_age_days
        )

    def _poll(self) -> None:
        while not self._stop.wait(self.settings.reload_interval_s):
            self._push_counts()
            try:
                if ensemble_version(self.store, self.home) != self.ensemble.version:
                    fresh = self._load()  # beside the live one
                    old, self.ensemble = self.ensemble, fresh  # the swap: one reference
                    self.swaps += 1
                    self._swaps.inc()
                    logger.info("hot swap %d: %s -> %s", self.swaps, old.version, fresh.version)
                self.last_poll_error = None
            except Exception as exc:  # a store hiccup: keep serving the live ensemble
                self.last_poll_error = f"{type(exc).__name__}: {exc}"
                logger.warning("ensemble poll failed: %s", self.last_poll_error)

    def _push_counts(self) -> None:
        """The predictions counted since the last push, to the Ray metric (one record per
        regime: made per request, the records were a large share of a replica's time in a profile)."""
        with self._count_lock:
            counts, self._counts = self._counts, Counter()
        for regime, n in counts.items():
            self._predictions.inc(n, tags={"regime": regime})

    async def check_health(self) -> None:
        """Serve's health check (module docstring, "Health"): also run before the replica takes
        traffic, so a replica on an empty or unreachable store never starts."""
        if not self._poller.is_alive():
            raise RuntimeError("the hot-swap thread is not running")
        if not self.predictions.alive():
            raise RuntimeError("the prediction writer thread is not running")
        found = await asyncio.to_thread(health, self.store, self.home, self.ensemble, self.swaps)
        if found.reason is not None:
            raise RuntimeError(f"unhealthy: {found.reason}")

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
        predictions = getattr(self, "predictions", None)
        if predictions is not None:
            predictions.close()  # what is queued is written

    # -- predict ---------------------------------------------------------------------------------

    def _candles(self, request: PredictRequest) -> Any:
        if request.candles is not None:
            return candle_columns(request.candles)
        key = SeriesKey(request.exchange, request.symbol, request.timeframe)
        info = self.store.candles.series_info(key)
        if info is None:
            return _field_error("candles", f"the store has no candles for {key}; send candles")
        start = info.last_ts - (self.settings.history_bars - 1) * timeframe_ms(key.timeframe)
        return self.store.candles.load_candles(key, start)

    def _answer(self, ensemble: Ensemble, request: PredictRequest) -> Any:
        """The ensemble's answer to one request (not yet recorded), or a 422 failure."""
        candles = self._candles(request)
        if isinstance(candles, _Failure):
            return candles
        try:
            return ensemble.predict(
                candles, exchange=request.exchange, symbol=request.symbol,
                timeframe=request.timeframe, request_id=uuid.uuid4().hex,
            )  # fmt: skip
        except ValueError as exc:
            return _field_error("candles", str(exc))

    def _predict_many(self, ensemble: Ensemble, requests: list[PredictRequest]) -> list[Any]:
        """Answer ``requests``; their predictions go to the writer (``serving.writer``), which
        remembers them for feedback just after the answers leave."""
        results = [self._answer(ensemble, request) for request in requests]
        answers = [r for r in results if isinstance(r, PredictResponse)]
        self.predictions.add([
            (a.request_id, a.model_version, [m.model_dump() for m in a.members],
             a.regime.name or "", a.exchange, a.symbol, a.timeframe, a.as_of)
            for a in answers
        ])  # fmt: skip
        with self._count_lock:  # pushed to the metric by the poll thread (_push_counts)
            self._counts.update(answer.regime.name or "none" for answer in answers)
        return results

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.0)
    async def _predict_batch(self, requests: list[PredictRequest]) -> list[Any]:
        ensemble = self.ensemble  # one snapshot for the whole batch
        return await asyncio.to_thread(self._predict_many, ensemble, requests)

    @api.post(
        "/v1/predict",
        response_model=PredictResponse,
        responses=_answers(401, 413, 422),
        openapi_extra=_PREDICT_BODY,
    )
    async def predict(self, http: Request) -> Response:
        """The live regime, the champions' votes and the ensemble's call on the last candle."""
        request = _parsed(PredictRequest, await http.body())
        if self.settings.batching:
            result = await self._predict_batch(request)
        else:
            [result] = await asyncio.to_thread(self._predict_many, self.ensemble, [request])
        if isinstance(result, _Failure):
            raise HTTPException(result.status, result.detail)
        assert isinstance(result, PredictResponse)
        return Response(result.model_dump_json(), media_type="application/json")

    # -- rug pulls, feedback, listing ------------------------------------------------------------

    @api.post("/v1/rugpull", response_model=RugpullResponse, responses=_answers(400, 401, 413, 422))
    async def rugpull(self, request: RugpullRequest) -> RugpullResponse:
        """The rug-pull champion's probability for a token, and the 5 features that drove it; its
        ``request_id`` names the answer in ``/v1/rugpull/feedback``."""
        ensemble = self.ensemble
        try:
            answer = await asyncio.to_thread(ensemble.rugpull, request.features)
        except ValueError as exc:
            failure = _field_error("features", str(exc))
            raise HTTPException(failure.status, failure.detail) from None
        run_id, agent_id = answer.run_id, answer.agent_id
        probability, call, threshold = answer.probability, answer.is_rugpull, answer.threshold
        if run_id is None or agent_id is None or probability is None or call is None:
            return answer  # no champion answered: nothing to remember
        request_id = uuid.uuid4().hex
        self.predictions.add_answers([RugpullAnswerRecord(
            request_id, answer.model_version, run_id, agent_id, probability, call,
            threshold if threshold is not None else 0.5,
        )])  # fmt: skip
        return answer.model_copy(update={"request_id": request_id})

    @api.post(
        "/v1/rugpull/feedback",
        response_model=RugpullFeedbackResponse,
        responses=_answers(400, 401, 404, 409, 413, 422),
    )
    async def rugpull_feedback(self, request: RugpullFeedbackRequest) -> RugpullFeedbackResponse:
        """What a token answered by ``/v1/rugpull`` turned out to be: stored (idempotent on the
        request id) and the rug-pull champion's stage moved by its live AUC."""
        outcome = RugpullOutcomeRecord(request.request_id, request.is_rugpull, request.note)
        try:
            found = await asyncio.to_thread(self._rugpull_feedback_on, outcome)
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except OutcomeConflictError as exc:
            raise HTTPException(409, str(exc)) from None
        return RugpullFeedbackResponse(
            request_id=found.outcome.request_id, duplicate=found.duplicate,
            agent_id=found.answer.agent_id, run_id=found.answer.run_id,
            stage=None if found.stage is None else str(found.stage), reason=found.reason,
        )  # fmt: skip

    def _rugpull_feedback_on(self, outcome: RugpullOutcomeRecord) -> Any:
        """``apply_rugpull_feedback``; an unknown request id is looked up again once this
        replica's queued answers are written (it may be one just answered)."""
        try:
            return apply_rugpull_feedback(self.store, outcome)
        except NotFoundError:
            if not self.predictions.flush():
                raise
            return apply_rugpull_feedback(self.store, outcome)

    @api.post(
        "/v1/feedback",
        response_model=FeedbackResponse,
        responses=_answers(400, 401, 404, 409, 413, 422),
    )
    async def feedback(self, request: FeedbackRequest) -> FeedbackResponse:
        """A trade's outcome on a prediction: stored and attributed to the members that voted."""
        trade = TradeRecord(**request.model_dump())
        try:
            outcome = await asyncio.to_thread(self._feedback_on, trade)
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except FeedbackConflictError as exc:
            raise HTTPException(409, str(exc)) from None
        except FeedbackMismatchError as exc:
            failure = _field_error(exc.field, str(exc))
            raise HTTPException(failure.status, failure.detail) from None
        if not outcome.duplicate:
            self._feedback.inc()
        attributed = [
            FeedbackAttribution(agent_id=a.agent_id, was_correct=a.was_correct,
                                profit_contribution=a.profit_contribution)
            for a in outcome.attributions
        ]  # fmt: skip
        return FeedbackResponse(trade_id=outcome.trade_id, duplicate=outcome.duplicate,
                                attributed=attributed)  # fmt: skip

    def _feedback_on(self, trade: TradeRecord) -> Any:
        """``apply_feedback``; an unknown request id is looked up again once this replica's
        queued predictions are written (it may be one just answered)."""
        try:
            return apply_feedback(self.store, trade, home=self.home)
        except NotFoundError:
            if not self.predictions.flush():
                raise
            return apply_feedback(self.store, trade, home=self.home)

    @api.get("/v1/models", response_model=ModelsResponse, responses=_answers(401))
    async def models(self) -> ModelsResponse:
        """What is live per regime, the brain version, and what does not vote (with the reason)."""
        return self.ensemble.models(swaps=self.swaps)

    @api.get(
        "/healthz",
        response_model=HealthResponse,
        responses={503: {"model": HealthResponse, "description": "The store cannot be read or "
                         "no champion is loaded; reason says which."}},
    )  # fmt: skip
    async def healthz(self) -> Response:
        """Health (no token needed): the store read, the champions loaded; 503 when unhealthy
        (module docstring, "Health")."""
        found = await asyncio.to_thread(health, self.store, self.home, self.ensemble, self.swaps)
        return Response(found.model_dump_json(), status_code=503 if found.reason else 200,
                        media_type="application/json")  # fmt: skip


#: Deployment options ``build_app`` sets unless ``deployment`` overrides them.
DEPLOYMENT_DEFAULTS: dict[str, Any] = {
    "max_ongoing_requests": 32,
    "health_check_period_s": 10.0,
    "health_check_timeout_s": 30.0,
    "ray_actor_options": {"num_cpus": 1},
}


def build_app(
    store_url: str | None = None,
    home: str | Path | None = None,
    *,
    token: str | None = None,
    deployment: Mapping[str, Any] | None = None,
    **options: Any,
) -> Application:
    """The bound ``RedlineAPI`` for ``serve.run``.

    ``store_url`` None: the replica's REDLINE_DATABASE_URL, else SQLite under ``home``; ``home``
    None: REDLINE_HOME (else ./redline_data), resolved here. ``token`` None: REDLINE_SERVE_TOKEN
    of this process (else of the replica). ``deployment``: Serve deployment options over
    ``DEPLOYMENT_DEFAULTS`` (``num_replicas``, ``autoscaling_config``, ``ray_actor_options``,
    ...). ``options``: :class:`ServeOptions` (unknown keys raise naming them).
    """
    settings = ServeOptions.from_mapping(options)
    root = str((local_home(home, "args.home") if home is not None else home_from_env()).resolve())
    secret = token if token is not None else os.environ.get(TOKEN_ENV)
    deployment_options = {**DEPLOYMENT_DEFAULTS, **(deployment or {})}
    if "autoscaling_config" in deployment_options:
        deployment_options.pop("num_replicas", None)
    bound = RedlineAPI.options(**deployment_options)  # type: ignore[attr-defined]
    return bound.bind(store_url, root, secret or None, asdict(settings))


def app(args: Mapping[str, Any] | None = None) -> Application:
    """The app builder of ``serve run serving.app:app`` / ``serve deploy configs/serve.yaml``:
    ``args`` are ``build_app``'s keyword arguments."""
    values = dict(args or {})
    return build_app(values.pop("store_url", None), values.pop("home", None), **values)
