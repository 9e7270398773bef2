"""The tables, as SQLAlchemy 2 typed models.

Four families: candles and their bookkeeping (``market_data``, ``regime_definitions``,
``series_cursors``, ``series_gaps``; repository ``store.candles.CandleStore``, ``store.regimes.RegimeStore``), the population of an
evolution run (``runs``, ``agents``, ``generations``, ``kills``, ``regime_best_models``; repository
``store.runs.RunStore``; ``store.champions.ChampionStore`` writes ``regime_best_models``), training with Ray Tune and the champions (``training_runs``,
``inference_backtests``, ``training_queue``, ``promotions``; repository
``store.training.TrainingStore``), and serving's feedback (``predictions``, ``trades``,
``trade_attributions``; repository ``store.trades.TradesStore``; and the rug-pull detector's
``rugpull_answers``, ``rugpull_outcomes``: ``store.rugpulls.RugpullStore``). JSON columns hold canonical
text (sorted keys) so that an upsert of an unchanged record compares equal and changes nothing.

The Alembic migrations in ``store/migrations/versions`` create these tables; they spell the schema
out on their own (so an old migration never changes when a model does) and a test checks that the
two agree on both backends. Repository code in ``store/db.py`` returns frozen dataclasses, never
these ORM objects.

Every timestamp column is UTC: candle and gap times are integer milliseconds since the epoch, and
bookkeeping times (``updated_at``, ``detected_at``) are timezone-aware ``datetime`` values.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Explicit constraint names: SQLite's batch migrations can only alter constraints that have names,
#: and the names are the same on every backend.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MARKET_DATA_UNIQUE = "uq_market_data_series_ts"
SERIES_GAPS_UNIQUE = "uq_series_gaps_series_start"

# SQLite only auto-numbers a column declared exactly ``INTEGER PRIMARY KEY`` (the rowid alias).
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC ``datetime`` on every backend.

    SQLite keeps no zone, so values come back naive; they were written as UTC, so UTC is attached on
    the way out. Naive values going in are refused: their zone would be a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"timestamps must be timezone-aware (UTC); got naive {value!r}")
        utc = value.astimezone(UTC)
        # SQLite stores the text form; without the offset every row reads back the same way.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class MarketData(Base):
    """One candle; ``ts`` is its open time in ms UTC, on the timeframe's grid."""

    __tablename__ = "market_data"
    __table_args__ = (
        UniqueConstraint("exchange", "symbol", "timeframe", "ts", name=MARKET_DATA_UNIQUE),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    timeframe: Mapped[str] = mapped_column(String(8))
    ts: Mapped[int] = mapped_column(BigInteger)
    open: Mapped[float] = mapped_column(Double)
    high: Mapped[float] = mapped_column(Double)
    low: Mapped[float] = mapped_column(Double)
    close: Mapped[float] = mapped_column(Double)
    volume: Mapped[float] = mapped_column(Double)


class RegimeDefinition(Base):
    """One regime rule; rules are tried in ``priority`` order (0 first)."""

    __tablename__ = "regime_definitions"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    priority: Mapped[int] = mapped_column(Integer)
    trend_min: Mapped[float | None] = mapped_column(Double)
    trend_max: Mapped[float | None] = mapped_column(Double)
    vol_min: Mapped[float | None] = mapped_column(Double)
    vol_max: Mapped[float | None] = mapped_column(Double)
    window: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SeriesCursor(Base):
    """How far a series has been fetched without holes: ingestion resumes after ``last_ts``."""

    __tablename__ = "series_cursors"

    exchange: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    timeframe: Mapped[str] = mapped_column(String(8), primary_key=True)
    last_ts: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SeriesGap(Base):
    """A run of missing candles, ``start_ts`` to ``end_ts`` inclusive (open times)."""

    __tablename__ = "series_gaps"
    __table_args__ = (
        UniqueConstraint("exchange", "symbol", "timeframe", "start_ts", name=SERIES_GAPS_UNIQUE),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    timeframe: Mapped[str] = mapped_column(String(8))
    start_ts: Mapped[int] = mapped_column(BigInteger)
    end_ts: Mapped[int] = mapped_column(BigInteger)
    missing: Mapped[int] = mapped_column(Integer)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime())


# -- the population (migration 0003) -----------------------------------------------------------

#: Agent ids are unique within a run only (``ta-g002-003``: the same root seed gives the same ids in
#: every run), so the run id is part of every key that names an agent.
_ID = String(64)
_DIGEST = String(64)  # SHA-256, hex


class Run(Base):
    """One evolution run: its config (canonical JSON and hash), root seed and progress."""

    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(_ID, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))
    config_json: Mapped[str] = mapped_column(Text)
    config_hash: Mapped[str] = mapped_column(_DIGEST)
    root_seed: Mapped[int] = mapped_column(BigInteger)
    generations_planned: Mapped[int] = mapped_column(Integer)
    generations_done: Mapped[int] = mapped_column(Integer)
    dataset_digests: Mapped[str] = mapped_column(Text)  # JSON {specialty: digest}
    # The rest of the run's config (every section but ``evolve``): migration 0007.
    settings_json: Mapped[str] = mapped_column(Text, server_default="{}")


