"""Datasets per specialty, built from the real sample and the real shared data."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.dataset import Dataset
from agents.datasets import (
    RUGPULL_SHUFFLE_SEED,
    build_datasets,
    daily_sentiment,
    dataset_path,
    read_dataset,
    rugpull_dataset,
    sentiment_dataset,
    stacked_dataset,
    technical_dataset,
    volume_dataset,
    whale_dataset,
    write_dataset,
)
from agents.flow import FlowSpec, read_trades, trades_to_candles, whale_flow
from agents.genome import Genome
from agents.sources import SAMPLE_DIR, DataSources
from agents.specialties import BUILTIN, get_specialty
from agents.training import window_inputs
from market.files import write_parquet
from market.regimes import classify_regimes
from market.sentiment import DAY_MS, read_sentiment
from store.db import Store
from store.ingest import ensure_sample, import_file

KRAKEN = "kraken_BTC-USDT_trades.csv.gz"
XRP_ETH = "binance_XRP-ETH_trades.csv.gz"
TOKENS = "rugpull_uniswapv2_tokens.csv.gz"
SOCIAL = "social_sentiment_btc_1d.csv.gz"
FIVE_MIN = 300_000


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def open_store(folder: Path) -> Store:
    # An explicit SQLite URL: REDLINE_DATABASE_URL must not send these tests elsewhere.
    return Store.open(url=f"sqlite:///{folder / 'redline.db'}")


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The shipped sample (binance BTC/ETH/SOL 1h) imported as a fresh clone would."""
    store = open_store(tmp_path_factory.mktemp("sample"))
    ensure_sample(store)
    yield store
    store.close()


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[Store]:
    store = open_store(tmp_path_factory.mktemp("shared"))
    for symbol in ("BTC", "ETH", "SOL"):
        import_file(store, shared_data / f"binance_{symbol}-USDT_1h.csv.gz")
    yield store
    store.close()


@pytest.fixture(scope="module")
def sample(sample_store: Store, shared_data: Path) -> DataSources:
    return DataSources(
        sample_store,
        trades=(shared_data / KRAKEN, shared_data / XRP_ETH),
        rugpull_tokens=shared_data / TOKENS,
    )


@pytest.fixture(scope="module")
def sample_sets(sample: DataSources) -> dict[str, list[Dataset]]:
    names = [name for name in BUILTIN if name != "report_coordinator"]
    return {name: build_datasets(name, sample) for name in names}


@pytest.fixture(scope="module")
def kraken(shared_data: Path) -> pd.DataFrame:
    return read_trades(shared_data / KRAKEN)


def sample_candles(symbol: str = "BTC-USDT") -> pd.DataFrame:
    return pd.read_csv(SAMPLE_DIR / f"binance_{symbol}_1h.csv.gz").rename(
        columns={"timestamp": "ts"}
    )


def assert_prefix(short: Dataset, full: Dataset) -> None:
    """``short`` (built on less data) is exactly the first rows of ``full``."""
    n = short.n_rows
    assert 0 < n < full.n_rows
    assert short.feature_names == full.feature_names
    np.testing.assert_array_equal(short.ts, full.ts[:n])
    np.testing.assert_array_equal(short.features, full.features[:n])
    for name in ("close", "regimes", "group"):
        a, b = getattr(short, name), getattr(full, name)
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b[:n])


def assert_same(a: Dataset, b: Dataset) -> None:
    for field in dataclasses.fields(Dataset):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, np.ndarray):
            assert isinstance(y, np.ndarray) and x.dtype == y.dtype, field.name
            np.testing.assert_array_equal(x, y)
        else:
            assert x == y, field.name
    assert a.digest() == b.digest()


# -- shapes on the shipped sample ----------------------------------------------------------------

