"""Config grids: a YAML search over one specialty's genome plus an inference grid, as trial configs.

A grid file (``configs/grids/*.yaml``) has a ``grid:`` section and an optional ``champions:``
section (overrides of the promotion policy for the models this grid trains, e.g. lowered
thresholds in a smoke grid)::

    grid:
      name: smoke                       # default: the file's stem
      specialty: technical_analyst
      search: grid                      # grid | random | optuna
      num_samples: 8                    # random and optuna only
      seed: 7                           # every trial's training seed; random draws are seeded by it
      data: {exchange: binance, timeframe: 1h, symbols: [BTC/USDT], start: "2023-01-01", end: null}
      genome:
        lookback: [8, 16]               # a list: one axis of the product (or a choice)
        epochs: 3                       # a single value: fixed
        lr: {low: 0.0005, high: 0.005}  # a range: random / optuna only (log genes drawn on a log scale)
        feature_set: {choices: [fast, all]}
      inference: {threshold: [0.1, 0.3], horizon: [1, 4], size: [1.0]}
      fee_bps: 10
    champions: {margin: 0.0, dsr_threshold: 0.5, min_regime_bars: 50}

Every key is checked against the specialty's :class:`~agents.genome.GenomeSpace`; a
:class:`GridError` names the dotted key and the value ("grid.genome.lookback: 999 is above the
gene's upper bound 24").

**Genes the grid does not name** take the gene's midpoint, ``gene.decode(0.5)``: the middle of an
integer or linear range, the geometric middle of a log range (``lr`` 1e-3), the middle choice
(``batch_size`` 128, ``feature_set`` "slow"), or the gene's ``default`` when it has one
(``family`` "mlp", ``label`` "fwd", ``primary`` "none", ``band`` 0, ``min_hold`` 1, ``levels`` 1,
``vol_target`` 0: what a genome without the gene trains as, so a grid that does not name them
trains today's MLP on forward returns and trades the plain threshold rule). It is a fixed,
documented point that depends only on the gene's bounds, so a trial config always carries every gene and its hash says exactly what
trained. The genome's own ``threshold`` gene only shapes the training report's metrics; the
inference grid's thresholds decide the backtests.

A **trial config** (:func:`expand`, :func:`config_from_params`) is a plain dict::

    {"specialty", "dataset", "data": {exchange, timeframe, symbols, start, end}, "genome": {...},
     "seed", "inference": {"threshold": [...], "horizon": [...], "size": [...]}, "fee_bps", "grid"}

One trial per dataset the specialty builds from ``data`` (its ``Specialty.grid_datasets``:
technical_analyst and volume_hunter: one per symbol; sentiment_scout: the first symbol; panels and
files are not searchable yet) and per genome.
:func:`compute_config_hash` is its identity (the ``grid`` name is left out: the same config added
by two grids trains once).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from agents.genome import ChoiceGene, FloatGene, Gene, GeneValue, GenomeSpace, IntGene
from agents.spec import plain, spec_hash
from agents.specialties import SPECIALTIES, get_specialty
from market.backtest import DEFAULT_FEE_BPS
from market.regimes import RegimeRules
from market.series import normalize_symbol
from market.timeframes import timeframe_ms

__all__ = [
    "CHAMPION_KEYS",
    "SEARCHES",
    "GridError",
    "GridSpec",
    "compute_config_hash",
    "config_from_params",
    "dataset_names",
    "expand",
    "grid_hash",
    "inference_configs",
    "load_grid",
    "optuna_space",
    "params_of",
    "parse_grid",
    "with_regime_rules",
]

SEARCHES: tuple[str, ...] = ("grid", "random", "optuna")
#: ``champions:`` override keys and whether each is an integer.
CHAMPION_KEYS: dict[str, bool] = {
    "margin": False,
    "dsr_threshold": False,
    "min_regime_bars": True,
    "min_live_trades": True,
}
_GRID_KEYS = (
    "name", "specialty", "search", "num_samples", "seed", "data", "genome", "inference", "fee_bps",
)  # fmt: skip
_DATA_DEFAULTS: dict[str, Any] = {
    "exchange": "binance", "timeframe": "1h", "symbols": ["BTC/USDT"], "start": None, "end": None,
}  # fmt: skip
_INFERENCE_DEFAULTS: dict[str, list[Any]] = {"threshold": [0.0], "horizon": [1], "size": [1.0]}
_MAX_DRAW_FACTOR = 100  # random search: draws tried per wanted config before giving up on uniques


class GridError(ValueError):
    """A grid file that cannot be used; the message names the dotted key and the value."""


@dataclass(frozen=True)
class GridSpec:
    """A validated grid (see the module doc). ``genome`` maps gene -> a list of values, a single
    value, ``{"low", "high"}`` or ``{"choices": [...]}``, all checked against the gene's bounds;
    ``inference`` maps threshold / horizon / size -> sorted lists."""

    name: str
    specialty: str
    search: str
    num_samples: int
    seed: int
    data: dict[str, Any]
    genome: dict[str, Any]
    inference: dict[str, list[Any]]
    fee_bps: float
    champions: dict[str, float | int] = field(default_factory=dict)
    path: Path | None = None

    @property
    def space(self) -> GenomeSpace:
        return get_specialty(self.specialty).space

    def canonical(self) -> dict[str, Any]:
        """The spec as plain JSON-ready values, ``path`` left out (what :func:`grid_hash` hashes)."""
        return {
            "name": self.name, "specialty": self.specialty, "search": self.search,
            "num_samples": self.num_samples, "seed": self.seed, "data": self.data,
            "genome": self.genome, "inference": self.inference, "fee_bps": self.fee_bps,
            "champions": self.champions,
        }  # fmt: skip


# --- hashing -----------------------------------------------------------------------------------


def compute_config_hash(config: Mapping[str, Any]) -> str:
    """The trial config's identity: ``agents.spec.spec_hash`` (the one spec hash) of it without the
    ``grid`` key; equals ``TrainSpec.from_json(config).hash``."""
    return spec_hash({key: value for key, value in config.items() if key != "grid"})


def grid_hash(spec: GridSpec) -> str:
    """SHA-256 hex of the spec's canonical dict (its ``path`` left out)."""
    return spec_hash(spec.canonical())


