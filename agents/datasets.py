"""Datasets per specialty: features, prices and regimes built once per run, shared by the children.

:func:`build_datasets` reads the run's inputs (:class:`DataSources`: candles from the store, trades,
sentiment and rug-pull files from disk) and returns the specialty's datasets; the builders under it
(:func:`technical_dataset`, :func:`volume_dataset`, :func:`panel_dataset`, :func:`whale_dataset`,
:func:`sentiment_dataset`, :func:`rugpull_dataset`) are pure functions of frames.

Rules every builder keeps:

- features at row ``t`` use only data known at the close of ``t``'s bar. Every feature is a
  causal rolling or recursive computation (:mod:`market.features`, :mod:`agents.flow`), daily
  sentiment is lagged one day (:func:`market.sentiment.join_daily_lagged`), so a dataset built on
  the first ``k`` candles has exactly the first rows of the one built on all;
- features are scale-free (returns, ratios to the close, z-scores), so one model can read BTC and
  SOL, 2020 and 2024;
- warm-up is dropped: a row with any non-finite feature (a window not filled yet) is left out.
  Whether a row is dropped depends only on its own features, so dropping keeps the property above;
- regimes come from :func:`market.regimes.classify_regimes` on the full candles (``""`` while the
  regime window fills).

Datasets are written as Parquet under ``training_db/<specialty>/<name>.parquet`` with their
metadata (:func:`write_dataset`) and read back exactly (:func:`read_dataset`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from agents.banks import (
    FAST,
    RUGPULL_FEATURES,
    RUGPULL_SHUFFLE_SEED,
    SLOW,
    SOCIAL_STREAMS,
    DailySentiment,
    daily_sentiment,
    panel_dataset,
    rugpull_dataset,
    sentiment_dataset,
    stacked_dataset,
    technical_dataset,
    volume_dataset,
    whale_dataset,
)
from agents.dataset import Dataset
from agents.sources import DataSources
from agents.specialties import get_specialty
from agents.specialties.base import one_per_symbol
from store.paths import DataRoot

logger = logging.getLogger(__name__)

__all__ = [
    "FAST",
    "RUGPULL_FEATURES",
    "RUGPULL_SHUFFLE_SEED",
    "SLOW",
    "SOCIAL_STREAMS",
    "DailySentiment",
    "build_datasets",
    "candles_of",
    "daily_sentiment",
    "dataset_path",
    "need_file",
    "panel_dataset",
    "per_symbol",
    "pool_datasets",
    "poolable",
    "pooled",
    "prepare_datasets",
    "read_dataset",
    "rugpull_dataset",
    "sentiment_dataset",
    "stacked_dataset",
    "symbol_group",
    "technical_dataset",
    "volume_dataset",
    "whale_dataset",
    "write_dataset",
]

_RESERVED = ("ts", "close", "regime", "group", "target")
_META_KEY = b"redline.dataset"
_FORMAT = 1


def candles_of(sources: DataSources, symbol: str, specialty: str) -> pd.DataFrame:
    """The store's candles of ``symbol`` for ``sources``; ValueError naming ``specialty`` when
    there are none."""
    key = sources.key(symbol)
    frame = sources.store.candles.load_candles(key, sources.start_ms, sources.end_ms)
    if frame.empty:
        raise ValueError(
            f"{specialty}: the store ({sources.store.url_for_display}) has no candles for {key}"
            f" in [{sources.start_ms}, {sources.end_ms}); import them first "
            "(`redline data import`, or the shipped sample)"
        )
    return frame


def need_file(path: Path | None, specialty: str, attribute: str) -> Path:
    """``path`` (the ``DataSources`` field ``attribute``), which must be an existing file."""
    if path is None:
        raise FileNotFoundError(
            f"{specialty}: DataSources.{attribute} is not set; it needs that file"
        )
    if not path.is_file():
        raise FileNotFoundError(f"{specialty}: {attribute} file not found: {path}")
    return path


def per_symbol(
    specialty: str, build: Callable[..., Dataset]
) -> Callable[[DataSources], list[Dataset]]:
    """A specialty's ``build``: ``build(candles, name=, timeframe=, rules=)`` once per symbol."""

    def run(sources: DataSources) -> list[Dataset]:
        return [
            build(
                candles_of(sources, symbol, specialty),
                name=sources.key(symbol).file_stem,
                timeframe=sources.timeframe,
                rules=sources.regime_rules,
            )
            for symbol in sources.symbols
        ]

    return run