SAMPLE_SHAPES = {
    "technical_analyst": [("binance_BTC-USDT_1h", 15160, 27), ("binance_ETH-USDT_1h", 15160, 27),
                          ("binance_SOL-USDT_1h", 15160, 27)],
    "volume_hunter": [("binance_BTC-USDT_1h", 15287, 15), ("binance_ETH-USDT_1h", 15287, 15),
                      ("binance_SOL-USDT_1h", 15287, 15)],
    "market_scanner": [("binance_panel_1h", 3 * 15191, 11)],
    "whale_watcher": [("kraken_BTC-USDT_trades_5m", 1491, 14),
                      ("binance_XRP-ETH_trades_5m", 644, 14)],
    "sentiment_scout": [("binance_BTC-USDT_1h_sentiment", 15335, 8)],
    "rugpull_detector": [("uniswapv2_tokens", 14628, 18)],
}  # fmt: skip


@pytest.mark.parametrize("specialty", list(SAMPLE_SHAPES))
def test_each_specialty_builds_clean_datasets(
    specialty: str, sample_sets: dict[str, list[Dataset]]
) -> None:
    datasets = sample_sets[specialty]
    got = [(ds.name, ds.n_rows, len(ds.feature_names)) for ds in datasets]
    assert got == SAMPLE_SHAPES[specialty]
    for ds in datasets:
        assert ds.specialty == specialty
        assert ds.features.dtype == np.float32 and ds.features.flags.c_contiguous
        assert np.isfinite(ds.features).all()  # warm-up rows dropped, nothing else missing
        assert ds.ts.dtype == np.int64
        assert tuple(ds.feature_sets) == get_specialty(specialty).feature_sets
        assert ds.feature_sets["all"] == tuple(range(len(ds.feature_names)))
        for key, columns in ds.feature_sets.items():
            assert columns and len(set(columns)) == len(columns), key
        if specialty == "rugpull_detector":
            assert ds.close is None and ds.regimes is None and ds.target is not None
            continue
        assert ds.close is not None and ds.regimes is not None
        assert ds.close.dtype == np.float64 and (ds.close > 0).all()
        step = np.diff(ds.ts)
        if specialty == "market_scanner":
            assert (step >= 0).all()
        else:
            assert (step > 0).all()


def test_technical_rows_are_the_sample_candles_after_the_warm_up(
    sample_sets: dict[str, list[Dataset]],
) -> None:
    ds = sample_sets["technical_analyst"][0]
    candles = sample_candles()
    assert ds.ts[0] == candles["ts"].iloc[199]  # the 200-bar SMA fills at row 199
    np.testing.assert_array_equal(ds.ts, candles["ts"].to_numpy()[199:])
    np.testing.assert_array_equal(ds.close, candles["close"].to_numpy()[199:])
    np.testing.assert_array_equal(ds.regimes, classify_regimes(candles, "1h")[199:])
    names = ds.feature_names
    assert {"logret_1", "close_sma_200", "rsi_7", "macd_hist_12_26_9", "vz_72"} <= set(names)
    fast = {names[i] for i in ds.feature_sets["fast"]}
    slow = {names[i] for i in ds.feature_sets["slow"]}
    assert fast & slow == {"logret_1"} and fast | slow == set(names)
    # Scale-free: RSI in [0, 1], price gaps a few percent, not dollars.
    rsi = ds.features[:, names.index("rsi_7")]
    assert rsi.min() >= 0 and rsi.max() <= 1
    assert np.abs(ds.features[:, names.index("close_sma_200")]).max() < 1


# -- no look-ahead -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "specialty", ["technical_analyst", "volume_hunter", "market_scanner", "sentiment_scout"]
)
def test_datasets_on_the_first_bars_are_the_first_rows_of_all(
    specialty: str, sample: DataSources, sample_sets: dict[str, list[Dataset]]
) -> None:
    cut = int(sample_candles()["ts"].iloc[3000])
    short = build_datasets(specialty, dataclasses.replace(sample, end_ms=cut))
    for part, full in zip(short, sample_sets[specialty], strict=True):
        assert part.ts.max() < cut
        assert_prefix(part, full)


