"""The seven specialties: what each child eats, what it predicts, and the genes it carries.

Gene names are the ones the trainer reads (``genome.as_dict().get(name, default)``): ``lookback``
(rows of history the model sees), ``feature_set`` (a key of the dataset's ``feature_sets``),
``horizon`` (label horizon in bars), ``hidden``, ``depth``, ``dropout``, ``lr`` (log scale),
``epochs``, ``threshold`` (``|score|`` needed to take a position), ``weight_decay`` (log scale)
and ``batch_size``. A specialty declares only the genes it uses.

Bounds are sized for a 2-core CPU: a child trains on ~10k rows in a few seconds, so hidden sizes
stay at 64 or below, depth at 3, epochs at 12. ``feature_set`` choices are exactly the keys the
builders in :mod:`agents.datasets` put in ``Dataset.feature_sets`` (``FEATURE_SETS`` below, checked
when a dataset is built).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agents.genome import ChoiceGene, FloatGene, Gene, GenomeSpace, IntGene

__all__ = [
    "FEATURE_SETS",
    "SPECIALTIES",
    "TASKS",
    "Specialty",
    "Task",
    "get_specialty",
]

Task = Literal["direction", "rank", "classify"]
TASKS: tuple[str, ...] = ("direction", "rank", "classify")

#: The ``feature_sets`` keys each specialty's datasets carry, in the order its gene lists them.
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "technical_analyst": ("fast", "slow", "all"),
    "volume_hunter": ("fast", "slow", "all"),
    "market_scanner": ("fast", "slow", "all"),
    "whale_watcher": ("flow", "price", "all"),
    "sentiment_scout": ("price", "sentiment", "all"),
    "rugpull_detector": ("activity", "holders", "all"),
    "report_coordinator": ("members", "consensus", "all"),
}


@dataclass(frozen=True)
class Specialty:
    """One kind of child: its data, its task and the space its genomes are drawn from."""

    name: str
    description: str
    task: Task
    space: GenomeSpace
    inputs: str

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}; got {self.task!r}")
        if self.space.specialty != self.name:
            raise ValueError(
                f"specialty {self.name!r}: its genome space is for {self.space.specialty!r}"
            )


def _model_genes(hidden: int = 64, depth: int = 3, dropout: float = 0.4) -> tuple[Gene, ...]:
    """Network size and optimisation genes every specialty shares (bounds for a 2-core CPU)."""
    return (
        IntGene("hidden", 8, hidden),
        IntGene("depth", 1, depth),
        FloatGene("dropout", 0.0, dropout),
        FloatGene("lr", 1e-4, 1e-2, log=True),
        IntGene("epochs", 2, 12),
        FloatGene("weight_decay", 1e-6, 1e-2, log=True),
        ChoiceGene("batch_size", (64, 128, 256)),
    )


def _series_space(name: str, *, lookback: int = 24, horizon: int = 24) -> GenomeSpace:
    """A space for a model that reads ``lookback`` rows of a time series and trades on its score."""
    return GenomeSpace(
        name,
        (
            IntGene("lookback", 1, lookback),
            ChoiceGene("feature_set", FEATURE_SETS[name]),
            IntGene("horizon", 1, horizon),
            *_model_genes(),
            # Up to 0.8: selective children trade less and pay less in fees.
            FloatGene("threshold", 0.0, 0.8),
        ),
    )


def _specialties() -> dict[str, Specialty]:
    items = [
        Specialty(
            "technical_analyst",
            "Reads price indicators (returns, moving-average gaps, RSI, ATR, MACD, Bollinger "
            "width, realized volatility) at fast and slow windows and calls the direction.",
            "direction",
            _series_space("technical_analyst"),
            "OHLCV candles of each run symbol from the store; features of market.features at "
            "fast and slow windows",
        ),
        Specialty(
            "volume_hunter",
            "Reads volume: z-scores, relative volume, volume against range (effort vs result), "
            "signed-volume and money flows, VWAP gaps; calls the direction.",
            "direction",
            _series_space("volume_hunter"),
            "OHLCV candles of each run symbol from the store; volume-centred features",
        ),
        Specialty(
            "market_scanner",
            "Ranks the symbols of a panel by their expected return: cross-sectional momentum "
            "ranks and returns relative to the panel.",
            "rank",
            _series_space("market_scanner"),
            "OHLCV candles of all run symbols, aligned on common timestamps (a panel)",
        ),
        Specialty(
            "whale_watcher",
            "Watches large prints: share of volume from trades above a trailing size quantile, "
            "their buy/sell imbalance and count per bar, plus the flow of all trades.",
            "direction",
            # 5m bars of a few days of trades (~1.5k bars): an hour of lookback and horizon.
            _series_space("whale_watcher", lookback=12, horizon=12),
            "public trades files (timestamp,price,amount,side) turned into 5m candles and "
            "per-bar whale-flow features",
        ),
        Specialty(
            "sentiment_scout",
            "Reads the crypto Fear & Greed index and the social sentiment streams, each lagged "
            "one day (a daily value is known only once its day ends), beside a few price features.",
            "direction",
            _series_space("sentiment_scout"),
            "BTC candles from the store, Fear & Greed (daily), social sentiment streams (daily)",
        ),
        Specialty(
            "rugpull_detector",
            "Classifies Uniswap V2 tokens as rug pulls from 18 on-chain features (about 9 in 10 "
            "tokens of the data set are rug pulls: judged by AUC, precision and recall).",
            "classify",
            # Tokens are not a time series: no lookback, no horizon, no trading threshold.
            GenomeSpace(
                "rugpull_detector",
                (ChoiceGene("feature_set", FEATURE_SETS["rugpull_detector"]), *_model_genes()),
            ),
            "rugpull_uniswapv2_tokens.csv.gz: 18 token features and is_rugpull",
        ),
        Specialty(
            "report_coordinator",
            "Combines the other children: learns from their out-of-sample scores (and their "
            "consensus) when to trust whom; the champion per regime is the mother brain.",
            "direction",
            GenomeSpace(
                "report_coordinator",
                (
                    IntGene("lookback", 1, 8),
                    ChoiceGene("feature_set", FEATURE_SETS["report_coordinator"]),
                    IntGene("horizon", 1, 24),
                    *_model_genes(hidden=32, depth=2, dropout=0.3),
                    # Up to 0.8: selective children trade less and pay less in fees.
                    FloatGene("threshold", 0.0, 0.8),
                ),
            ),
            "other children's out-of-sample scores on a shared base series (stacked_dataset)",
        ),
    ]
    return {item.name: item for item in items}


#: Every specialty by name, in the order DESIGN.md lists them.
SPECIALTIES: dict[str, Specialty] = _specialties()


def get_specialty(name: str) -> Specialty:
    """The specialty called ``name``; an unknown name raises naming the known ones."""
    try:
        return SPECIALTIES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"specialty must be one of {', '.join(SPECIALTIES)}; got {name!r}"
        ) from None
