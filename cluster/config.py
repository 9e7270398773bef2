"""One typed, frozen configuration tree, read from ``configs/*.yaml``.

``configs/defaults.yaml`` is always read first; a file named with ``--config`` is merged on top of it
(mappings key by key, everything else replaced). Unknown keys are refused and every error names the
dotted key (``fetch.max_retries``). Secrets come only from the environment and are never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from market.backtest import DEFAULT_FEE_BPS
from market.regimes import RegimeRules, RuleError
from market.validation import DEFAULT_PLAUSIBILITY, Plausibility
from store.paths import absolute_home, local_home

if TYPE_CHECKING:
    from evolution.champions import ChampionPolicy

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DEFAULTS_FILE = CONFIG_DIR / "defaults.yaml"
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "market" / "sample"


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the dotted key."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Frozen):
    home: Path = Path("./redline_data")
    default_exchange: str = "binance"

    @field_validator("home", mode="before")
    @classmethod
    def _local(cls, value: object) -> object:
        # Before pydantic makes it a Path: Path("s3://b/x") is the folder "s3:/b/x".
        if isinstance(value, str | os.PathLike):
            local_home(value, "data.home")
        return value


class FetchConfig(_Frozen):
    page_limit: int = Field(1000, ge=1, le=5000)
    max_retries: int = Field(6, ge=0, le=50)
    backoff_initial_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    timeout_ms: int = Field(10_000, ge=100)
    enable_rate_limit: bool = True


class EvolveDataConfig(_Frozen):
    exchange: str = "binance"
    timeframe: str = "1h"
    symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
    start: str | None = None  # e.g. 2023-01-01; None is everything stored
    end: str | None = None
    import_sample: bool = True  # import the shipped sample when the store lacks a series
    fear_greed: Path | None = SAMPLE_DIR / "feargreed_crypto_1d.csv.gz"
    social_sentiment: Path | None = None
    trades: tuple[Path, ...] = (SAMPLE_DIR / "kraken_BTC-USDT_trades.csv.gz",)
    rugpull_tokens: Path | None = SAMPLE_DIR / "rugpull_uniswapv2_tokens.csv.gz"


class KillConfig(_Frozen):
    min_hit_rate: float = Field(0.5, ge=0, le=1)
    bottom_quantile: float = Field(0.25, ge=0, le=1)
    protect_elites: int = Field(2, ge=0)


class OperatorConfig(_Frozen):
    prob: float = Field(0.7, ge=0, le=1)
    eta: float = Field(15.0, gt=0)
    indpb: float = Field(0.5, ge=0, le=1)


class MutationConfig(_Frozen):
    """Every child is mutated after crossover; each gene with probability ``indpb``."""

    eta: float = Field(20.0, gt=0)
    indpb: float = Field(0.2, ge=0, le=1)


class TrainingConfig(_Frozen):
    fee_bps: float = Field(DEFAULT_FEE_BPS, ge=0)
    torch_threads: int = Field(1, ge=1)
    child_timeout_s: float = Field(600.0, gt=0)
    retries: int = Field(1, ge=0)


class ClusterConfig(_Frozen):
    address: str | None = None  # None: a local Ray started on demand (or RAY_ADDRESS)
    num_cpus: int | None = None  # for a local Ray; None is every core
    num_actors: int | None = None  # child actors in the pool; None is the cluster's CPUs


class EvolveConfig(_Frozen):
    seed: int = Field(42, ge=0)
    generations: int = Field(3, ge=1)
    # Import paths ("package.module:ATTRIBUTE") of plug-in specialties the population may name;
    # loaded when the config is validated, and by the Mother actor (agents.specialties).
    plugins: tuple[str, ...] = ()
    population: dict[str, int]
    data: EvolveDataConfig = EvolveDataConfig()
    # The candle specialties (technical_analyst, volume_hunter) train one model on every run
    # symbol's rows and are scored on every symbol (agents.datasets.pooled); false: on the first
    # symbol's dataset only, as before.
    pooled: bool = True
    selection: str = "nsga2"
    weights: tuple[float, float, float] = (1.0, 0.5, 1.0)
    kill: KillConfig = KillConfig()
    crossover: OperatorConfig = OperatorConfig()
    mutation: MutationConfig = MutationConfig()
    hall_of_fame: int = Field(5, ge=1)
    coordinator_members: int = Field(2, ge=1)
    training: TrainingConfig = TrainingConfig()
    cluster: ClusterConfig = ClusterConfig()

    @field_validator("selection")
    @classmethod
    def _selection(cls, value: str) -> str:
        if value not in ("nsga2", "tournament"):
            raise ValueError(f"must be 'nsga2' or 'tournament'; got {value!r}")
        return value

    @field_validator("plugins")
    @classmethod
    def _plugins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from agents.specialties import load_plugins

        load_plugins(value)  # before population: it may name them
        return value

    @field_validator("population")
    @classmethod
    def _population(cls, value: dict[str, int]) -> dict[str, int]:
        from agents.specialties import SPECIALTIES

        for name, size in value.items():
            if name not in SPECIALTIES:
                raise ValueError(
                    f"must name specialties among {', '.join(SPECIALTIES)}; got {name!r}"
                )
            if size < 2:
                raise ValueError(f"{name} needs at least 2 children; got {size}")
        return value


class ClassifierChampionsConfig(_Frozen):
    """The classifier rules' thresholds (``evolution.champions.ClassifierPolicy``): a classify
    specialty (the rug-pull detector) is crowned when the lower bound of its out-of-sample AUC's
    interval at ``level`` reaches ``auc_floor`` and its AUC beats the champion's by ``margin``;
    its live AUC moves its stage after ``min_live_labels`` labelled answers."""

    auc_floor: float = Field(0.85, ge=0, le=1)
    margin: float = Field(0.01, ge=0, lt=1)
    level: float = Field(0.95, gt=0, lt=1)
    min_live_labels: int = Field(50, ge=4)


class ChampionsConfig(_Frozen):
    """The champion rules' thresholds (``evolution.champions.ChampionPolicy``).

    Not part of a run's identity: the same run judged under another policy is the same run.
    """

    margin: float = Field(0.25, ge=0, allow_inf_nan=False)  # annualized Sharpe over the champion
    dsr_threshold: float = Field(0.95, ge=0, le=1)
    min_regime_bars: int = Field(200, ge=2)  # out-of-sample bars of the regime
    min_live_trades: int = Field(20, ge=1)
    classifier: ClassifierChampionsConfig = ClassifierChampionsConfig()

    def to_policy(self, overrides: Mapping[str, Any] | None = None) -> ChampionPolicy:
        """The policy, with ``overrides`` (e.g. a grid's ``champions:``) validated on top; a bad
        override raises ConfigError naming ``champions.<key>``."""
        from evolution.champions import ChampionPolicy, ClassifierPolicy

        config = self
        if overrides:
            try:
                merged = _merge(self.model_dump(), dict(overrides))
                config = ChampionsConfig.model_validate(merged)
            except ValidationError as exc:
                raise ConfigError(_problems("champions", exc)) from None
        return ChampionPolicy(
            margin=config.margin,
            dsr_threshold=config.dsr_threshold,
            min_regime_bars=config.min_regime_bars,
            min_live_trades=config.min_live_trades,
            classifier=ClassifierPolicy(**config.classifier.model_dump()),
        )

    def changed_from_defaults(self) -> list[str]:
        """``"<dotted key> <value> (default <value>)"`` for every rule set away from the project's
        defaults: what a demo or smoke config must print when it lowers a bar."""
        mine, default = self.model_dump(), ChampionsConfig().model_dump()
        out = [
            f"champions.classifier.{key} {value} (default {default['classifier'][key]})"
            for key, value in mine.pop("classifier").items()
            if value != default["classifier"][key]
        ]
        default.pop("classifier")
        return [
            f"champions.{key} {value} (default {default[key]})"
            for key, value in mine.items()
            if value != default[key]
        ] + out


class ValidationConfig(_Frozen):
    """What a real candle price can be (``market.validation.Plausibility``): import, the store's
    writes and the serving API refuse the rest, naming the row, the field and the value."""

    min_price: float = Field(DEFAULT_PLAUSIBILITY.min_price, gt=0, allow_inf_nan=False)
    max_price: float = Field(DEFAULT_PLAUSIBILITY.max_price, gt=0, allow_inf_nan=False)
    max_bar_move: float = Field(DEFAULT_PLAUSIBILITY.max_bar_move, gt=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _consistent(self) -> ValidationConfig:
        self.to_plausibility()  # raises naming the keys (min_price below max_price)
        return self

    def to_plausibility(self) -> Plausibility:
        return Plausibility(**self.model_dump())


class ScheduleConfig(_Frozen):
    """The living loop's schedules: cron expressions (five fields, UTC; ``live/schedule.py``).
    Jobs due at the same minute run in this order. A job whose time passed while the service was
    down runs once on restart (its latest missed slot), not once per missed slot."""

    collect: str = "0 * * * *"  # every candle close of a 1h series (plus collect_delay_s)
    label: str = "0 * * * *"
    answer: str = "0 * * * *"  # what Serve answers at each close, recorded for the equity report
    monitor: str = "0 * * * *"
    retrain: str = "0 */6 * * *"  # unless set: every live.retrain_hours (6)
    # The weekly evolution, Sunday 00:00 (null: off) and the nightly analysis slot (the bots'
    # trades: not built yet).
    evolve: str | None = "0 0 * * 0"
    analysis: str | None = "0 2 * * *"

    @field_validator("*")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        from croniter import croniter

        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"must be a cron expression like '0 * * * *' or null; got {value!r}")
        return value


class MonitorConfig(_Frozen):
    """The live kill rule: a voting champion whose hit rate over at least ``min_votes`` labelled
    votes falls below ``min_hit_rate`` goes to DECAY and stops voting."""

    min_votes: int = Field(50, ge=1)
    min_hit_rate: float = Field(0.5, ge=0, le=1)


class RetentionConfig(_Frozen):
    cleanup_every: int = Field(10, ge=1)  # retrains between two cleanups
    retention_days: int = Field(1095, ge=1)  # candles older than this, per timeframe
    max_training_examples: int = Field(50_000, ge=100)  # the newest rows a retrain trains on


class LiveConfig(_Frozen):
    """``redline live``: what to watch, how to collect it, and when to retrain (``live/``)."""

    exchange: str = "binance"
    timeframe: str = "1h"
    watch: tuple[str, ...] = ("BTC/USDT", "ETH/USDT")
    api_base: str | None = None  # None: the exchange itself; a URL: a proxy or a loopback
    history_days: int = Field(365, ge=1)  # how far back a newly watched series is fetched
    collect_delay_s: float = Field(
        10.0, ge=0
    )  # after each candle close, for the exchange to close it
    fear_greed: bool = True  # collect the daily Fear & Greed value too
    fear_greed_url: str = "https://api.alternative.me"
    label_horizon: int = Field(1, ge=1)  # bars: a vote's realized forward return
    auto_enable_threshold: int = Field(2000, ge=1)  # labelled examples before a series trains
    retrain_hours: int = Field(6, ge=1)
    expiration_hours: int = Field(72, ge=1)  # a champion not re-validated this long stops voting
    train_days: int = Field(365, ge=7)  # the window a retrain trains and is scored on
    history_bars: int = Field(1000, ge=50)  # candles each answer reads, as Serve's default
    evolve: EvolveConfig = EvolveConfig(
        seed=7,
        generations=1,
        population={"technical_analyst": 4, "volume_hunter": 4},
    )
    weekly_generations: int = Field(3, ge=1)  # the Sunday evolution's generations
    schedules: ScheduleConfig = ScheduleConfig()
    monitor: MonitorConfig = MonitorConfig()
    retention: RetentionConfig = RetentionConfig()

    @model_validator(mode="after")
    def _retrain_every(self) -> LiveConfig:
        if "retrain" not in self.schedules.model_fields_set:  # the schedule follows retrain_hours
            hours = self.retrain_hours
            if 24 % hours == 0:
                cron = "0 0 * * *" if hours == 24 else f"0 */{hours} * * *"
            elif hours % 24 == 0:
                cron = f"0 0 */{hours // 24} * *"
            else:
                raise ValueError(
                    f"retrain_hours must divide 24 or be whole days to make a schedule; got "
                    f"{hours} (or set schedules.retrain to a cron expression)"
                )
            schedules = self.schedules.model_copy(update={"retrain": cron})
            object.__setattr__(self, "schedules", schedules)  # frozen: set once, while validating
        unsupported = set(self.evolve.population) - {
            "technical_analyst", "volume_hunter", "sentiment_scout", "report_coordinator"
        }  # fmt: skip
        if unsupported:
            raise ValueError(
                f"live.evolve.population: the living loop retrains candle specialties "
                f"(technical_analyst, volume_hunter, sentiment_scout, report_coordinator); "
                f"got {', '.join(sorted(unsupported))}"
            )
        return self


class RedlineConfig(_Frozen):
    data: DataConfig = DataConfig()
    fetch: FetchConfig = FetchConfig()
    validation: ValidationConfig = ValidationConfig()
    # The one home of the regime rules: a run stores them (``RunRecord.settings``), the
    # regime_definitions table is synced from them, Serve labels a champion's bars with its run's.
    regimes: RegimeRules = RegimeRules()
    champions: ChampionsConfig = ChampionsConfig()
    evolve: EvolveConfig | None = None
    live: LiveConfig | None = None

    def require_live(self, source: str) -> LiveConfig:
        if self.live is None:
            raise ConfigError(f"{source} has no 'live' section (see configs/live.yaml)")
        return self.live

    def require_evolve(self, source: str) -> EvolveConfig:
        if self.evolve is None:
            raise ConfigError(f"{source} has no 'evolve' section (see configs/evolve-smoke.yaml)")
        return self.evolve


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"config file {str(path)!r} must hold a mapping; got {type(loaded).__name__}"
        )
    return loaded


def load_config(path: str | Path | None = None) -> RedlineConfig:
    """The defaults, with ``path`` merged on top when given."""
    raw = _read_yaml(DEFAULTS_FILE)
    source = str(DEFAULTS_FILE)
    if path is not None:
        raw = _merge(raw, _read_yaml(Path(path)))
        source = str(path)
    try:
        return RedlineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: " + _problems("", exc)) from None


def _problems(prefix: str, exc: ValidationError) -> str:
    """Every error of ``exc`` as ``dotted.key: message (got value)``, joined by ``; ``."""
    problems = []
    for error in exc.errors():
        loc, message = tuple(error["loc"]), error["msg"]
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, RuleError):  # a plain dataclass's check names its own field
            loc, message = (*loc, cause.field), cause.detail
            if cause.field in (error.get("input") or {}):
                error = {**error, "input": error["input"][cause.field]}
        key = ".".join(str(part) for part in (prefix, *loc) if part != "")
        value = error.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        problems.append(f"{key}: {message}{shown}")
    return "; ".join(problems)


def data_home(config: RedlineConfig | None = None) -> Path:
    """``REDLINE_HOME`` when set, else the config's ``data.home``; made absolute (against the
    working directory), since paths under it are stored in the database."""
    env = os.environ.get("REDLINE_HOME")
    if env:
        return absolute_home(env, "REDLINE_HOME")
    return absolute_home((config or load_config()).data.home, "data.home")