def pooled(specialty: str, build: Callable[..., Dataset]) -> Callable[[DataSources], list[Dataset]]:
    """A specialty's pooled ``build``: one dataset over every run symbol (:func:`pool_datasets`
    of ``build`` run on each symbol's own candles), named ``<exchange>_pooled_<timeframe>``."""

    def run(sources: DataSources) -> list[Dataset]:
        return [
            pool_datasets(
                per_symbol(specialty, build)(sources),
                sources.symbols,
                name=f"{sources.exchange}_pooled_{sources.timeframe}",
            )
        ]

    return run


def pool_datasets(parts: Sequence[Dataset], symbols: Sequence[str], *, name: str) -> Dataset:
    """Per-symbol datasets as one pooled dataset: their rows one after another (symbol by
    symbol, in ``symbols`` order, each in time order), ``group`` = the symbol's index in
    ``symbols`` (``group_names``). A symbol's rows, features and all, are exactly its own
    dataset's: its features were built on its own candles only."""
    if len(parts) != len(symbols) or not parts:
        raise ValueError(f"pooled dataset {name}: {len(parts)} datasets for {len(symbols)} symbols")
    first = parts[0]
    for part in parts[1:]:
        if part.feature_names != first.feature_names or part.timeframe != first.timeframe:
            raise ValueError(
                f"pooled dataset {name}: {part.name} has other features or timeframe than "
                f"{first.name}"
            )
    regimes = (
        None
        if any(p.regimes is None for p in parts)
        else np.concatenate([np.asarray(p.regimes) for p in parts])
    )
    return Dataset(
        specialty=first.specialty,
        name=name,
        timeframe=first.timeframe,
        features=np.concatenate([p.features for p in parts]),
        feature_names=first.feature_names,
        ts=np.concatenate([p.ts for p in parts]),
        close=np.concatenate([np.asarray(p.close, dtype=np.float64) for p in parts]),
        regimes=regimes,
        group=np.concatenate([np.full(p.n_rows, i, dtype=np.int32) for i, p in enumerate(parts)]),
        group_names=tuple(symbols),
        feature_sets=dict(first.feature_sets),
        pooled=True,
    )


def symbol_group(pooled_ds: Dataset, series: Dataset) -> int | None:
    """The group of ``pooled_ds`` whose rows are ``series``'s (same timestamps and closes), or
    None: how a pooled member's scores are found for one symbol's dataset."""
    if not pooled_ds.pooled or pooled_ds.group is None or series.close is None:
        return None
    for g in range(len(pooled_ds.group_names)):
        rows = np.flatnonzero(pooled_ds.group == g)
        if np.array_equal(pooled_ds.ts[rows], series.ts) and np.array_equal(
            np.asarray(pooled_ds.close)[rows], series.close
        ):
            return g
    return None


def build_datasets(specialty: str, sources: DataSources) -> list[Dataset]:
    """The datasets of ``specialty`` for the run ``sources`` describes (its ``Specialty.build``).

    technical_analyst and volume_hunter: one per symbol; market_scanner: one panel; whale_watcher:
    one per trades file; sentiment_scout: one (``sentiment_symbol``); rugpull_detector: one;
    report_coordinator: none to build up front (raises; see :func:`stacked_dataset`).
    """
    return get_specialty(specialty).datasets(sources)  # raises naming the known specialties


def prepare_datasets(
    specialties: Iterable[str],
    sources: DataSources,
    home: Path | None,
    *,
    import_sample: bool = True,
    pooled: bool = False,
) -> dict[str, Dataset]:
    """Every dataset of ``specialties`` (in that order) for ``sources``, keyed
    ``"<specialty>/<name>"``: the one dataset preparation of evolution and Tune.

    With ``import_sample``, the shipped sample is imported first when the store lacks one of the
    run's series (``store.ingest.ensure_sample``). With ``home``, each is written under
    ``<home>/training_db/<specialty>/`` (:func:`write_dataset`). With ``pooled`` (and more than
    one symbol), a :func:`poolable` specialty gets its pooled dataset (:func:`pooled`) first,
    then the first symbol's own dataset, instead of one per symbol.
    """
    from store.ingest import ensure_sample

    if import_sample and any(
        sources.store.candles.series_info(sources.key(s)) is None for s in sources.symbols
    ):
        ensure_sample(sources.store)
    out: dict[str, Dataset] = {}
    for specialty in specialties:
        built = build_datasets(specialty, sources)
        if pooled and poolable(specialty) and len(sources.symbols) > 1:
            # The pooled dataset first (its children train on it), then the first symbol's own
            # (the report_coordinator stacks the members' scores of that symbol's rows).
            name = f"{sources.exchange}_pooled_{sources.timeframe}"
            built = [pool_datasets(built, sources.symbols, name=name), built[0]]
        for dataset in built:
            out[f"{specialty}/{dataset.name}"] = dataset
            if home is not None:
                write_dataset(dataset, home)
    return out


