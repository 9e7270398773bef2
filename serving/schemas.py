"""API v1 of the Redline Serve application: request and response models (pydantic v2).

Requests are strict about what a bot sends: unknown fields are refused, numbers must be finite,
and a bad value answers 422 with the field's location (``["body", "candles"]``) and a message
that names the row and the rule (``candles[3]: high 9.5 is below low 10.0``).

Candles are rows ``[timestamp, open, high, low, close, volume]``: ``timestamp`` is the candle's
open time in integer milliseconds UTC (as everywhere in Redline), rows in increasing time.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    Strict,
    ValidationInfo,
    field_validator,
    model_validator,
)

from market.series import normalize_symbol
from market.timeframes import TIMEFRAMES, timeframe_ms
from market.validation import CandleValidationError, Plausibility, validate_candle_array

__all__ = [
    "MAX_AMOUNT",
    "MAX_CANDLES",
    "MAX_FEATURE",
    "MAX_TIMESTAMP",
    "SYMBOL_PATTERN",
    "Candle",
    "CandleRows",
    "ErrorResponse",
    "FeedbackAttribution",
    "FeedbackRequest",
    "FeedbackResponse",
    "HealthResponse",
    "MemberOut",
    "ModelEntry",
    "ModelsResponse",
    "PredictRequest",
    "PredictResponse",
    "RegimeModels",
    "RegimeOut",
    "RugpullFeature",
    "RugpullFeedbackRequest",
    "RugpullFeedbackResponse",
    "RugpullRequest",
    "RugpullResponse",
    "SignalOut",
    "ValidationErrorItem",
    "ValidationErrorResponse",
]

#: Candles one predict request may carry (about 60 days of 5m bars; the body limit applies too).
MAX_CANDLES = 20_000
#: Timestamps are below 2**53 ms (the year 287396): exact through float64 on the vectorized path.
MAX_TIMESTAMP = 2**53
#: Bound of every amount a trade reports (prices, quantity, pnl, fees): far beyond any real trade
#: (a quintillion units of the quote currency), far inside float64, so ``pnl - fees`` times a
#: member's weight stays finite (1e308 - -1e308 does not).
MAX_AMOUNT = 1e18
#: Bound of a rug-pull feature's value (the sample's are ratios, counts and rates below 1e4):
#: larger values overflow the model's float32 input.
MAX_FEATURE = 1e12
#: What ``market.series.normalize_symbol`` accepts (``BTC/USDT``, ``btc-usdt``, ``BTC_USDT``),
#: as a JSON-schema pattern so that clients and schema-driven tests see the rule.
SYMBOL_PATTERN = r"^[A-Za-z0-9]{1,20}[-_/][A-Za-z0-9]{1,20}$"

Direction = Literal[-1, 0, 1]
#: Numbers are strict, as the schema says: ``true`` or ``"12"`` is not a number (pydantic's lax
#: mode took them as 1.0 and 12.0); a JSON integer is a float's value.
Number = Annotated[FiniteFloat, Strict()]
#: Open time in integer milliseconds UTC (strict: not ``1.0``, ``true`` or ``"1"``).
Timestamp = Annotated[int, Strict(), Field(ge=0, lt=MAX_TIMESTAMP)]
Candle = tuple[Timestamp, Number, Number, Number, Number, Number]
#: An amount's upper bound; its lower one is the field's (a Field(ge=...) here would replace it).
Amount = Annotated[Number, Field(le=MAX_AMOUNT)]
#: Request ids and model versions as the service mints them (hex), with room for a bot's own.
_ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PredictRequest(_Strict):
    """``POST /v1/predict``: the series to call, with its recent candles (else the store's)."""

    exchange: str = Field("binance", pattern=r"^[a-z0-9]+$", max_length=32)
    symbol: str = Field(
        ..., min_length=3, max_length=41, pattern=SYMBOL_PATTERN, examples=["BTC/USDT"]
    )
    timeframe: str = Field("1h", examples=["1h"], json_schema_extra={"enum": list(TIMEFRAMES)})
    candles: list[Candle] | None = Field(
        None,
        max_length=MAX_CANDLES,
        description="Recent OHLCV rows [timestamp ms, open, high, low, close, volume], oldest "
        "first; when absent the store's latest candles of the series are used.",
    )

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, value: str) -> str:
        return normalize_symbol(value)

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        timeframe_ms(value)  # raises naming the known timeframes
        return value

    @field_validator("candles")
    @classmethod
    def _candles(cls, rows: list[Candle] | None, info: ValidationInfo) -> list[Candle] | None:
        if rows is None:
            return None
        if not rows:
            raise ValueError("candles must hold at least one row; omit it to use the store's")
        checked = CandleRows(rows)
        timeframe = info.data.get("timeframe")  # validated before candles (declared first)
        if timeframe is not None:  # else the timeframe's own error answers
            _candles_ok(checked.array, timeframe)
        return checked


