"""What a specialty is: one frozen object carrying every fact about a kind of child.

Gene names are the ones the trainer reads (``genome.as_dict().get(name, default)``): ``lookback``
(rows of history the model sees), ``feature_set`` (a key of the dataset's ``feature_sets``),
``horizon`` (label horizon in bars), ``hidden``, ``depth``, ``dropout``, ``lr`` (log scale),
``epochs``, ``threshold`` (``|score|`` needed to take a position), ``weight_decay`` (log scale)
and ``batch_size``. A specialty declares only the genes it uses.

Position genes (:func:`position_genes`, read by ``agents.positions.PositionRule``; every trading
specialty carries them): ``band`` in [0, 0.3] (hysteresis below the threshold: a score must fall
that far under its entry edge before the position is cut), ``min_hold`` in [1, 24] bars (at most
one change of position a day on 1h bars), ``levels`` in [1, 4] (quantized sizes: 1 is
``{-1, 0, 1}``, 4 is steps of 0.25) and ``vol_target`` one of 0 (off), 0.25, 0.5, 0.75 or 1.0
annualized (1h crypto runs at about 0.4 to 0.9: a target under the realized volatility trades
smaller). A genome without them trades the plain threshold rule (band 0, min_hold 1, levels 1,
vol_target 0). ``vol_target`` is a choice so that "off" stays a value the Mother can pick.

Families and targets (``agents.models``, ``agents.gbm``, ``agents.training``): ``family``
(``mlp``, ``tcn``, ``gbm``), the LightGBM genes ``num_leaves``, ``n_estimators``,
``learning_rate``, ``min_child_samples``, ``feature_fraction`` (:func:`gbm_genes`; read only by
``gbm`` children, as ``hidden`` .. ``batch_size`` are read only by the torch families), and for
time series ``label`` (``fwd``, ``volscaled``, ``triple_barrier``), ``barrier`` (the triple
barrier's width in horizon-sized standard deviations) and ``primary`` (``none``, ``sma_cross``,
``momentum``: meta-labelling) (:func:`target_genes`). A genome without them is an MLP on forward
returns, as before these genes existed.

Bounds are sized for a 2-core CPU: a child trains on ~10k rows in a few seconds, so hidden sizes
stay at 64 or below, depth at 3, epochs at 12. A specialty's feature sets are exactly the choices
of its ``feature_set`` gene (:attr:`Specialty.feature_sets`), which its builders put in
``Dataset.feature_sets`` (checked when a dataset is built).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from agents.genome import ChoiceGene, FloatGene, Gene, GenomeSpace, IntGene
from agents.positions import RULE_DEFAULTS
from market.labels import LABELS, PRIMARY_RULES
from market.series import SeriesKey

if TYPE_CHECKING:
    from agents.dataset import Dataset
    from agents.sources import DataSources

__all__ = [
    "TASKS",
    "GridDatasets",
    "LiveInput",
    "Specialty",
    "Task",
    "family_genes",
    "gbm_genes",
    "model_genes",
    "one_per_symbol",
    "position_genes",
    "series_space",
    "target_genes",
]

Task = Literal["direction", "rank", "classify"]
TASKS: tuple[str, ...] = ("direction", "rank", "classify")
#: ``(exchange, timeframe, symbols) -> [(dataset name, its symbols)]``: the datasets a Tune grid
#: trains on, named as the specialty's ``build`` names them.
GridDatasets = Callable[[str, str, Sequence[str]], list[tuple[str, list[str]]]]
_PREFIX = re.compile(r"^[a-z]{2}$")


class LiveInput(StrEnum):
    """What a specialty reads when it is served (``serving.ensemble`` interprets it).

    ``CANDLES``: the request's candles alone, through :attr:`Specialty.live_dataset`;
    ``DAILY_SENTIMENT``: the candles and its run's daily sentiment files; ``PANEL``: the candles and
    the store's candles of its run's other symbols; ``TOKENS``: token features (``/v1/rugpull``),
    not candles; ``NONE``: nothing a request carries (:attr:`Specialty.live_reason` says why).
    The first three vote on ``/v1/predict``.
    """

    CANDLES = "candles"
    DAILY_SENTIMENT = "daily_sentiment"
    PANEL = "panel"
    TOKENS = "tokens"
    NONE = "none"


@dataclass(frozen=True)
class Specialty:
    """One kind of child: every fact about it, in one place.

    - ``name``, ``description``, ``task``, ``space`` (its genomes), ``inputs`` (what it eats, for
      people);
    - ``prefix``: two lowercase letters starting its agent ids (``ta-g002-003``);
    - ``eats``: the :class:`~agents.sources.DataSources` fields ``build`` reads;
    - ``build``: its datasets of a run's sources (None: none are built up front, as for the
      report_coordinator, whose dataset is stacked from the members' scores);
    - ``grid_datasets``: the datasets a Tune grid of it trains on (None: a grid may not search
      it: its datasets do not come from candles alone, or its models do not trade one series);
    - ``live``, ``live_dataset`` (for ``CANDLES``: the builder of the request's candles, keyword
      arguments ``name, timeframe, rules, regimes, feature_set, tail``) and ``live_reason`` (why
      it does not vote, when it does not): how it is served.
    """

    name: str
    description: str
    task: Task
    space: GenomeSpace
    inputs: str
    _: KW_ONLY
    prefix: str
    eats: tuple[str, ...] = ()
    build: Callable[[DataSources], list[Dataset]] | None = None
    grid_datasets: GridDatasets | None = None
    live: LiveInput = LiveInput.NONE
    live_dataset: Callable[..., Dataset] | None = None
    live_reason: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}; got {self.task!r}")
        if self.space.specialty != self.name:
            raise ValueError(
                f"specialty {self.name!r}: its genome space is for {self.space.specialty!r}"
            )
        if not isinstance(self.prefix, str) or not _PREFIX.match(self.prefix):
            raise ValueError(
                f"specialty {self.name!r}: prefix must be two lowercase letters; got {self.prefix!r}"
            )
        if "all" not in self.feature_sets:
            raise ValueError(
                f"specialty {self.name!r}: its feature_set gene must offer 'all'; got "
                f"{list(self.feature_sets)}"
            )
        object.__setattr__(self, "live", LiveInput(self.live))
        object.__setattr__(self, "eats", tuple(self.eats))
        if (self.live is LiveInput.CANDLES) != (self.live_dataset is not None):
            raise ValueError(
                f"specialty {self.name!r}: live_dataset is for live inputs 'candles' only, and "
                f"they need it; got live {self.live.value!r} with "
                f"{'a' if self.live_dataset else 'no'} live_dataset"
            )
        if self.live is LiveInput.NONE and not self.live_reason:
            raise ValueError(
                f"specialty {self.name!r}: live inputs 'none' needs a live_reason saying why"
            )

    @property
    def feature_sets(self) -> tuple[str, ...]:
        """The ``feature_sets`` keys its datasets carry: its ``feature_set`` gene's choices."""
        for gene in self.space.genes:
            if gene.name == "feature_set" and isinstance(gene, ChoiceGene):
                return tuple(str(choice) for choice in gene.choices)
        return ()

    @property
    def votes(self) -> bool:
        """Whether its champions vote on ``/v1/predict``."""
        return self.live in (LiveInput.CANDLES, LiveInput.DAILY_SENTIMENT, LiveInput.PANEL)

    @property
    def searchable(self) -> bool:
        """Whether a Tune grid may search it."""
        return self.grid_datasets is not None

    def datasets(self, sources: DataSources) -> list[Dataset]:
        """Its datasets of the run ``sources`` describes (ValueError when none are built)."""
        if self.build is None:
            raise ValueError(f"{self.name}: no datasets are built for it up front")
        return self.build(sources)