class Agent(Base):
    """One child: its birth certificate (genome, parents, operators, seed) and its OOS scores."""

    __tablename__ = "agents"
    __table_args__ = (
        Index("ix_agents_run_id_generation", "run_id", "generation"),
        Index("ix_agents_run_id_specialty", "run_id", "specialty"),
    )

    run_id: Mapped[str] = mapped_column(
        _ID, ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    agent_id: Mapped[str] = mapped_column(_ID, primary_key=True)
    specialty: Mapped[str] = mapped_column(String(32))
    generation: Mapped[int] = mapped_column(Integer)
    genome_json: Mapped[str] = mapped_column(Text)
    genome_digest: Mapped[str] = mapped_column(_DIGEST)
    parents: Mapped[str] = mapped_column(
        Text
    )  # JSON agent ids: same run (ANCESTOR: an earlier one)
    operators: Mapped[str] = mapped_column(Text)  # JSON list of operator records
    seed: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    objectives: Mapped[str] = mapped_column(Text)  # JSON list of floats, all maximized
    sharpe: Mapped[float | None] = mapped_column(Double)
    max_drawdown: Mapped[float | None] = mapped_column(Double)
    hit_rate: Mapped[float | None] = mapped_column(Double)
    metrics_json: Mapped[str] = mapped_column(Text)
    per_regime_json: Mapped[str] = mapped_column(Text)
    train_seconds: Mapped[float | None] = mapped_column(Double)
    checkpoint_path: Mapped[str | None] = mapped_column(Text)
    checkpoint_sha256: Mapped[str | None] = mapped_column(_DIGEST)
    dataset_digest: Mapped[str] = mapped_column(_DIGEST)
    config_hash: Mapped[str] = mapped_column(_DIGEST)
    killed_generation: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Generation(Base):
    """One generation of one specialty's sub-population, as the Mother closed it."""

    __tablename__ = "generations"

    run_id: Mapped[str] = mapped_column(
        _ID, ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    specialty: Mapped[str] = mapped_column(String(32), primary_key=True)
    born: Mapped[int] = mapped_column(Integer)
    evaluated: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    killed: Mapped[int] = mapped_column(Integer)
    alive: Mapped[int] = mapped_column(Integer)
    best_fitness: Mapped[float | None] = mapped_column(Double)
    median_fitness: Mapped[float | None] = mapped_column(Double)
    best_agent_id: Mapped[str | None] = mapped_column(_ID)
    hall_of_fame: Mapped[str] = mapped_column(Text)  # JSON list of agent ids, best first
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Kill(Base):
    """One death: which child, in which generation, why (``FAILED``, ``LOW_HIT_RATE``, ...)."""

    __tablename__ = "kills"
    __table_args__ = (
        ForeignKeyConstraint(
            ["run_id", "agent_id"], ["agents.run_id", "agents.agent_id"], ondelete="CASCADE"
        ),
    )

    run_id: Mapped[str] = mapped_column(_ID, primary_key=True)
    agent_id: Mapped[str] = mapped_column(_ID, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    killed_at: Mapped[datetime] = mapped_column(UTCDateTime())


REGIME_BEST_UNIQUE = "uq_regime_best_models_run_specialty_regime"
#: A partial unique index: at most one champion per (specialty, regime), across every run.
REGIME_CHAMPION_UNIQUE = "uq_regime_best_models_champion"


class RegimeBestModel(Base):
    """A run's best out-of-sample model per (specialty, regime), with its lifecycle stage.

    ``run_id`` is an evolution run or a Tune experiment (``source``). The champion of a
    (specialty, regime) is the one row flagged ``is_champion`` (migration 0004).
    """

    __tablename__ = "regime_best_models"
    __table_args__ = (
        UniqueConstraint("run_id", "specialty", "regime", name=REGIME_BEST_UNIQUE),
        Index(
            REGIME_CHAMPION_UNIQUE,
            "specialty",
            "regime",
            unique=True,
            postgresql_where=text("is_champion"),
            sqlite_where=text("is_champion"),
        ),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(_ID, ForeignKey("runs.run_id", ondelete="CASCADE"))
    specialty: Mapped[str] = mapped_column(String(32))
    regime: Mapped[str] = mapped_column(String(32))
    agent_id: Mapped[str] = mapped_column(_ID)
    sharpe: Mapped[float | None] = mapped_column(Double)
    metrics_json: Mapped[str] = mapped_column(Text)
    stage: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(16), server_default="evolution")
    is_champion: Mapped[bool] = mapped_column(Boolean, server_default=false())
    dsr: Mapped[float | None] = mapped_column(Double)
    n_trials: Mapped[int | None] = mapped_column(Integer)
    checkpoint_path: Mapped[str | None] = mapped_column(Text)
    checkpoint_sha256: Mapped[str | None] = mapped_column(_DIGEST)
    inference_json: Mapped[str] = mapped_column(Text, server_default="{}")


# -- training with Ray Tune, and the champions (migration 0004) ----------------------------------


class TrainingRun(Base):
    """One trained config (keyed by its hash: one row per config, ever) of a Tune experiment.

    The experiment is a ``runs`` row (``tune-<grid_hash[:12]>``); ``model_path`` is relative to
    REDLINE_HOME.
    """

    __tablename__ = "training_runs"
    __table_args__ = (
        Index("ix_training_runs_experiment", "experiment"),
        Index("ix_training_runs_specialty_status", "specialty", "status"),
    )

    config_hash: Mapped[str] = mapped_column(_DIGEST, primary_key=True)
    experiment: Mapped[str] = mapped_column(_ID, ForeignKey("runs.run_id", ondelete="CASCADE"))
    specialty: Mapped[str] = mapped_column(String(32))
    dataset: Mapped[str] = mapped_column(String(128))
    config_json: Mapped[str] = mapped_column(Text)
    seed: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    metrics_json: Mapped[str] = mapped_column(Text)
    per_regime_json: Mapped[str] = mapped_column(Text)
    sharpe: Mapped[float | None] = mapped_column(Double)
    max_drawdown: Mapped[float | None] = mapped_column(Double)
    hit_rate: Mapped[float | None] = mapped_column(Double)
    model_path: Mapped[str | None] = mapped_column(Text)
    model_sha256: Mapped[str | None] = mapped_column(_DIGEST)
    dataset_digest: Mapped[str] = mapped_column(_DIGEST)
    train_seconds: Mapped[float | None] = mapped_column(Double)
    stage: Mapped[str] = mapped_column(String(16))
    kept: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class InferenceBacktest(Base):
    """One inference config (threshold, horizon, size) of a trained model, backtested OOS."""

    __tablename__ = "inference_backtests"

    config_hash: Mapped[str] = mapped_column(
        _DIGEST, ForeignKey("training_runs.config_hash", ondelete="CASCADE"), primary_key=True
    )
    inference_hash: Mapped[str] = mapped_column(_DIGEST, primary_key=True)
    inference_json: Mapped[str] = mapped_column(Text)
    metrics_json: Mapped[str] = mapped_column(Text)
    per_regime_json: Mapped[str] = mapped_column(Text)
    sharpe: Mapped[float | None] = mapped_column(Double)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TrainingQueueItem(Base):
    """One config waiting for (or done with) training; ``position`` is the order it was added."""

    __tablename__ = "training_queue"
    __table_args__ = (Index("ix_training_queue_status_position", "status", "position"),)

    config_hash: Mapped[str] = mapped_column(_DIGEST, primary_key=True)
    grid: Mapped[str] = mapped_column(String(128))
    grid_hash: Mapped[str] = mapped_column(_DIGEST)
    specialty: Mapped[str] = mapped_column(String(32))
    config_json: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Promotion(Base):
    """One champion decision (PROMOTED or REFUSED) with the metrics before and after."""

    __tablename__ = "promotions"
    __table_args__ = (Index("ix_promotions_specialty_regime", "specialty", "regime"),)

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    specialty: Mapped[str] = mapped_column(String(32))
    regime: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(16))
    challenger: Mapped[str] = mapped_column(Text)
    incumbent: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    before_json: Mapped[str] = mapped_column(Text)
    after_json: Mapped[str] = mapped_column(Text)
    dsr: Mapped[float | None] = mapped_column(Double)
    n_trials: Mapped[int] = mapped_column(Integer)
    margin: Mapped[float] = mapped_column(Double)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# -- serving's feedback (migration 0005) -----------------------------------------------------------


class Prediction(Base):
    """What one ``/v1/predict`` answered: the members, their votes and weights (JSON list)."""

    __tablename__ = "predictions"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(64))
    regime: Mapped[str] = mapped_column(String(32))
    members_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The series the prediction read (0006): None on predictions stored before.
    exchange: Mapped[str | None] = mapped_column(String(32), nullable=True)
    symbol: Mapped[str | None] = mapped_column(String(64), nullable=True)
    timeframe: Mapped[str | None] = mapped_column(String(8), nullable=True)
    as_of: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Trade(Base):
    """One trade a bot reported on a prediction: one per request id. Times in ms UTC."""

    __tablename__ = "trades"
    __table_args__ = (
        UniqueConstraint("request_id", name="uq_trades_request_id"),
        Index("ix_trades_exchange_symbol", "exchange", "symbol"),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(64))
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(8))
    entry_ts: Mapped[int] = mapped_column(BigInteger)
    exit_ts: Mapped[int] = mapped_column(BigInteger)
    entry_price: Mapped[float] = mapped_column(Double)
    exit_price: Mapped[float] = mapped_column(Double)
    qty: Mapped[float | None] = mapped_column(Double)
    pnl: Mapped[float] = mapped_column(Double)
    fees: Mapped[float] = mapped_column(Double)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TradeAttribution(Base):
    """One member's share of a trade: was its vote right, and what it contributed."""

    __tablename__ = "trade_attributions"
    __table_args__ = (Index("ix_trade_attributions_run_id_agent_id", "run_id", "agent_id"),)

    trade_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("trades.id", ondelete="CASCADE"), primary_key=True
    )
    run_id: Mapped[str] = mapped_column(_ID, primary_key=True)
    agent_id: Mapped[str] = mapped_column(_ID, primary_key=True)
    specialty: Mapped[str] = mapped_column(String(32))
    regime: Mapped[str] = mapped_column(String(32))
    vote: Mapped[int] = mapped_column(Integer)
    weight: Mapped[float] = mapped_column(Double)
    was_correct: Mapped[bool] = mapped_column(Boolean)
    profit_contribution: Mapped[float] = mapped_column(Double)