class CandleRows(list[Candle]):
    """Validated candle rows, also as one float64 array (``array``: rows x 6), made once by the
    validator, which checks it, for the service to read (``serving.ensemble.candle_columns``)."""

    def __init__(self, rows: list[Candle]) -> None:
        super().__init__(rows)
        self.array = np.array(rows, dtype=np.float64).reshape(len(rows), 6)


_SHOWN_PROBLEMS = 3  # candle problems spelled out in a 422 message; the rest are counted


def _candles_ok(values: np.ndarray, timeframe: str) -> None:
    """Raise ValueError naming ``candles[i]``, the field and the value unless every row is a
    valid candle of ``timeframe``: ``data import``'s rules (``market.validation``: signs, high and
    low bounds, the timeframe's grid, increasing times, and the ``validation.*`` plausibility
    limits of configs/defaults.yaml), in one vectorized pass when the rows are good."""
    try:
        validate_candle_array(values, timeframe, plausibility=_plausibility())
    except CandleValidationError as error:
        shown = [
            _ROW.sub(r"candles[\1]", f"row {p.row}: {p.detail}")
            for p in error.problems[:_SHOWN_PROBLEMS]
        ]
        more = len(error.problems) - len(shown)
        tail = f" (and {more} more problems)" if more > 0 else ""
        raise ValueError("; ".join(shown) + tail) from None


_ROW = re.compile(r"\brow (\d+)")


@functools.cache
def _plausibility() -> Plausibility:
    """The ``validation:`` limits of configs/defaults.yaml, the ones ``data import`` applies."""
    from cluster.config import load_config  # the config tree, read once per process

    return load_config().validation.to_plausibility()


class RegimeOut(_Strict):
    """The live regime (``market.regimes``) of the last candle, and how far inside it it sits
    (0 on a boundary, 1 a full threshold away); None without a full regime window."""

    name: str | None
    confidence: float | None


class SignalOut(_Strict):
    """The ensemble's call. ``direction`` 0 with a ``reason`` when it will not call."""

    direction: Direction
    score: float = Field(..., ge=-1.0, le=1.0)
    confidence: float = Field(..., ge=0.0, le=1.0)
    reason: str | None = None


class MemberOut(_Strict):
    """One champion's call: ``position`` is its position rule (``agents.positions``) replayed
    over its recent scores, times its inference ``size``; ``vote`` is the position's sign (with
    the plain threshold rule: ``sign(score)`` when ``|score|`` exceeds its threshold)."""

    agent_id: str
    run_id: str
    specialty: str
    regime: str
    generation: int = Field(..., ge=0)
    vote: Direction
    score: float
    weight: float
    position: float = Field(..., ge=-1.0, le=1.0, description="Its own position in [-1, 1].")
    symbols: list[str] | None = Field(
        None, description="The symbols its model was trained on (null: not recorded)."
    )
    reason: str | None = Field(
        None,
        description="Why it abstained (vote 0, weight 0), e.g. a symbol it was not "
        "trained on; null when it voted.",
    )


class PredictResponse(_Strict):
    request_id: str = Field(..., description="Quote it in /v1/feedback.")
    as_of: Timestamp = Field(..., description="Open time (ms UTC) of the last candle read.")
    exchange: str
    symbol: str
    timeframe: str
    regime: RegimeOut
    signal: SignalOut
    position_size: float = Field(..., ge=0.0, le=1.0)
    members: list[MemberOut]
    combiner: str = Field(..., description="How the votes were combined (see serving.ensemble).")
    model_version: str


class RugpullRequest(_Strict):
    """``POST /v1/rugpull``: a token's raw on-chain features, by the data set's column names."""

    features: dict[
        Annotated[str, Field(max_length=64)],
        Annotated[Number, Field(ge=-MAX_FEATURE, le=MAX_FEATURE)],
    ] = Field(..., min_length=1, max_length=64)


class RugpullFeature(_Strict):
    name: str
    value: float
    attribution: float = Field(
        ..., description="Gradient x input of the logit on the standardized input."
    )


class RugpullResponse(_Strict):
    request_id: str | None = Field(
        None,
        description="Quote it in /v1/rugpull/feedback once the token's outcome is known; None "
        "when no champion answered (nothing is remembered).",
    )
    probability: float | None = Field(None, ge=0.0, le=1.0)
    is_rugpull: bool | None = None
    threshold: float | None = None
    top_features: list[RugpullFeature]
    agent_id: str | None = None
    run_id: str | None = None
    reason: str | None = None
    model_version: str