def test_whale_dataset_on_earlier_trades_is_the_first_rows_of_all(kraken: pd.DataFrame) -> None:
    full = whale_dataset(kraken, name="kraken")
    cut = ms("2023-11-19 12:00")
    short = whale_dataset(kraken[kraken["ts"] < cut], name="kraken")
    assert short.ts[-1] == cut - FIVE_MIN
    assert_prefix(short, full)
    flow_all, flow_short = whale_flow(kraken), whale_flow(kraken[kraken["ts"] < cut])
    pd.testing.assert_frame_equal(flow_short, flow_all.iloc[: len(flow_short)])


# -- whale flow, by hand on real Kraken prints ---------------------------------------------------


def test_trades_become_5m_candles(kraken: pd.DataFrame) -> None:
    candles = trades_to_candles(kraken, "5m")
    assert len(candles) == 1545  # 2023-11-17 00:00 .. 2023-11-22 08:40
    assert candles["ts"].iloc[0] == ms("2023-11-17 00:00")
    assert candles["ts"].iloc[-1] == ms("2023-11-22 08:40")
    assert candles["volume"].sum() == pytest.approx(kraken["amount"].sum(), rel=1e-12)
    bar = candles.set_index("ts").loc[ms("2023-11-17 18:55")]
    # The bar's 8 prints (file rows 5678-5685): first 36449.5, last 36453.4, top 36465.7.
    assert (bar.open, bar.high, bar.low, bar.close) == (36449.5, 36465.7, 36449.5, 36453.4)
    assert bar.volume == pytest.approx(
        0.139191 + 0.149438 + 0.136224 + 0.29 + 0.000219 + 0.008125 + 0.000164 + 0.02778
    )
    # 03:45 had no print: a flat candle at 03:40's close, zero volume.
    quiet = candles.set_index("ts").loc[ms("2023-11-17 03:45")]
    before = candles.set_index("ts").loc[ms("2023-11-17 03:40")]
    assert quiet.volume == 0 and quiet.open == quiet.high == quiet.low == quiet.close
    assert quiet.close == before.close


def test_whale_flow_by_hand_on_real_bars(kraken: pd.DataFrame) -> None:
    flow = whale_flow(kraken, "5m", FlowSpec(quantile=0.95, window=1000)).set_index("ts")
    # 18:55: the 1000 prints before it put the 95% size quantile at 0.152236778 BTC. Of the
    # bar's 8 prints only the 0.29 sell is above it (0.149438 is just below).
    bar = flow.loc[ms("2023-11-17 18:55")]
    assert bar.whale_threshold == pytest.approx(0.152236778)
    assert bar.n_trades == 8 and bar.whale_count == 1
    assert bar.whale_volume == pytest.approx(0.29)
    assert bar.whale_share == pytest.approx(0.29 / 0.751141, abs=1e-6)
    assert bar.whale_imbalance == -1.0
    buys = 0.139191 + 0.149438 + 0.136224 + 0.000219 + 0.008125 + 0.02778
    assert bar.imbalance == pytest.approx((buys - 0.290164) / 0.751141, abs=1e-6)
    # 09:10: threshold 0.1860560315; whales: sells of 0.25 and 0.575, a buy of 0.235458.
    bar = flow.loc[ms("2023-11-17 09:10")]
    assert bar.whale_threshold == pytest.approx(0.1860560315)
    assert bar.n_trades == 10 and bar.whale_count == 3
    assert bar.whale_buy_volume == pytest.approx(0.235458)
    assert bar.whale_sell_volume == pytest.approx(0.825)
    assert bar.whale_share == pytest.approx(1.060458 / 1.077535, abs=1e-6)
    assert bar.whale_imbalance == pytest.approx((0.235458 - 0.825) / 1.060458)
    # No threshold until 1000 prints are behind the bar: the first 43 bars.
    assert flow["whale_threshold"].isna().sum() == 43
    assert flow["whale_share"].iloc[:43].isna().all() and flow["imbalance"].notna().all()