def one_per_symbol(
    exchange: str, timeframe: str, symbols: Sequence[str]
) -> list[tuple[str, list[str]]]:
    """``grid_datasets`` of a specialty built once per symbol (``agents.datasets.per_symbol``):
    each dataset is named after its series (``binance_BTC-USDT_1h``)."""
    return [(SeriesKey(exchange, s, timeframe).file_stem, [s]) for s in symbols]


def model_genes(hidden: int = 64, depth: int = 3, dropout: float = 0.4) -> tuple[Gene, ...]:
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


def position_genes() -> tuple[Gene, ...]:
    """How a score becomes a position (``agents.positions.PositionRule``; bounds for 1h bars)."""
    return (
        FloatGene("band", 0.0, 0.3, default=float(RULE_DEFAULTS["band"])),
        IntGene("min_hold", 1, 24, default=int(RULE_DEFAULTS["min_hold"])),
        IntGene("levels", 1, 4, default=int(RULE_DEFAULTS["levels"])),
        ChoiceGene(
            "vol_target", (0.0, 0.25, 0.5, 0.75, 1.0), default=float(RULE_DEFAULTS["vol_target"])
        ),
    )


def gbm_genes() -> tuple[Gene, ...]:
    """LightGBM genes (``agents.gbm``), bounded so a child on ~30k rows of a few hundred inputs
    trains its folds in seconds on a 2-core CPU (about 10 ms a tree there)."""
    return (
        IntGene("num_leaves", 4, 31),
        IntGene("n_estimators", 20, 150),
        FloatGene("learning_rate", 0.02, 0.3, log=True),
        IntGene("min_child_samples", 20, 300),
        FloatGene("feature_fraction", 0.2, 0.8),
    )


def family_genes(families: tuple[str, ...] = ("mlp", "tcn", "gbm")) -> tuple[Gene, ...]:
    """The ``family`` gene and, with ``gbm``, its genes. The families are those of
    ``agents.models.MODEL_FAMILIES`` (not imported here: it would load torch and LightGBM with
    the registry; ``tests/agents/test_models.py`` checks they agree)."""
    return (
        ChoiceGene("family", families, default="mlp"),
        *(gbm_genes() if "gbm" in families else ()),
    )


def target_genes() -> tuple[Gene, ...]:
    """What a time-series child learns (``market.labels``): ``label``, ``barrier``, ``primary``."""
    return (
        ChoiceGene("label", LABELS, default="fwd"),
        FloatGene("barrier", 0.5, 2.5),
        ChoiceGene("primary", PRIMARY_RULES, default="none"),
    )


def series_space(
    name: str, feature_sets: tuple[str, ...], *, lookback: int = 24, horizon: int = 24
) -> GenomeSpace:
    """A space for a model that reads ``lookback`` rows of a time series and trades on its score."""
    return GenomeSpace(
        name,
        (
            IntGene("lookback", 1, lookback),
            ChoiceGene("feature_set", feature_sets),
            IntGene("horizon", 1, horizon),
            *model_genes(),
            # Up to 0.8: selective children trade less and pay less in fees.
            FloatGene("threshold", 0.0, 0.8),
            *position_genes(),
            *family_genes(),
            *target_genes(),
        ),
    )