class RugpullFeedbackRequest(_Strict):
    """``POST /v1/rugpull/feedback``: what a token answered by ``/v1/rugpull`` turned out to be."""

    request_id: str = Field(..., min_length=1, max_length=64, pattern=_ID_PATTERN)
    is_rugpull: Annotated[bool, Strict()] = Field(..., description="True: it was a rug pull.")
    note: str | None = Field(
        None, max_length=1000, pattern=r"^[^\x00]*$", description="No NUL characters."
    )  # PostgreSQL's text cannot hold NUL


class RugpullFeedbackResponse(_Strict):
    """The outcome stored (``duplicate``: reported already, nothing changed), the champion that
    answered, and its stage after the live rule with the reason (None when it no longer moves:
    another champion, a stage that does not answer, or a replayed report)."""

    request_id: str
    duplicate: bool
    agent_id: str
    run_id: str
    stage: str | None = None
    reason: str | None = None


class FeedbackRequest(_Strict):
    """``POST /v1/feedback``: the outcome of a trade a bot made on a prediction."""

    request_id: str = Field(..., min_length=1, max_length=64, pattern=_ID_PATTERN)
    model_version: str = Field(..., min_length=1, max_length=64, pattern=_ID_PATTERN)
    exchange: str = Field("binance", pattern=r"^[a-z0-9]+$", max_length=32)
    symbol: str = Field(
        ..., min_length=3, max_length=41, pattern=SYMBOL_PATTERN, examples=["BTC/USDT"]
    )
    side: Literal["long", "short"]
    entry_ts: Timestamp = Field(
        ..., description="ms UTC; not before the prediction's last candle (its as_of)."
    )
    exit_ts: Timestamp = Field(..., description="ms UTC")
    entry_price: Amount = Field(..., gt=0)
    exit_price: Amount = Field(..., gt=0)
    pnl: Amount = Field(..., ge=-MAX_AMOUNT, description="In quote currency, before fees.")
    fees: Amount = Field(..., ge=0)
    qty: Amount | None = Field(None, gt=0)

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, value: str) -> str:
        return normalize_symbol(value)

    @model_validator(mode="after")
    def _times(self) -> FeedbackRequest:
        if self.exit_ts < self.entry_ts:
            raise ValueError(f"exit_ts {self.exit_ts} is before entry_ts {self.entry_ts}")
        return self


class FeedbackAttribution(_Strict):
    agent_id: str
    was_correct: bool
    profit_contribution: float


class FeedbackResponse(_Strict):
    trade_id: int = Field(..., ge=1)
    duplicate: bool
    attributed: list[FeedbackAttribution]


class ModelEntry(_Strict):
    """A champion row as serving sees it; ``reason`` says why it does not vote when it does not."""

    agent_id: str
    run_id: str
    specialty: str
    regime: str
    generation: int | None = Field(..., ge=0)
    stage: str
    sharpe: float | None
    threshold: float | None
    live: bool
    reason: str | None = None
    auc: float | None = Field(None, description="A classifier's out-of-sample AUC.")
    auc_low: float | None = Field(None, description="Its DeLong 95% interval's lower bound.")
    auc_high: float | None = Field(None, description="Its DeLong 95% interval's upper bound.")
    symbols: list[str] | None = Field(
        None,
        description="The symbols its model was trained on; it abstains on any other "
        "(null: not recorded, or not a per-symbol model).",
    )


class RegimeModels(_Strict):
    members: list[ModelEntry]
    combiner: str


class ModelsResponse(_Strict):
    model_version: str
    brain_version: str | None
    loaded_at: str
    swaps: int = Field(..., ge=0)
    regimes: dict[str, RegimeModels]
    rugpull: ModelEntry | None
    unavailable: list[ModelEntry]


class HealthResponse(_Strict):
    """``GET /healthz``: 200 with ``status`` "ok", or 503 with "unhealthy" and the ``reason``
    (the store cannot be read, or no champion is loaded: ``serving.app.RedlineAPI.check_health``).
    """

    status: Literal["ok", "unhealthy"]
    store: str = Field(..., description="The database the replica reads (password masked).")
    home: str = Field(..., description="The data root the replica reads (REDLINE_HOME).")
    champions: int = Field(
        ..., ge=0, description="Champions loaded: voting members of every regime and rug-pull."
    )
    model_version: str
    swaps: int = Field(..., ge=0)
    reason: str | None = None


class ErrorResponse(_Strict):
    """An error answer: 401 (token), 404 (unknown prediction), 409 (another trade on it), 413
    (body too large)."""

    detail: str


class ValidationErrorItem(BaseModel):
    """One refused field: ``loc`` is its path (``["body", "candles", 3, 1]``), ``msg`` the rule."""

    loc: list[str | int]
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class ValidationErrorResponse(_Strict):
    """422: the request's fields that break the schema or a rule."""

    detail: list[ValidationErrorItem]