# -- the rug-pull detector's answers and their outcomes (migration 0008) ----------------------------


class RugpullAnswer(Base):
    """What one ``/v1/rugpull`` answered with a champion: the probability and the call."""

    __tablename__ = "rugpull_answers"
    __table_args__ = (Index("ix_rugpull_answers_run_id_agent_id", "run_id", "agent_id"),)

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[str] = mapped_column(String(64))
    probability: Mapped[float] = mapped_column(Double)
    is_rugpull: Mapped[bool] = mapped_column(Boolean)
    threshold: Mapped[float] = mapped_column(Double)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RugpullOutcome(Base):
    """What a token answered by a request id turned out to be: one per answer."""

    __tablename__ = "rugpull_outcomes"

    request_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("rugpull_answers.request_id", ondelete="CASCADE"), primary_key=True
    )
    is_rugpull: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# -- the living loop (migration 0009; store.live.LiveStore) -----------------------------------------


class LiveSeries(Base):
    """A watched series: when it was added, its labelled examples, when training turned on."""

    __tablename__ = "live_series"

    exchange: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    timeframe: Mapped[str] = mapped_column(String(8), primary_key=True)
    added_ms: Mapped[int] = mapped_column(BigInteger)
    labelled: Mapped[int] = mapped_column(Integer)
    enabled_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    label_cursor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class LiveJob(Base):
    """One schedule's last slot, its last start and finish, and their outcome."""

    __tablename__ = "live_jobs"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_slot_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    started_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    finished_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text)
    runs: Mapped[int] = mapped_column(Integer)