def test_whale_flow_matches_a_plain_loop_over_every_bar(shared_data: Path) -> None:
    with gzip.open(shared_data / KRAKEN, "rt", newline="") as handle:
        rows = [
            (int(r["timestamp"]), float(r["amount"]), r["side"]) for r in csv.DictReader(handle)
        ]
    ts = np.array([r[0] for r in rows])
    amount = np.array([r[1] for r in rows])
    buy = np.array([r[2] == "buy" for r in rows])
    flow = whale_flow(read_trades(shared_data / KRAKEN))
    for i, start in enumerate(flow["ts"].to_numpy()):
        prior = amount[ts < start][-1000:]
        inside = (ts >= start) & (ts < start + FIVE_MIN)
        if len(prior) < 1000:
            assert np.isnan(flow["whale_share"].iloc[i])
            continue
        big = inside & (amount > np.quantile(prior, 0.95))
        total = amount[inside].sum()
        share = amount[big].sum() / total if total else 0.0
        assert flow["whale_share"].iloc[i] == pytest.approx(share, abs=1e-12)
        assert flow["whale_count"].iloc[i] == big.sum()
        net = amount[big & buy].sum() - amount[big & ~buy].sum()
        whale = amount[big].sum()
        assert flow["whale_imbalance"].iloc[i] == pytest.approx(net / whale if whale else 0.0)


def test_a_bad_trade_row_is_named(tmp_path: Path, shared_data: Path) -> None:
    with gzip.open(shared_data / KRAKEN, "rt") as handle:
        lines = [next(handle) for _ in range(20)]
    lines[8] = lines[8].replace("buy", "hold").replace("sell", "hold")  # data row 7
    path = tmp_path / "kraken_bad_trades.csv"
    path.write_text("".join(lines))
    with pytest.raises(ValueError, match=r"row 7: side must be 'buy' or 'sell'; got 'hold'"):
        read_trades(path)


# -- sentiment -----------------------------------------------------------------------------------


def daily_file(path: Path, label: str | None = None) -> dict[int, float]:
    with gzip.open(path, "rt", newline="") as handle:
        return {
            int(r["timestamp"]): float(r["value"])
            for r in csv.DictReader(handle)
            if label is None or r["label"] == label
        }


def test_a_bar_on_day_d_sees_fear_and_greed_of_d_minus_1(
    sample_sets: dict[str, list[Dataset]],
) -> None:
    ds = sample_sets["sentiment_scout"][0]
    raw = daily_file(SAMPLE_DIR / "feargreed_crypto_1d.csv.gz")
    seen = ds.features[:, ds.feature_names.index("fear_greed")]
    day = ds.ts - ds.ts % DAY_MS
    yesterday = np.array([raw[d - DAY_MS] / 100 for d in day], dtype=np.float32)
    today = np.array([raw[d] / 100 for d in day], dtype=np.float32)
    np.testing.assert_array_equal(seen, yesterday)
    moved = today != yesterday
    assert moved.sum() > 5000 and not (seen[moved] == today[moved]).any()
    # 2024-03-31: the index read 75 on the 30th; every bar of the 31st sees 0.75.
    last_day = ds.ts >= ms("2024-03-31 00:00")
    assert last_day.sum() == 24 and (seen[last_day] == np.float32(0.75)).all()


def test_social_streams_join_where_they_overlap(shared_store: Store, shared_data: Path) -> None:
    sources = DataSources(
        shared_store,
        fear_greed=shared_data / "feargreed_crypto_1d.csv.gz",
        social_sentiment=shared_data / SOCIAL,
    )
    (ds,) = build_datasets("sentiment_scout", sources)
    assert ds.features.shape == (37192, 17)
    names = ds.feature_names
    known = ds.features[:, names.index("social_stocktwits_known")] == 1
    # The file ends with 2021-05-09: known on the 10th, and carried at most 3 days.
    assert ds.ts[known].max() == ms("2021-05-12 23:00")
    raw = daily_file(shared_data / SOCIAL, "stocktwits")
    row = int(np.flatnonzero(ds.ts == ms("2021-03-15 13:00"))[0])
    assert ds.features[row, names.index("social_stocktwits")] == np.float32(raw[ms("2021-03-14")])
    sentiment = {names[i] for i in ds.feature_sets["sentiment"]}
    assert {"fear_greed", "social_reddit_comments_z30"} <= sentiment
    # The sample's candles (from 2022-07) never meet the streams: no social columns there.
    on_sample = dataclasses.replace(sources, store=shared_store, start_ms=ms("2022-07-01"))
    assert not any(n.startswith("social") for n in build_datasets("sentiment_scout", on_sample)[0]
                   .feature_names)  # fmt: skip
    short = build_datasets("sentiment_scout", dataclasses.replace(sources, end_ms=ms("2021-01-01")))
    assert_prefix(short[0], ds)