def poolable(specialty: str) -> bool:
    """Whether ``specialty`` builds one dataset per symbol of candles (``per_symbol``, as
    technical_analyst and volume_hunter do), so its datasets can be pooled."""
    return get_specialty(specialty).grid_datasets is one_per_symbol


# -- Parquet -------------------------------------------------------------------------------------


def dataset_path(root: Path, specialty: str, name: str) -> Path:
    """``<root>/training_db/<specialty>/<name>.parquet`` (``root`` is the data root)."""
    return DataRoot(Path(root)).training_db(specialty) / f"{name}.parquet"


def write_dataset(ds: Dataset, root: Path) -> Path:
    """Write ``ds`` as Parquet under the data root ``root``; returns the file's path.

    Columns: ``ts``, then ``close``, ``regime``, ``group``, ``target`` when present, then one
    float32 column per feature. Everything else (names, feature sets, group names, the digest)
    is JSON in the schema metadata. Written beside the final name and renamed into place.
    """
    clash = sorted(set(ds.feature_names) & set(_RESERVED))
    if clash:
        raise ValueError(f"dataset {ds.name}: feature name {clash[0]!r} is reserved")
    arrays: dict[str, pa.Array] = {"ts": pa.array(ds.ts, pa.int64())}
    optional = {"close": ds.close, "regime": ds.regimes, "group": ds.group, "target": ds.target}
    for column, array in optional.items():
        if array is not None:
            arrays[column] = pa.array(array.tolist() if column == "regime" else array)
    for i, feature in enumerate(ds.feature_names):
        arrays[feature] = pa.array(ds.features[:, i], pa.float32())
    digest = ds.digest()
    meta = {
        "format": _FORMAT,
        "specialty": ds.specialty,
        "name": ds.name,
        "timeframe": ds.timeframe,
        "feature_names": list(ds.feature_names),
        "feature_sets": {key: list(value) for key, value in ds.feature_sets.items()},
        "group_names": list(ds.group_names),
        "pooled": ds.pooled,
        "dtypes": {c: str(a.dtype) for c, a in optional.items() if a is not None},
        "digest": digest,
    }
    table = pa.table(arrays).replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
    path = dataset_path(root, ds.specialty, ds.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    pq.write_table(table, partial, compression="zstd")
    os.replace(partial, path)
    logger.info("wrote %s (%d rows, digest %s)", path, ds.n_rows, digest[:12])
    return path


def read_dataset(path: Path) -> Dataset:
    """The Dataset :func:`write_dataset` wrote at ``path``, exactly (its digest is checked)."""
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(_META_KEY)
    if raw is None:
        raise ValueError(f"{path}: not a Redline dataset (no {_META_KEY.decode()} metadata)")
    meta = json.loads(raw)
    if meta.get("format") != _FORMAT:
        raise ValueError(f"{path}: dataset format must be {_FORMAT}; got {meta.get('format')!r}")
    names = tuple(meta["feature_names"])
    features = np.empty((table.num_rows, len(names)), dtype=np.float32)
    for i, feature in enumerate(names):
        features[:, i] = table.column(feature).to_numpy()
    dtypes = meta["dtypes"]

    def optional(column: str) -> np.ndarray | None:
        if column not in dtypes:
            return None
        values = table.column(column)
        if column == "regime":
            return np.asarray(values.to_pylist(), dtype=dtypes[column])
        return np.ascontiguousarray(values.to_numpy(), dtype=dtypes[column])

    ds = Dataset(
        specialty=meta["specialty"],
        name=meta["name"],
        timeframe=meta["timeframe"],
        features=features,
        feature_names=names,
        ts=np.ascontiguousarray(table.column("ts").to_numpy(), dtype=np.int64),
        close=optional("close"),
        regimes=optional("regime"),
        group=optional("group"),
        group_names=tuple(meta["group_names"]),
        target=optional("target"),
        feature_sets={key: tuple(value) for key, value in meta["feature_sets"].items()},
        pooled=bool(meta.get("pooled", False)),
    )
    if ds.digest() != meta["digest"]:
        raise ValueError(
            f"{path}: digest {ds.digest()[:12]} does not match the written "
            f"{meta['digest'][:12]}: the file is damaged"
        )
    return ds