class LiveEvent(Base):
    """What the loop did or decided, at the loop's clock, with its numbers (JSON)."""

    __tablename__ = "live_events"
    __table_args__ = (Index("ix_live_events_at_ms", "at_ms"),)

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    at_ms: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(160))
    detail: Mapped[str] = mapped_column(Text)


class LiveAnswer(Base):
    """What the ensemble answered at the close of candle ``ts`` of a watched series."""

    __tablename__ = "live_answers"

    exchange: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    timeframe: Mapped[str] = mapped_column(String(8), primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    direction: Mapped[int] = mapped_column(Integer)
    size: Mapped[float] = mapped_column(Double)
    score: Mapped[float] = mapped_column(Double)
    regime: Mapped[str] = mapped_column(String(32))
    model_version: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class VoteLabel(Base):
    """A served member's vote with the realized forward return over its horizon."""

    __tablename__ = "vote_labels"
    __table_args__ = (Index("ix_vote_labels_run_id_agent_id", "run_id", "agent_id"),)

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    as_of: Mapped[int] = mapped_column(BigInteger)
    horizon: Mapped[int] = mapped_column(Integer)
    vote: Mapped[int] = mapped_column(Integer)
    forward_return: Mapped[float] = mapped_column(Double)
    hit: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    labelled_ms: Mapped[int] = mapped_column(BigInteger)


class ChampionValidation(Base):
    """One re-validation of a champion on the newest window: its numbers and the verdict."""

    __tablename__ = "champion_validations"
    __table_args__ = (Index("ix_champion_validations_run_id_agent_id", "run_id", "agent_id"),)

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    specialty: Mapped[str] = mapped_column(String(32))
    regime: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[str] = mapped_column(String(64))
    at_ms: Mapped[int] = mapped_column(BigInteger)
    window_from: Mapped[int] = mapped_column(BigInteger)
    window_to: Mapped[int] = mapped_column(BigInteger)
    bars: Mapped[int] = mapped_column(Integer)
    sharpe: Mapped[float | None] = mapped_column(Double, nullable=True)
    dsr: Mapped[float | None] = mapped_column(Double, nullable=True)
    passed: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