# -- shared data ---------------------------------------------------------------------------------


def test_shapes_on_the_shared_data(shared_store: Store) -> None:
    sources = DataSources(shared_store)
    (btc, eth, sol) = build_datasets("technical_analyst", sources)
    assert (btc.n_rows, eth.n_rows, sol.n_rows) == (37017, 37017, 31671)
    (panel,) = build_datasets("market_scanner", sources)
    # SOL starts 2020-08-11 06:00: the panel lives on the 31,870 hours all three share.
    assert panel.n_rows == 3 * (31870 - 168) and panel.group_names == sources.symbols
    assert panel.ts[0] == ms("2020-08-11 06:00") + 168 * 3_600_000
    (volume,) = build_datasets("volume_hunter", dataclasses.replace(sources, symbols=("BTC/USDT",)))
    assert volume.n_rows == 37216 - 72


# -- market_scanner ------------------------------------------------------------------------------


def test_panel_rows_stack_symbols_per_timestamp(sample_sets: dict[str, list[Dataset]]) -> None:
    (ds,) = sample_sets["market_scanner"]
    assert ds.group_names == ("BTC/USDT", "ETH/USDT", "SOL/USDT")
    assert ds.group is not None and ds.close is not None
    n_ts = ds.n_rows // 3
    np.testing.assert_array_equal(ds.group, np.tile([0, 1, 2], n_ts))
    ts = ds.ts.reshape(n_ts, 3)
    assert (ts == ts[:, :1]).all() and (np.diff(ts[:, 0]) > 0).all()
    for index, symbol in enumerate(("BTC-USDT", "ETH-USDT", "SOL-USDT")):
        candles = sample_candles(symbol).set_index("ts")
        np.testing.assert_array_equal(
            ds.close[ds.group == index], candles.loc[ts[:, 0], "close"].to_numpy()
        )
    # Three symbols ranked per timestamp: 0, 0.5 and 1 (ties share the average).
    ranks = ds.features[:, ds.feature_names.index("mom_rank_24")].reshape(n_ts, 3)
    assert np.allclose(ranks.sum(axis=1), 1.5)
    untied = np.sort(ranks, axis=1)
    assert (untied == np.array([0.0, 0.5, 1.0], dtype=np.float32)).all(axis=1).mean() > 0.99
    rel = ds.features[:, ds.feature_names.index("rel_ret_24")].reshape(n_ts, 3)
    assert np.abs(rel.sum(axis=1)).max() < 1e-6


# -- rug pulls -----------------------------------------------------------------------------------


