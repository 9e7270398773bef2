"""The feature banks of each specialty: pure functions from frames to a ``Dataset``.

Split from :mod:`agents.datasets` (which reads a run's inputs and writes Parquet) so each file
reads in one sitting; :mod:`agents.datasets` re-exports every public name here. The rules every
builder keeps are in :mod:`agents.datasets`' docstring.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from agents.dataset import Dataset
from agents.flow import FlowSpec, whale_features
from agents.specialties import get_specialty
from market import features as ft
from market import kernels
from market.regimes import REGIMES, RegimeRules, classify_regimes
from market.sentiment import lagged_daily
from market.series import Candles

logger = logging.getLogger(__name__)

REGIME_DTYPE = f"<U{max(len(name) for name in REGIMES)}"

#: Fast and slow windows (bars) of the technical feature bank; no window is in both, so every
#: column name is unique.
# fmt: off
FAST = ft.FeatureSpec(sma=(5, 10), ema=(5, 12), rsi=7, atr=7, macd_fast=6, macd_slow=13,
                      macd_signal=5, bb=10, vol=12, vz=12)
SLOW = ft.FeatureSpec(sma=(50, 200), ema=(26, 100), rsi=21, atr=21, macd_fast=12, macd_slow=26,
                      macd_signal=9, bb=40, vol=72, vz=72)
# fmt: on
VOLUME_WINDOWS = {"fast": 12, "slow": 72}
PANEL_LOOKBACKS = {"fast": (6, 24), "slow": (72, 168)}

#: Social sentiment streams of social_sentiment_btc_1d.csv.gz, and how many days a value may
#: carry forward over a hole in its stream before it counts as unknown.
SOCIAL_STREAMS: tuple[str, ...] = ("stocktwits", "reddit_submissions", "reddit_comments")
SOCIAL_MAX_AGE_DAYS = 3

#: The 18 token features, grouped as the ``feature_set`` gene picks them; heavy-tailed ones are
#: log1p-scaled (signed: a few holding ratios are negative) and renamed ``<name>_log1p``.
# fmt: off
RUGPULL_FEATURES: dict[str, tuple[str, ...]] = {
    "activity": ("mint_count_per_week", "burn_count_per_week", "mint_ratio", "swap_ratio",
                 "burn_ratio", "mint_mean_period", "swap_mean_period", "burn_mean_period",
                 "swap_in_per_week", "swap_out_per_week", "swap_rate"),
    "holders": ("lp_avg", "lp_std", "lp_creator_holding_ratio", "lp_lock_ratio",
                "token_burn_ratio", "token_creator_holding_ratio",
                "number_of_token_creation_of_creator"),
}
RUGPULL_HEAVY_TAILED = frozenset(
    {"mint_count_per_week", "burn_count_per_week", "swap_in_per_week", "swap_out_per_week",
     "swap_rate", "lp_avg", "lp_std", "token_burn_ratio", "token_creator_holding_ratio",
     "number_of_token_creation_of_creator"}
)
# fmt: on
#: Tokens are not a time series: their order is shuffled once with this seed, so walk-forward
#: folds over rows are random folds, the same on every machine.
RUGPULL_SHUFFLE_SEED = 20240401


Columns = dict[str, np.ndarray]


# -- assembly ------------------------------------------------------------------------------------


def _assemble(
    specialty: str,
    name: str,
    timeframe: str,
    ts: np.ndarray,
    columns: Columns,
    sets: Mapping[str, tuple[str, ...]],
    *,
    close: np.ndarray | None = None,
    regimes: np.ndarray | None = None,
    group: np.ndarray | None = None,
    group_names: tuple[str, ...] = (),
    target: np.ndarray | None = None,
    keep: np.ndarray | None = None,
    partial: bool = False,
    tail: int | None = None,
) -> Dataset:
    """The Dataset of ``columns``: rows with a non-finite feature (warm-up) dropped.

    ``partial``: ``sets`` are some of the specialty's feature sets (see ``_only``), and the
    dataset carries just those (no ``all``). ``tail``: only the last ``tail`` rows (serving,
    which reads the last rows' windows; see ``_tail``).
    """
    names = tuple(columns)
    declared = get_specialty(specialty).feature_sets
    known = set(declared)
    if (not set(sets) < known) if partial else ({*sets, "all"} != known):
        raise AssertionError(f"{specialty}: feature sets {sorted(sets)} != {declared}")
    keys = tuple(sets) if partial else declared
    features = _tail(columns, names, tail) if keep is None else None
    if features is not None:  # the last bars, every one complete: the dataset's last rows
        last = slice(-len(features), None)
        ts = np.asarray(ts)[last]
        close = None if close is None else np.asarray(close)[last]
        regimes = None if regimes is None else np.asarray(regimes)[last]
    else:
        features = _stacked(columns, names)
    finite = np.isfinite(features).all(axis=1)
    if keep is not None:
        finite &= keep
    if not finite.any():
        raise ValueError(
            f"{specialty}: dataset {name} has no row with every feature known "
            f"({len(ts)} rows before the warm-up; the data is shorter than the feature windows)"
        )
    index = {n: i for i, n in enumerate(names)}
    feature_sets = {
        key: tuple(range(len(names))) if key == "all" else tuple(index[n] for n in sets[key])
        for key in keys
    }

    def rows(array: np.ndarray | None) -> np.ndarray | None:
        return None if array is None else np.ascontiguousarray(array[finite])

    ds = Dataset(
        specialty=specialty,
        name=name,
        timeframe=timeframe,
        features=np.ascontiguousarray(features[finite]),
        feature_names=names,
        ts=np.ascontiguousarray(np.asarray(ts, dtype=np.int64)[finite]),
        close=rows(None if close is None else np.asarray(close, dtype=np.float64)),
        regimes=rows(None if regimes is None else np.asarray(regimes, dtype=REGIME_DTYPE)),
        group=rows(None if group is None else np.asarray(group, dtype=np.int32)),
        group_names=group_names,
        target=rows(target),
        feature_sets=feature_sets,
    )
    logger.info(
        "%s/%s: %d rows x %d features (%d warm-up rows dropped)",
        specialty,
        name,
        ds.n_rows,
        len(names),
        len(ts) - ds.n_rows,
    )
    return ds


def _stacked(columns: Columns, names: tuple[str, ...], rows: slice = slice(None)) -> np.ndarray:
    """The feature matrix (float32, one column per name) of ``rows``."""
    stacked = np.column_stack([np.asarray(columns[n][rows], dtype=np.float64) for n in names])
    return stacked.astype(np.float32)


def _tail(columns: Columns, names: tuple[str, ...], tail: int | None) -> np.ndarray | None:
    """The feature matrix of the last ``tail`` bars when every feature is finite on each of
    them, else None (every row is assembled).

    A dataset's rows are the bars whose features are all finite, so when the last ``tail`` bars
    all are, they are exactly its last ``tail`` rows, with the same values; the windows of its
    last rows are read from them (``agents.training.window_inputs``). The bars before them still
    feed the features (EMAs, rolling windows): only the assembly is cut short.
    """
    if tail is None or not names or not 0 < tail < len(columns[names[0]]):
        return None
    last = _stacked(columns, names, slice(-tail, None))
    return last if np.isfinite(last).all() else None


def _values(series: pd.Series | np.ndarray) -> np.ndarray:
    return np.asarray(series, dtype=np.float64)


def _safe_div(num: np.ndarray, den: np.ndarray, empty: float = 0.0) -> np.ndarray:
    """num / den, ``empty`` where den is 0 (NaN stays NaN)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / np.where(den == 0, 1.0, den)
    return np.where(den == 0, empty, out)


OHLCV = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _ohlcv(candles: Candles) -> OHLCV:
    """``high, low, close, volume`` of the candles as float64 arrays."""
    return (_values(candles["high"]), _values(candles["low"]), _values(candles["close"]),
            _values(candles["volume"]))  # fmt: skip


def _only(specialty: str, feature_set: str | None) -> tuple[str, ...] | None:
    """The banks to build for a model reading ``feature_set``: None (every bank) for None or
    ``all``, else that one set (ValueError naming an unknown one).

    Serving builds just what a model reads. After their warm-up the banks' features are finite
    (every division is guarded), so the rows a window reads are the same bars with one bank or
    all of them, and their values are the same: ``tests/agents/test_datasets.py`` checks it on
    real windows for every specialty and set.
    """
    if feature_set is None or feature_set == "all":
        return None
    declared = get_specialty(specialty).feature_sets
    if feature_set not in declared:
        raise ValueError(
            f"{specialty}: feature_set must be one of {list(declared)}; got {feature_set!r}"
        )
    return (feature_set,)


# -- technical_analyst ---------------------------------------------------------------------------


def _technical_bank(ohlcv: OHLCV, spec: ft.FeatureSpec, ret: int) -> Columns:
    """One feature bank of market.features at ``spec``'s windows, made scale-free."""
    high, low, close, volume = ohlcv
    raw = ft.feature_arrays(high, low, close, volume, spec)
    macd = f"{spec.macd_fast}_{spec.macd_slow}"
    out: Columns = {f"logret_{ret}": kernels.log_returns(close, ret)}
    for n in spec.sma:
        out[f"close_sma_{n}"] = close / raw[f"sma_{n}"] - 1.0
    for n in spec.ema:
        out[f"close_ema_{n}"] = close / raw[f"ema_{n}"] - 1.0
    out[f"rsi_{spec.rsi}"] = raw[f"rsi_{spec.rsi}"] / 100.0
    out[f"atr_{spec.atr}"] = raw[f"atr_{spec.atr}"] / close
    out[f"macd_{macd}"] = raw["macd"] / close
    out[f"macd_signal_{macd}_{spec.macd_signal}"] = raw["macd_signal"] / close
    out[f"macd_hist_{macd}_{spec.macd_signal}"] = raw["macd_hist"] / close
    out[f"bb_width_{spec.bb}"] = raw[f"bb_width_{spec.bb}"]
    out[f"rv_{spec.vol}"] = raw[f"rv_{spec.vol}"]
    out[f"vz_{spec.vz}"] = raw[f"vz_{spec.vz}"]
    return out


def _series_dataset(
    specialty: str,
    candles: Candles,
    banks: Mapping[str, Columns],
    name: str,
    timeframe: str,
    rules: RegimeRules | None,
    regimes: np.ndarray | None,
    partial: bool = False,
    tail: int | None = None,
) -> Dataset:
    close = _values(candles["close"])
    columns: Columns = {"logret_1": kernels.log_returns(close)}
    sets: dict[str, tuple[str, ...]] = {}
    for key, bank in banks.items():
        clash = sorted(set(bank) & set(columns))
        if clash:
            raise AssertionError(f"{specialty}: feature {clash[0]} in two banks")
        columns.update(bank)
        sets[key] = ("logret_1", *bank)
    return _assemble(
        specialty,
        name,
        timeframe,
        np.asarray(candles["ts"]),
        columns,
        sets,
        close=close,
        regimes=classify_regimes(candles, timeframe, rules) if regimes is None else regimes,
        partial=partial,
        tail=tail,
    )


def series_dataset(
    specialty: str,
    candles: Candles,
    banks: Mapping[str, Columns],
    *,
    name: str,
    timeframe: str,
    rules: RegimeRules | None = None,
    regimes: np.ndarray | None = None,
    tail: int | None = None,
) -> Dataset:
    """A candle specialty's Dataset (what a plug-in's builder returns; see agents/specialties).

    ``banks`` maps each of the specialty's feature sets but ``all`` to its columns (arrays as long
    as the candles, causal and scale-free; a column name in one bank only); ``logret_1`` joins every
    set, ``all`` is every column. Regimes, warm-up and ``tail`` as for the built-in builders.
    """
    return _series_dataset(specialty, candles, banks, name, timeframe, rules, regimes, tail=tail)


def technical_dataset(
    candles: Candles,
    *,
    name: str,
    timeframe: str,
    rules: RegimeRules | None = None,
    regimes: np.ndarray | None = None,
    feature_set: str | None = None,
    tail: int | None = None,
) -> Dataset:
    """technical_analyst: the market.features bank at the FAST and SLOW windows, scale-free.

    Feature sets: ``fast`` (logret_1 + the FAST bank), ``slow`` (logret_1 + the SLOW bank), ``all``.
    ``candles``: a candle frame or its columns as arrays (``market.series.Candles``);
    ``regimes``: the candles' ``classify_regimes`` when the caller already has it (serving);
    ``feature_set``: build only that set's bank (serving; see ``_only``), None: every bank;
    ``tail``: only the last ``tail`` rows when they are complete (serving; see ``_tail``).
    """
    ohlcv = _ohlcv(candles)
    only = _only("technical_analyst", feature_set)
    specs = {"fast": (FAST, 4), "slow": (SLOW, 24)}
    banks = {k: _technical_bank(ohlcv, *spec) for k, spec in specs.items() if not only or k in only}
    return _series_dataset("technical_analyst", candles, banks, name, timeframe, rules, regimes,
                           partial=only is not None, tail=tail)  # fmt: skip


# -- volume_hunter -------------------------------------------------------------------------------


def _volume_bank(ohlcv: OHLCV, w: int) -> Columns:
    """Volume-centred features over a window of ``w`` bars (all causal, all scale-free)."""
    high, low, close, v = ohlcv
    mean_volume = kernels.rolling_mean(v, w)
    rel_volume = _safe_div(v, mean_volume, empty=1.0)
    rel_range = _safe_div(kernels.true_range(high, low, close), kernels.atr(high, low, close, w))
    move = kernels.diff(close)
    signed = np.sign(np.where(np.isnan(move), 0.0, move)) * v
    spread = high - low
    location = _safe_div((close - low) - (high - close), spread)  # -1 at low, 1 at high
    typical = (high + low + close) / 3.0
    volume_sum = kernels.rolling_sum(v, w)
    vwap = _safe_div(kernels.rolling_sum(typical * v, w), volume_sum, empty=np.nan)
    vwap = np.where(np.isnan(vwap) & ~np.isnan(volume_sum), close, vwap)
    return {
        f"logret_{w}": kernels.log_returns(close, w),
        f"vz_{w}": kernels.volume_zscore(v, w),
        f"relvol_{w}": np.log1p(rel_volume),
        # Effort against result: much volume for a small range is absorption.
        f"effort_{w}": np.log1p(rel_volume) - np.log1p(rel_range),
        f"obv_flow_{w}": _safe_div(kernels.rolling_sum(signed, w), volume_sum),
        f"cmf_{w}": _safe_div(kernels.rolling_sum(location * v, w), volume_sum),
        f"vwap_gap_{w}": close / vwap - 1.0,
    }


def volume_dataset(
    candles: Candles,
    *,
    name: str,
    timeframe: str,
    rules: RegimeRules | None = None,
    regimes: np.ndarray | None = None,
    feature_set: str | None = None,
    tail: int | None = None,
) -> Dataset:
    """volume_hunter: volume z-score, relative volume, volume vs ATR (effort), OBV-like and
    Chaikin money flows, VWAP gap and return, each at a fast and a slow window.

    Feature sets: ``fast`` / ``slow`` (logret_1 + the window's bank), ``all``; ``candles``,
    ``regimes``, ``feature_set`` and ``tail`` as in ``technical_dataset``.
    """
    ohlcv = _ohlcv(candles)
    only = _only("volume_hunter", feature_set)
    banks = {k: _volume_bank(ohlcv, w) for k, w in VOLUME_WINDOWS.items() if not only or k in only}
    return _series_dataset("volume_hunter", candles, banks, name, timeframe, rules, regimes,
                           partial=only is not None, tail=tail)  # fmt: skip


# -- market_scanner ------------------------------------------------------------------------------


def panel_dataset(
    candles: Mapping[str, pd.DataFrame],
    *,
    name: str,
    timeframe: str,
    rules: RegimeRules | None = None,
) -> Dataset:
    """market_scanner: one panel over the symbols, on the timestamps they all have.

    Rows are ``(ts, symbol)`` in time order, symbols in the mapping's order within a timestamp;
    ``group`` is the symbol's index in ``group_names``. Features per row: the symbol's return,
    its cross-sectional momentum rank and its return relative to the panel's mean at each
    lookback, plus its volume z-score (fast) or realized volatility (slow). A timestamp is kept
    only when every symbol's features are known there, so each kept timestamp has every symbol.
    """
    symbols = tuple(candles)
    if len(symbols) < 2:
        raise ValueError(f"market_scanner: a panel needs at least 2 symbols; got {list(symbols)}")
    common = candles[symbols[0]]["ts"].to_numpy(dtype=np.int64)
    for symbol in symbols[1:]:
        common = np.intersect1d(common, candles[symbol]["ts"].to_numpy(dtype=np.int64))
    if len(common) == 0:
        raise ValueError(f"market_scanner: symbols {list(symbols)} share no timestamp")
    aligned = {s: candles[s][candles[s]["ts"].isin(common)].reset_index(drop=True) for s in symbols}
    closes = pd.DataFrame({s: aligned[s]["close"].astype("float64") for s in symbols})
    logclose = pd.DataFrame(np.log(closes.to_numpy()), columns=closes.columns)
    per: dict[str, pd.DataFrame] = {}  # feature -> (ts x symbol)
    per["logret_1"] = logclose.diff()
    sets: dict[str, tuple[str, ...]] = {}
    for key, lookbacks in PANEL_LOOKBACKS.items():
        names = ["logret_1"]
        for n in lookbacks:
            move = logclose - logclose.shift(n)
            per[f"mom_rank_{n}"] = ft.momentum_rank(closes, n)
            per[f"rel_ret_{n}"] = move.sub(move.mean(axis=1, skipna=False), axis=0)
            names += [f"mom_rank_{n}", f"rel_ret_{n}"]
        sets[key] = tuple(names)
    per["vz_24"] = pd.DataFrame({s: ft.volume_zscore(aligned[s]["volume"], 24) for s in symbols})
    per["rv_72"] = pd.DataFrame({s: ft.realized_volatility(closes[s], 72) for s in symbols})
    sets = {"fast": (*sets["fast"], "vz_24"), "slow": (*sets["slow"], "rv_72")}
    n_ts, n_sym = len(common), len(symbols)
    # (ts, symbol) flattened ts-major: row ts_index * n_sym + symbol_index.
    columns = {f: per[f][list(symbols)].to_numpy(dtype=np.float64).reshape(-1) for f in per}
    stacked = np.column_stack(list(columns.values()))
    whole_ts = np.isfinite(stacked.astype(np.float32)).all(axis=1).reshape(n_ts, n_sym).all(axis=1)
    regimes = np.column_stack([classify_regimes(aligned[s], timeframe, rules) for s in symbols])
    return _assemble(
        "market_scanner",
        name,
        timeframe,
        np.repeat(common, n_sym),
        columns,
        sets,
        close=closes.to_numpy().reshape(-1),
        regimes=regimes.reshape(-1),
        group=np.tile(np.arange(n_sym), n_ts),
        group_names=symbols,
        keep=np.repeat(whole_ts, n_sym),
    )


# -- whale_watcher -------------------------------------------------------------------------------


def whale_dataset(
    trades: pd.DataFrame,
    *,
    name: str,
    timeframe: str = "5m",
    spec: FlowSpec | None = None,
    rules: RegimeRules | None = None,
) -> Dataset:
    """whale_watcher: candles and whale flow from trades (:func:`agents.flow.whale_features`).

    Feature sets: ``flow`` (whale share, count, imbalance; all-print imbalance and trade count;
    net and whale net flow over 6 and 12 bars), ``price`` (returns, realized volatility,
    relative volume), ``all``. The trailing size window (1000 prints) is the warm-up.
    """
    candles, flow, price = whale_features(trades, timeframe, spec)
    return _assemble(
        "whale_watcher",
        name,
        timeframe,
        candles["ts"].to_numpy(),
        flow | price,
        {"flow": tuple(flow), "price": tuple(price)},
        close=_values(candles["close"]),
        regimes=classify_regimes(candles, timeframe, rules),
    )


# -- sentiment_scout -----------------------------------------------------------------------------


def _daily_z(values: pd.Series, window: int = 30) -> pd.Series:
    rolling = values.rolling(window, min_periods=window)
    std = rolling.std(ddof=1)
    return ((values - rolling.mean()) / std).mask(std == 0.0, 0.0)


@dataclass(frozen=True, eq=False)
class DailySentiment:
    """The sentiment scout's daily features, computed once on the daily series: each column's
    ``(day ts, values, max age in days)``, joined to bars by :func:`sentiment_dataset`."""

    mood: dict[str, tuple[np.ndarray, np.ndarray, int | None]]
    social: dict[str, tuple[np.ndarray, np.ndarray]]  # stream -> (day ts, its 30-day z-score)


def daily_sentiment(
    fear_greed: pd.DataFrame, social: Mapping[str, pd.DataFrame] | None = None
) -> DailySentiment:
    """The value, 1- and 7-day change and 30-day z-score of fear & greed (scaled to [0, 1]),
    and each social stream's value and z-score, on their own days."""
    fg_ts = fear_greed["ts"].to_numpy(dtype=np.int64)
    fg = fear_greed["value"].astype("float64") / 100.0
    mood: dict[str, tuple[np.ndarray, np.ndarray, int | None]] = {
        "fear_greed": (fg_ts, _values(fg), None),
        "fear_greed_chg_1d": (fg_ts, _values(fg.diff(1)), None),
        "fear_greed_chg_7d": (fg_ts, _values(fg.diff(7)), None),
        "fear_greed_z30": (fg_ts, _values(_daily_z(fg)), None),
    }
    streams: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for stream, daily in (social or {}).items():
        day_ts = daily["ts"].to_numpy(dtype=np.int64)
        mood[f"social_{stream}"] = (day_ts, _values(daily["value"]), SOCIAL_MAX_AGE_DAYS)
        streams[stream] = (day_ts, _values(_daily_z(daily["value"].astype("float64"))))
    return DailySentiment(mood, streams)


def sentiment_dataset(
    candles: Candles,
    fear_greed: pd.DataFrame | DailySentiment,
    *,
    name: str,
    timeframe: str,
    social: Mapping[str, pd.DataFrame] | None = None,
    rules: RegimeRules | None = None,
    regimes: np.ndarray | None = None,
    feature_set: str | None = None,
    tail: int | None = None,
) -> Dataset:
    """sentiment_scout: daily sentiment lagged one day beside a few price features.

    ``fear_greed`` and each ``social`` stream are daily ``ts, value`` frames
    (:func:`market.sentiment.read_sentiment`), or their :func:`daily_sentiment` computed once
    (the live service; ``social`` is then part of it). Daily features (the value, its 1- and
    7-day change, its 30-day z-score) are computed on the daily series, then joined so a bar on
    day ``D`` sees day ``D - 1`` at the latest. A social stream is used only where it overlaps
    the candles: ``social_<stream>_known`` is 1 where a value at most 3 days old is known and the
    stream's columns read 0 elsewhere (the file ends in May 2021); a stream with no overlap at
    all is left out. Feature sets: ``price``, ``sentiment``, ``all``. ``candles``, ``regimes``,
    ``feature_set`` and ``tail`` as in ``technical_dataset``.
    """
    only = _only("sentiment_scout", feature_set)
    if isinstance(fear_greed, DailySentiment):
        if social is not None:
            raise ValueError("sentiment_dataset: social is part of a DailySentiment; pass None")
        daily = fear_greed
    else:
        daily = daily_sentiment(fear_greed, social)
    close = _values(candles["close"])
    bar_ts = np.asarray(candles["ts"], dtype=np.int64)
    price: Columns = {}
    if not only or "price" in only:
        price = {
            "logret_1": kernels.log_returns(close, 1),
            "logret_24": kernels.log_returns(close, 24),
            "rv_24": kernels.realized_volatility(close, 24),
            "rsi_14": kernels.rsi(close, 14) / 100.0,
        }
    mood: Columns = {}
    for column, (day_ts, values, max_age) in (
        daily.mood.items() if not only or "sentiment" in only else ()
    ):
        lagged = lagged_daily(bar_ts, day_ts, values, max_age_days=max_age, name=column)
        stream = column.removeprefix("social_")
        if stream not in daily.social:
            mood[column] = lagged
            continue
        z_ts, z_values = daily.social[stream]
        z = lagged_daily(bar_ts, z_ts, z_values, max_age_days=max_age, name=column)
        known = np.isfinite(lagged) & np.isfinite(z)
        if not known.any():
            logger.info("sentiment_scout: social stream %s does not overlap %s", stream, name)
            continue
        mood[column] = np.where(known, lagged, 0.0)
        mood[f"{column}_z30"] = np.where(known, z, 0.0)
        mood[f"{column}_known"] = known.astype(np.float64)
    sets = {"price": tuple(price), "sentiment": tuple(mood)}
    return _assemble(
        "sentiment_scout",
        name,
        timeframe,
        bar_ts,
        price | mood,
        {k: v for k, v in sets.items() if not only or k in only},
        close=close,
        regimes=classify_regimes(candles, timeframe, rules) if regimes is None else regimes,
        partial=only is not None,
        tail=tail,
    )


# -- rugpull_detector ----------------------------------------------------------------------------


def rugpull_dataset(tokens: pd.DataFrame, *, seed: int = RUGPULL_SHUFFLE_SEED) -> Dataset:
    """rugpull_detector: the 18 token features and the ``is_rugpull`` target (float32 0/1).

    Rows are shuffled once with ``seed`` (documented: RUGPULL_SHUFFLE_SEED); ``ts`` is the row
    number after the shuffle. No close and no regimes: tokens are not a price series.
    Feature sets: ``activity`` (mint/burn/swap activity), ``holders`` (liquidity and holdings),
    ``all``.
    """
    needed = ["is_rugpull", *RUGPULL_FEATURES["activity"], *RUGPULL_FEATURES["holders"]]
    missing = [column for column in needed if column not in tokens.columns]
    if missing:
        raise ValueError(f"rugpull_detector: token table lacks column(s) {', '.join(missing)}")
    target = tokens["is_rugpull"]
    if not target.isin([0, 1]).all():
        bad = target[~target.isin([0, 1])]
        raise ValueError(
            f"rugpull_detector: is_rugpull must be 0 or 1; got {bad.iloc[0]!r} "
            f"at row {bad.index[0]}"
        )
    order = np.random.default_rng(seed).permutation(len(tokens))
    columns: Columns = {}
    sets: dict[str, tuple[str, ...]] = {}
    for key, group in RUGPULL_FEATURES.items():
        names = []
        for column in group:
            x = tokens[column].to_numpy(dtype=np.float64)[order]
            if column in RUGPULL_HEAVY_TAILED:
                x, column = np.sign(x) * np.log1p(np.abs(x)), f"{column}_log1p"
            columns[column] = x
            names.append(column)
        sets[key] = tuple(names)
    y = target.to_numpy(dtype=np.float32)[order]
    ds = _assemble(
        "rugpull_detector",
        "uniswapv2_tokens",
        "",
        np.arange(len(tokens)),
        columns,
        sets,
        target=y,
    )
    logger.info("rugpull_detector: %d tokens, %.1f%% rug pulls", ds.n_rows, 100 * y.mean())
    return ds


# -- report_coordinator --------------------------------------------------------------------------


def stacked_dataset(
    base: Dataset, predictions: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> Dataset:
    """report_coordinator: the members' out-of-sample scores as features, on ``base``'s bars.

    ``predictions`` maps a member (agent id) to ``(oos_ts, oos_score)`` from its ChildReport.
    Rows are the timestamps of ``base`` that *every* member predicted (inner join), in base order;
    close and regimes come from ``base``. Features: ``score_<member>`` per member (sorted by name),
    and the ``consensus_mean`` / ``consensus_std`` of the scores.

    No leakage: a member's score at ``t`` was made out of sample by a model that never trained on
    ``t`` (or on anything after its fold's start, less purge and embargo), from features known at
    ``t``; so a row of this dataset holds only what was knowable at ``t``. The coordinator then
    runs its own walk-forward over these rows: it trains on earlier scores and is scored on later
    ones it never saw.
    """
    if not predictions:
        raise ValueError("report_coordinator: predictions must name at least one member; got none")
    base_ts = np.asarray(base.ts, dtype=np.int64)
    if len(np.unique(base_ts)) != len(base_ts):
        raise ValueError(
            f"report_coordinator: base {base.name} repeats timestamps (a panel?); "
            "stack on a single series"
        )
    members = sorted(predictions)
    keep = np.ones(len(base_ts), dtype=bool)
    scores: dict[str, pd.Series] = {}
    for member in members:
        ts, score = (np.asarray(a) for a in predictions[member])
        if ts.shape != score.shape or ts.ndim != 1:
            raise ValueError(
                f"report_coordinator: member {member}: ts {ts.shape} and score "
                f"{score.shape} must be 1-d of one length"
            )
        series = pd.Series(score.astype(np.float64), index=ts.astype(np.int64))
        if series.index.duplicated().any():
            dup = int(series.index[series.index.duplicated()][0])
            raise ValueError(f"report_coordinator: member {member} scores ts {dup} twice")
        if not np.isfinite(score).all():
            raise ValueError(f"report_coordinator: member {member} has a non-finite score")
        keep &= np.isin(base_ts, ts)
        scores[member] = series
    if not keep.any():
        raise ValueError(
            f"report_coordinator: no timestamp of {base.name} was predicted by "
            f"every member ({', '.join(members)})"
        )
    ts = base_ts[keep]
    columns: Columns = {f"score_{m}": scores[m].reindex(ts).to_numpy() for m in members}
    matrix = np.column_stack(list(columns.values()))
    columns["consensus_mean"] = matrix.mean(axis=1)
    columns["consensus_std"] = matrix.std(axis=1)
    sets = {
        "members": tuple(columns)[: len(members)],
        "consensus": ("consensus_mean", "consensus_std"),
    }
    return _assemble(
        "report_coordinator",
        f"stack_{base.name}",
        base.timeframe,
        ts,
        columns,
        sets,
        close=None if base.close is None else base.close[keep],
        regimes=None if base.regimes is None else base.regimes[keep],
    )