# --- loading and validation --------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_)


def _gene_value(gene: Gene, value: Any, key: str) -> GeneValue:
    """``value`` checked against ``gene``, as the plain type the gene holds."""
    if isinstance(gene, ChoiceGene):
        if isinstance(value, bool) or value not in gene.choices:
            raise GridError(f"{key}: {value!r} is not one of {list(gene.choices)}")
        return gene.choices[gene.choices.index(value)]
    if isinstance(gene, IntGene) and not _is_int(value):
        if _is_number(value) and float(value).is_integer():
            value = int(value)
        else:
            raise GridError(f"{key}: {value!r} must be an integer")
    if not _is_number(value) or not math.isfinite(float(value)):
        raise GridError(f"{key}: {value!r} must be a finite number")
    if value < gene.low:
        raise GridError(f"{key}: {value!r} is below the gene's lower bound {gene.low}")
    if value > gene.high:
        raise GridError(f"{key}: {value!r} is above the gene's upper bound {gene.high}")
    return int(value) if isinstance(gene, IntGene) else float(value)


def _values(gene: Gene, raw: Any, key: str) -> list[GeneValue]:
    if not isinstance(raw, list) or not raw:
        raise GridError(f"{key}: needs a non-empty list of values; got {raw!r}")
    out: list[GeneValue] = []
    for item in raw:
        value = _gene_value(gene, item, key)
        if value not in out:
            out.append(value)
    return out