def test_rugpull_tokens_are_shuffled_with_the_documented_seed(
    shared_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = pd.read_csv(shared_data / TOKENS)
    with caplog.at_level(logging.INFO, logger="agents.banks"):
        ds = rugpull_dataset(tokens)
    assert "14628 tokens, 90.0% rug pulls" in caplog.text  # ~9 in 10: accuracy means nothing
    assert ds.target is not None and ds.target.dtype == np.float32
    assert ds.target.sum() == 13167 and (ds.n_rows - ds.target.sum()) == 1461
    np.testing.assert_array_equal(ds.ts, np.arange(14628))
    order = np.random.default_rng(RUGPULL_SHUFFLE_SEED).permutation(14628)
    np.testing.assert_array_equal(ds.target, tokens["is_rugpull"].to_numpy()[order])
    # The file lists legitimate tokens first; the shuffle spreads them over every fold.
    assert tokens["is_rugpull"].iloc[:1000].mean() < 0.5
    assert 0.85 < ds.target[:1000].mean() < 0.95
    names = ds.feature_names
    first = tokens.iloc[order[0]]
    assert ds.features[0, names.index("swap_ratio")] == np.float32(first["swap_ratio"])
    assert ds.features[0, names.index("swap_rate_log1p")] == np.float32(
        np.log1p(first["swap_rate"])
    )
    holding = ds.features[:, names.index("token_creator_holding_ratio_log1p")]
    assert holding.min() == np.float32(-np.log1p(500.0))  # signed: the file has -500
    assert rugpull_dataset(tokens).digest() == ds.digest()
    assert rugpull_dataset(tokens, seed=1).digest() != ds.digest()


# -- report_coordinator --------------------------------------------------------------------------


def test_stacking_joins_members_scores_on_common_timestamps(
    sample_sets: dict[str, list[Dataset]],
) -> None:
    base = sample_sets["technical_analyst"][0]
    names = base.feature_names
    # Scores derived from real features stand in for two members' out-of-sample predictions.
    ta = np.tanh(100 * base.features[:, names.index("logret_4")]).astype(np.float64)
    vh = np.clip(base.features[:, names.index("vz_12")] / 3, -1, 1).astype(np.float64)
    later = np.arange(3000, 8001)[::-1]  # any order: members are matched by timestamp
    predictions = {
        "vh-0002": (base.ts[later], vh[later]),
        "ta-0001": (base.ts[1000:5001], ta[1000:5001]),
    }
    ds = stacked_dataset(base, predictions)
    assert ds.specialty == "report_coordinator" and ds.name == "stack_binance_BTC-USDT_1h"
    assert ds.feature_names == ("score_ta-0001", "score_vh-0002", "consensus_mean", "consensus_std")
    np.testing.assert_array_equal(ds.ts, base.ts[3000:5001])
    assert ds.close is not None and ds.regimes is not None and base.close is not None
    np.testing.assert_array_equal(ds.close, base.close[3000:5001])
    np.testing.assert_array_equal(ds.regimes, base.regimes[3000:5001])  # type: ignore[index]
    np.testing.assert_array_equal(ds.features[:, 0], ta[3000:5001].astype(np.float32))
    np.testing.assert_array_equal(ds.features[:, 1], vh[3000:5001].astype(np.float32))
    mean = (ta[3000:5001] + vh[3000:5001]) / 2
    np.testing.assert_allclose(ds.features[:, 2], mean, atol=1e-6)
    assert ds.feature_sets == {"members": (0, 1), "consensus": (2, 3), "all": (0, 1, 2, 3)}


def test_stacking_refuses_what_it_cannot_align(sample_sets: dict[str, list[Dataset]]) -> None:
    base = sample_sets["technical_analyst"][0]
    score = np.zeros(10)
    with pytest.raises(ValueError, match="at least one member"):
        stacked_dataset(base, {})
    with pytest.raises(ValueError, match=f"member a scores ts {base.ts[0]} twice"):
        stacked_dataset(base, {"a": (np.r_[base.ts[:9], base.ts[0]], score)})
    with pytest.raises(ValueError, match="member a has a non-finite score"):
        stacked_dataset(base, {"a": (base.ts[:10], np.r_[score[:9], np.nan])})
    with pytest.raises(ValueError, match="no timestamp of binance_BTC-USDT_1h was predicted by"):
        stacked_dataset(base, {"a": (base.ts[:10], score), "b": (base.ts[10:20], score)})
    panel = sample_sets["market_scanner"][0]
    with pytest.raises(ValueError, match="repeats timestamps"):
        stacked_dataset(panel, {"a": (panel.ts[:10], score)})


# -- Parquet and digests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "specialty", ["technical_analyst", "market_scanner", "whale_watcher", "rugpull_detector"]
)
def test_parquet_round_trip_is_exact(
    specialty: str, sample_sets: dict[str, list[Dataset]], tmp_path: Path
) -> None:
    ds = sample_sets[specialty][0]
    path = write_dataset(ds, tmp_path)
    assert path == tmp_path / "training_db" / specialty / f"{ds.name}.parquet"
    assert path == dataset_path(tmp_path, specialty, ds.name)
    assert not list(path.parent.glob("*.partial"))
    assert_same(read_dataset(path), ds)
    assert write_dataset(ds, tmp_path) == path  # rewriting replaces the file in place
    columns = pd.read_parquet(path).columns
    assert columns[0] == "ts" and set(ds.feature_names) <= set(columns)


def test_reading_a_file_that_is_not_a_dataset(tmp_path: Path) -> None:
    path = write_parquet(sample_candles().iloc[:10], tmp_path / "candles.parquet")
    with pytest.raises(ValueError, match="not a Redline dataset"):
        read_dataset(path)


def test_digests_are_stable_and_follow_the_data(
    sample: DataSources, sample_sets: dict[str, list[Dataset]]
) -> None:
    again = build_datasets("volume_hunter", sample)
    first = sample_sets["volume_hunter"]
    assert [d.digest() for d in again] == [d.digest() for d in first]
    assert len({d.digest() for d in first}) == 3  # BTC, ETH, SOL differ
    shorter = build_datasets("volume_hunter", dataclasses.replace(sample, end_ms=ms("2024-01-01")))
    assert shorter[0].digest() != first[0].digest()


# -- sources and errors --------------------------------------------------------------------------


def test_missing_inputs_name_the_specialty_and_the_path(
    sample_store: Store, tmp_path: Path
) -> None:
    bare = DataSources(sample_store)
    with pytest.raises(FileNotFoundError, match=r"whale_watcher: DataSources\.trades names no"):
        build_datasets("whale_watcher", bare)
    gone = tmp_path / "kraken_BTC-USDT_trades.csv.gz"
    with pytest.raises(
        FileNotFoundError, match=f"whale_watcher: trades file not found: {re.escape(str(gone))}"
    ):
        build_datasets("whale_watcher", dataclasses.replace(bare, trades=(gone,)))
    with pytest.raises(FileNotFoundError, match=r"rugpull_detector: DataSources\.rugpull_tokens"):
        build_datasets("rugpull_detector", bare)
    social = tmp_path / SOCIAL
    with pytest.raises(FileNotFoundError, match=f"sentiment_scout: social_sentiment file not "
                       f"found: {re.escape(str(social))}"):  # fmt: skip
        build_datasets("sentiment_scout", dataclasses.replace(bare, social_sentiment=social))
    with pytest.raises(ValueError, match=r"technical_analyst: the store .* has no candles for "
                       r"binance:DOGE/USDT:1h"):  # fmt: skip
        build_datasets("technical_analyst", dataclasses.replace(bare, symbols=("doge-usdt",)))
    with pytest.raises(ValueError, match=r"specialty must be one of .*; got 'oracle'"):
        build_datasets("oracle", bare)
    with pytest.raises(ValueError, match=r"report_coordinator: .*stacked_dataset\(base"):
        build_datasets("report_coordinator", bare)
    with pytest.raises(ValueError, match="market_scanner: a panel needs at least 2 symbols"):
        build_datasets("market_scanner", dataclasses.replace(bare, symbols=("BTC/USDT",)))


def test_sources_are_checked(sample_store: Store) -> None:
    with pytest.raises(ValueError, match="symbols must be a non-empty tuple"):
        DataSources(sample_store, symbols="BTC/USDT")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"timeframe must be one of .*; got '7x'"):
        DataSources(sample_store, timeframe="7x")
    sources = DataSources(sample_store, symbols=("btc-usdt", "ETH_USDT"))
    assert sources.symbols == ("BTC/USDT", "ETH/USDT")
    assert sources.fear_greed == SAMPLE_DIR / "feargreed_crypto_1d.csv.gz"