def _gene_entry(gene: Gene, raw: Any, key: str, search: str) -> Any:
    """One ``genome:`` entry in canonical form: a list, a scalar, or a range dict."""
    if isinstance(raw, list):
        return _values(gene, raw, key)
    if isinstance(raw, Mapping):
        if set(raw) == {"choices"}:
            return _values(gene, raw["choices"], f"{key}.choices")
        if set(raw) != {"low", "high"}:
            raise GridError(
                f"{key}: a mapping must be {{low, high}} or {{choices: [...]}}; got keys "
                f"{sorted(map(str, raw))}"
            )
        if isinstance(gene, ChoiceGene):
            raise GridError(f"{key}: {gene.name} is a choice gene; give a list, not a range")
        if search == "grid":
            raise GridError(
                f"{key}: a range {dict(raw)!r} cannot be enumerated by search 'grid'; give a "
                "list of values, or use search 'random' or 'optuna'"
            )
        low = _gene_value(gene, raw["low"], f"{key}.low")
        high = _gene_value(gene, raw["high"], f"{key}.high")
        if high < low:  # type: ignore[operator]
            raise GridError(f"{key}: high {high!r} is below low {low!r}")
        return {"low": low, "high": high}
    return _gene_value(gene, raw, key)


def _mapping(raw: Any, key: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise GridError(f"{key}: must be a mapping; got {raw!r}")
    return raw


def _unknown(raw: Mapping[str, Any], known: Sequence[str], key: str) -> None:
    extra = [str(name) for name in raw if name not in known]
    if extra:
        raise GridError(f"{key}.{extra[0]}: unknown key; known keys: {', '.join(known)}")


def _data(raw: Any) -> dict[str, Any]:
    data = _mapping(raw, "grid.data")
    _unknown(data, list(_DATA_DEFAULTS), "grid.data")
    out = {**_DATA_DEFAULTS, **dict(data)}
    for name in ("exchange", "timeframe"):
        if not isinstance(out[name], str) or not out[name]:
            raise GridError(f"grid.data.{name}: must be a non-empty string; got {out[name]!r}")
    try:
        timeframe_ms(out["timeframe"])
    except ValueError as exc:
        raise GridError(f"grid.data.timeframe: {exc}") from None
    symbols = out["symbols"]
    if isinstance(symbols, str):
        symbols = [symbols]
    if not isinstance(symbols, list) or not symbols:
        raise GridError(f"grid.data.symbols: needs a non-empty list of symbols; got {symbols!r}")
    try:
        out["symbols"] = [normalize_symbol(str(s)) for s in symbols]
    except ValueError as exc:
        raise GridError(f"grid.data.symbols: {exc}") from None
    for name in ("start", "end"):
        value = out[name]
        if value is None:
            continue
        if hasattr(value, "isoformat"):  # YAML reads 2023-01-01 as a date
            value = value.isoformat()
        from market.when import parse_when

        try:
            parse_when(str(value), f"grid.data.{name}")
        except ValueError as exc:
            raise GridError(str(exc).replace(" must ", ": must ", 1)) from None
        out[name] = str(value)
    return out


def _inference(raw: Any) -> dict[str, list[Any]]:
    section = _mapping(raw, "grid.inference")
    _unknown(section, list(_INFERENCE_DEFAULTS), "grid.inference")
    out: dict[str, list[Any]] = {}
    for name, default in _INFERENCE_DEFAULTS.items():
        values = section.get(name, default)
        key = f"grid.inference.{name}"
        if not isinstance(values, list):
            values = [values]
        if not values:
            raise GridError(f"{key}: needs at least one value")
        checked: set[Any] = set()
        for value in values:
            if name == "horizon":
                if not _is_int(value) or value < 1:
                    raise GridError(f"{key}: {value!r} must be an integer >= 1 (bars held)")
                checked.add(int(value))
            elif not _is_number(value) or not math.isfinite(float(value)):
                raise GridError(f"{key}: {value!r} must be a finite number")
            elif name == "threshold" and not 0.0 <= float(value) < 1.0:
                raise GridError(f"{key}: {value!r} must be in [0, 1) (|score| is at most 1)")
            elif name == "size" and not 0.0 < float(value) <= 1.0:
                raise GridError(f"{key}: {value!r} must be in (0, 1] (fraction of equity)")
            else:
                checked.add(float(value))
        out[name] = sorted(checked)
    return out


def _champions(raw: Any) -> dict[str, float | int]:
    section = _mapping(raw, "champions")
    _unknown(section, list(CHAMPION_KEYS), "champions")
    out: dict[str, float | int] = {}
    for name, value in section.items():
        key = f"champions.{name}"
        if CHAMPION_KEYS[name]:
            if not _is_int(value) or value < 0:
                raise GridError(f"{key}: {value!r} must be an integer >= 0")
            out[name] = int(value)
        else:
            if not _is_number(value) or not math.isfinite(float(value)) or value < 0:
                raise GridError(f"{key}: {value!r} must be a finite number >= 0")
            out[name] = float(value)
        _check_policy(key, name, out[name])
    return out


def _check_policy(key: str, name: str, value: float | int) -> None:
    """The bounds ``evolution.champions.ChampionPolicy`` itself enforces (DSR at most 1, at least
    2 bars, ...), checked now so that a grid is refused at ``queue add``, not at its first trial."""
    from dataclasses import replace

    from evolution.champions import ChampionPolicy  # here: it pulls in scipy

    try:
        replace(ChampionPolicy(), **{name: value})  # type: ignore[arg-type]
    except ValueError as exc:
        raise GridError(
            f"{key}: {value!r} must{str(exc).split(' must', 1)[1].split(';')[0]}"
        ) from None


def parse_grid(raw: Any, *, name: str = "grid", path: Path | None = None) -> GridSpec:
    """A :class:`GridSpec` from a grid file's parsed YAML (``name`` when the grid names none)."""
    top = _mapping(raw, "file")
    _unknown(top, ["grid", "champions"], "file")
    grid = top.get("grid")
    if not isinstance(grid, Mapping):
        raise GridError(f"grid: the file needs a 'grid' mapping; got {grid!r}")
    _unknown(grid, _GRID_KEYS, "grid")
    grid_name = grid.get("name", name)
    if not isinstance(grid_name, str) or not 0 < len(grid_name) <= 128:
        raise GridError(f"grid.name: must be a string of 1 to 128 characters; got {grid_name!r}")
    specialty = grid.get("specialty")
    if not isinstance(specialty, str) or specialty not in SPECIALTIES:
        raise GridError(
            f"grid.specialty: {specialty!r} is not a specialty; one of {', '.join(SPECIALTIES)}"
        )
    if not get_specialty(specialty).searchable:
        raise GridError(
            f"grid.specialty: {specialty!r} cannot be searched by a grid yet (its datasets do not "
            f"come from candles alone); one of {', '.join(_searchable())}"
        )
    search = grid.get("search", "grid")
    if search not in SEARCHES:
        raise GridError(f"grid.search: {search!r} is not one of {', '.join(SEARCHES)}")
    num_samples = grid.get("num_samples", 1 if search == "grid" else None)
    if search != "grid" and "num_samples" not in grid:
        raise GridError(f"grid.num_samples: search {search!r} needs num_samples; got none")
    if not _is_int(num_samples) or num_samples < 1:
        raise GridError(f"grid.num_samples: {num_samples!r} must be an integer >= 1")
    seed = grid.get("seed", 0)
    if not _is_int(seed) or seed < 0:
        raise GridError(f"grid.seed: {seed!r} must be an integer >= 0")
    fee_bps = grid.get("fee_bps", DEFAULT_FEE_BPS)
    if not _is_number(fee_bps) or not math.isfinite(float(fee_bps)) or fee_bps < 0:
        raise GridError(f"grid.fee_bps: {fee_bps!r} must be a finite number >= 0")
    space = get_specialty(specialty).space
    genome_raw = _mapping(grid.get("genome"), "grid.genome")
    genes = {gene.name: gene for gene in space.genes}
    for gene_name in genome_raw:
        if gene_name not in genes:
            raise GridError(
                f"grid.genome.{gene_name}: {specialty} has no gene {gene_name!r}; genes: "
                f"{', '.join(space.names)}"
            )
    genome = {
        gene.name: _gene_entry(gene, genome_raw[gene.name], f"grid.genome.{gene.name}", search)
        for gene in space.genes
        if gene.name in genome_raw
    }
    return GridSpec(
        name=grid_name, specialty=specialty, search=search, num_samples=int(num_samples),
        seed=int(seed), data=_data(grid.get("data")), genome=genome,
        inference=_inference(grid.get("inference")), fee_bps=float(fee_bps),
        champions=_champions(top.get("champions")), path=path,
    )  # fmt: skip


def load_grid(path: str | Path) -> GridSpec:
    """The grid file at ``path``, validated (see the module doc); errors raise :class:`GridError`."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise GridError(f"grid file {str(path)!r} does not exist") from None
    except yaml.YAMLError as exc:
        raise GridError(f"grid file {str(path)!r} is not valid YAML: {exc}") from None
    try:
        return parse_grid(raw, name=path.name.split(".", 1)[0], path=path)
    except GridError as exc:
        raise GridError(f"{path}: {exc}") from None


def with_regime_rules(spec: GridSpec, rules: RegimeRules) -> GridSpec:
    """``spec`` whose trials label their bars with ``rules``: the rules join every trial config's
    ``data`` (``data.regime_rules``), so a trial's hash covers them and its datasets are built with
    them whatever the store's definitions say when it trains (``redline queue add`` uses the
    config's rules)."""
    return replace(spec, data={**spec.data, "regime_rules": rules.to_dict()})


# --- expansion ---------------------------------------------------------------------------------


def _searchable() -> list[str]:
    """The specialties a grid may search (``Specialty.grid_datasets`` set)."""
    return [name for name, specialty in SPECIALTIES.items() if specialty.searchable]


def dataset_names(specialty: str, data: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """``[(dataset name, its symbols)]`` that ``agents.datasets.build_datasets`` builds from
    ``data`` for ``specialty`` (names as the builders give them: ``Specialty.grid_datasets``)."""
    grid_datasets = get_specialty(specialty).grid_datasets
    if grid_datasets is None:
        raise GridError(f"grid.specialty: {specialty!r} is not one of {', '.join(_searchable())}")
    return grid_datasets(data["exchange"], data["timeframe"], list(data["symbols"]))


def _trial(
    spec: GridSpec, dataset: tuple[str, list[str]], genome: dict[str, Any]
) -> dict[str, Any]:
    name, symbols = dataset
    return {
        "specialty": spec.specialty, "dataset": name, "data": {**spec.data, "symbols": symbols},
        "genome": genome, "seed": spec.seed,
        "inference": {key: list(values) for key, values in spec.inference.items()},
        "fee_bps": spec.fee_bps, "grid": spec.name,
    }  # fmt: skip


def _midpoint(gene: Gene) -> GeneValue:
    if gene.default is not None:
        return gene.default
    value = gene.decode(0.5)
    # 12 significant digits: exp/log of a log gene may differ in the last bit between C
    # libraries, and the midpoint is part of every config hash.
    return float(f"{value:.12g}") if isinstance(value, float) else value


def _fill(spec: GridSpec, chosen: Mapping[str, Any]) -> dict[str, Any]:
    """Every gene in the space's order: the chosen value, else the gene's midpoint."""
    return {
        gene.name: chosen[gene.name] if gene.name in chosen else _midpoint(gene)
        for gene in spec.space.genes
    }


def _draw(gene: Gene, entry: Any, rng: np.random.Generator) -> GeneValue:
    if isinstance(entry, list):
        return entry[int(rng.integers(len(entry)))]
    if not isinstance(entry, Mapping):
        return entry
    low, high = entry["low"], entry["high"]
    if isinstance(gene, IntGene):
        return int(rng.integers(low, high + 1))
    if isinstance(gene, FloatGene) and gene.log:
        return float(min(max(math.exp(rng.uniform(math.log(low), math.log(high))), low), high))
    return float(rng.uniform(low, high))


def expand(spec: GridSpec) -> list[dict[str, Any]]:
    """The trial configs of a grid or random search (see the module doc).

    ``grid``: the cartesian product of every listed gene (in the space's gene order) for each
    dataset. ``random``: ``num_samples`` seeded draws (a list is drawn from uniformly, a range
    uniformly, on a log scale for log genes) per dataset, duplicates redrawn: fewer configs come
    back only when the space holds fewer distinct ones. ``optuna``: raises (its configs come
    from the searcher; see :func:`optuna_space`).
    """
    if spec.search == "optuna":
        raise GridError("grid.search: 'optuna' configs come from the searcher; see optuna_space")
    datasets = dataset_names(spec.specialty, spec.data)
    genes = [gene for gene in spec.space.genes if gene.name in spec.genome]
    configs: list[dict[str, Any]] = []
    if spec.search == "grid":
        axes = [
            spec.genome[g.name] if isinstance(spec.genome[g.name], list) else [spec.genome[g.name]]
            for g in genes
        ]
        for dataset in datasets:
            for values in itertools.product(*axes):
                chosen = dict(zip((g.name for g in genes), values, strict=True))
                configs.append(_trial(spec, dataset, _fill(spec, chosen)))
        return configs
    rng = np.random.default_rng(spec.seed)
    for dataset in datasets:
        seen: set[str] = set()
        for _ in range(spec.num_samples * _MAX_DRAW_FACTOR):
            if len(seen) == spec.num_samples:
                break
            chosen = {g.name: _draw(g, spec.genome[g.name], rng) for g in genes}
            config = _trial(spec, dataset, _fill(spec, chosen))
            digest = compute_config_hash(config)
            if digest not in seen:
                seen.add(digest)
                configs.append(config)
    return configs


def _single_dataset(spec: GridSpec) -> tuple[str, list[str]]:
    datasets = dataset_names(spec.specialty, spec.data)
    if len(datasets) != 1:
        raise GridError(
            f"grid.data.symbols: an optuna search trains on one dataset; {spec.specialty} builds "
            f"{len(datasets)} from {spec.data['symbols']}"
        )
    return datasets[0]


def optuna_space(spec: GridSpec) -> dict[str, Any]:
    """Tune search space of the searched genes (flat, keyed by gene name): ``tune.choice`` for
    lists, ``tune.randint`` for integer ranges, ``tune.loguniform`` / ``tune.uniform`` for float
    ranges. Fixed genes and the midpoints are added back by :func:`config_from_params`."""
    from ray import tune

    _single_dataset(spec)
    space: dict[str, Any] = {}
    for gene in spec.space.genes:
        entry = spec.genome.get(gene.name)
        if isinstance(entry, list) and len(entry) > 1:
            space[gene.name] = tune.choice(entry)
        elif isinstance(entry, Mapping) and entry["low"] < entry["high"]:
            low, high = entry["low"], entry["high"]
            if isinstance(gene, IntGene):
                space[gene.name] = tune.randint(low, high + 1)  # upper bound exclusive
            elif isinstance(gene, FloatGene) and gene.log:
                space[gene.name] = tune.loguniform(low, high)
            else:
                space[gene.name] = tune.uniform(low, high)
    return space


def config_from_params(spec: GridSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """The trial config for searcher ``params`` (gene -> value): fixed genes from the grid,
    every other gene at its midpoint; each value is checked against its gene's bounds."""
    genes = {gene.name: gene for gene in spec.space.genes}
    chosen: dict[str, Any] = {}
    for name, entry in spec.genome.items():
        if name in params:
            chosen[name] = _gene_value(genes[name], plain(params[name]), f"params.{name}")
        elif isinstance(entry, list):
            chosen[name] = entry[0]
        elif isinstance(entry, Mapping):
            chosen[name] = entry["low"]  # a range of one value (low == high)
        else:
            chosen[name] = entry
    unknown = sorted(set(params) - set(genes))
    if unknown:
        raise GridError(f"params.{unknown[0]}: {spec.specialty} has no gene {unknown[0]!r}")
    return _trial(spec, _single_dataset(spec), _fill(spec, chosen))


def params_of(spec: GridSpec, config: Mapping[str, Any]) -> dict[str, Any]:
    """The searcher params (keys of :func:`optuna_space`) of a trial config: to feed finished
    trials back to a searcher as ``points_to_evaluate``."""
    return {name: config["genome"][name] for name in optuna_space(spec)}


def inference_configs(spec_or_config: GridSpec | Mapping[str, Any]) -> list[dict[str, Any]]:
    """The inference grid: every threshold x horizon x size, in that nesting order."""
    inference = (
        spec_or_config.inference
        if isinstance(spec_or_config, GridSpec)
        else spec_or_config["inference"]
    )
    return [
        {"threshold": float(t), "horizon": int(h), "size": float(s)}
        for t, h, s in itertools.product(
            inference["threshold"], inference["horizon"], inference["size"]
        )
    ]