# -- one feature set at a time (what serving builds) ---------------------------------------------

ONE_SET_BUILDERS = {
    "technical_analyst": (technical_dataset, ("fast", "slow")),
    "volume_hunter": (volume_dataset, ("fast", "slow")),
    "sentiment_scout": (sentiment_dataset, ("price", "sentiment")),
}


@pytest.mark.parametrize("specialty", sorted(ONE_SET_BUILDERS))
def test_one_feature_set_gives_the_same_windows_as_every_bank(btc_1h: pd.DataFrame,
                                                              specialty: str) -> None:  # fmt: skip
    """A dataset built for one feature set reads the same bars and values at its last rows as the
    full one, on 500-candle windows ending all through the real BTC series."""
    builder, one_sets = ONE_SET_BUILDERS[specialty]
    fear_greed = read_sentiment(SAMPLE_DIR / "feargreed_crypto_1d.csv.gz")
    extra = (fear_greed,) if specialty == "sentiment_scout" else ()
    ends = np.linspace(2_000, len(btc_1h), 25, dtype=int)
    for end in ends:
        window = btc_1h.iloc[end - 500 : end].reset_index(drop=True)
        full = builder(window, *extra, name="w", timeframe="1h")
        for one in one_sets:
            part = builder(window, *extra, name="w", timeframe="1h", feature_set=one)
            assert set(part.feature_sets) == {one}
            names = [full.feature_names[i] for i in full.feature_sets[one]]
            assert [part.feature_names[i] for i in part.feature_sets[one]] == names
            assert part.n_rows >= full.n_rows
            np.testing.assert_array_equal(part.ts[-full.n_rows :], full.ts)
            genome = Genome(specialty, (("lookback", 24), ("feature_set", one)))
            for rows in (np.arange(full.n_rows - 3, full.n_rows), np.array([full.n_rows - 1])):
                shift = part.n_rows - full.n_rows
                np.testing.assert_array_equal(
                    window_inputs(part, genome, rows + shift), window_inputs(full, genome, rows)
                )
            # serving's tail: the last 3 rows' windows of 24 bars, from 26 rows
            tail = builder(window, *extra, name="w", timeframe="1h", feature_set=one, tail=26)
            assert tail.n_rows == 26
            np.testing.assert_array_equal(tail.ts, full.ts[-26:])
            np.testing.assert_array_equal(tail.close, full.close[-26:])
            np.testing.assert_array_equal(tail.regimes, full.regimes[-26:])
            np.testing.assert_array_equal(
                window_inputs(tail, genome, np.arange(23, 26)),
                window_inputs(full, genome, np.arange(full.n_rows - 3, full.n_rows)),
            )
    # a tail reaching into the warm-up is not complete: every row is assembled
    whole = builder(window, *extra, name="w", timeframe="1h", feature_set=one_sets[0])
    longer = builder(window, *extra, name="w", timeframe="1h", feature_set=one_sets[0], tail=499)
    assert longer.n_rows == whole.n_rows < 499
    np.testing.assert_array_equal(longer.features, whole.features)
    with pytest.raises(ValueError, match=r"feature_set must be one of .*; got 'slowest'"):
        builder(window, *extra, name="w", timeframe="1h", feature_set="slowest")


def test_daily_sentiment_computed_once_refuses_streams_given_again(btc_1h: pd.DataFrame) -> None:
    fear_greed = read_sentiment(SAMPLE_DIR / "feargreed_crypto_1d.csv.gz")
    window = btc_1h.iloc[-500:].reset_index(drop=True)
    daily = daily_sentiment(fear_greed)
    once = sentiment_dataset(window, daily, name="w", timeframe="1h")
    again = sentiment_dataset(window, fear_greed, name="w", timeframe="1h")
    np.testing.assert_array_equal(once.features, again.features)
    with pytest.raises(ValueError, match=r"social is part of a DailySentiment; pass None"):
        sentiment_dataset(window, daily, name="w", timeframe="1h", social={"x": fear_greed})
