"""Candle files: the shared CSVs, freqtrade's JSON and feather layouts, and our Parquet export,
all made from the real BTC/USDT 1h candles and read back exactly."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from market.files import (
    CandleFileError,
    read_candle_file,
    to_epoch_ms,
    write_parquet,
    write_rejects,
)
from market.series import CANDLE_COLUMNS
from market.validation import CandleValidationError, split_valid, validate_candles

# Hand-checked with `zcat binance_BTC-USDT_1h.csv.gz | sed -n '2p;$p'`.
FIRST = [1577836800000, 7195.24, 7196.25, 7175.46, 7177.02, 511.814901]  # 2020-01-01 00:00 UTC
LAST = [1711926000000, 70969.99, 71366.0, 70923.91, 71280.01, 1514.23003]  # 2024-03-31 23:00 UTC


@pytest.fixture(scope="module")
def reference(btc_1h: pd.DataFrame) -> pd.DataFrame:
    """The real candles as a candle frame, the thing every format must read back to."""
    frame = btc_1h[list(CANDLE_COLUMNS)].copy()
    assert frame.iloc[0].tolist() == FIRST
    assert frame.iloc[-1].tolist() == LAST
    return frame


def _freqtrade_frame(reference: pd.DataFrame) -> pd.DataFrame:
    """freqtrade's in-memory layout: ``date`` as datetime64[ns, UTC], then OHLCV."""
    date = pd.to_datetime(reference["ts"], unit="ms", utc=True).astype("datetime64[ns, UTC]")
    return pd.concat([date.rename("date"), reference.drop(columns="ts")], axis=1)


# --- CSV ------------------------------------------------------------------------------------------


def test_reads_the_shared_csv_gz(shared_data: Path, reference: pd.DataFrame) -> None:
    frame = read_candle_file(shared_data / "binance_BTC-USDT_1h.csv.gz")
    assert list(frame.columns) == list(CANDLE_COLUMNS)
    assert frame["ts"].dtype == np.int64
    assert frame.iloc[0].tolist() == FIRST
    assert frame.iloc[-1].tolist() == LAST
    pd.testing.assert_frame_equal(frame, reference)
    eth = read_candle_file(str(shared_data / "binance_ETH-USDT_5m.csv.gz"))  # str paths work too
    assert eth.iloc[0].tolist() == [1704067200000, 2281.87, 2287.84, 2281.27, 2287.84, 910.5701]


@pytest.mark.parametrize(
    ("name", "header", "to_text"),
    [
        pytest.param("plain.csv", "ts", None, id="ts-ms"),
        pytest.param("iso_z.csv.gz", "date", "%Y-%m-%dT%H:%M:%SZ", id="date-iso-z"),
        pytest.param("naive.csv", "Date", "%Y-%m-%d %H:%M:%S", id="Date-naive-utc"),
        pytest.param("offset.csv", "datetime", "%Y-%m-%dT%H:%M:%S+00:00", id="datetime-offset"),
    ],
)
def test_csv_time_columns_and_iso_strings(
    tmp_path: Path, reference: pd.DataFrame, name: str, header: str, to_text: str | None
) -> None:
    frame = reference.head(500).rename(columns={"ts": header})
    if to_text is not None:
        frame[header] = pd.to_datetime(frame[header], unit="ms", utc=True).dt.strftime(to_text)
    if header == "Date":
        frame = frame.rename(columns=str.capitalize)  # Open, High, ... as some exports write them
    frame.to_csv(tmp_path / name, index=False)
    back = read_candle_file(tmp_path / name)
    pd.testing.assert_frame_equal(back, reference.head(500))


def test_iso_times_with_other_offsets_are_converted_to_utc(tmp_path: Path) -> None:
    path = tmp_path / "offsets.csv"
    path.write_text(
        "date,open,high,low,close,volume\n"
        "2020-01-01T02:00:00+02:00,7195.24,7196.25,7175.46,7177.02,511.814901\n"
        "2019-12-31T20:00:00-05:00,7176.47,7230.0,7175.71,7216.27,883.052603\n"
    )
    assert read_candle_file(path)["ts"].tolist() == [1577836800000, 1577840400000]


def test_a_bad_time_cell_reaches_validation_with_its_row(
    tmp_path: Path, reference: pd.DataFrame
) -> None:
    frame = reference.head(30).rename(columns={"ts": "date"})
    frame["date"] = pd.to_datetime(frame["date"], unit="ms", utc=True).dt.strftime("%Y-%m-%d %H:%M")
    frame.loc[12, "date"] = "not a date"
    frame.loc[13, "date"] = None
    frame.to_csv(tmp_path / "bad.csv", index=False)
    raw = read_candle_file(tmp_path / "bad.csv")
    assert raw.loc[11, "ts"] == 1577876400000
    with pytest.raises(
        CandleValidationError,
        match=r"row 12: ts 'not a date' is not an integer millisecond timestamp\n"
        r"  row 13: ts is missing \(got nan\)",
    ):
        validate_candles(raw, "1h")


def test_extra_columns_are_kept_after_the_candle_columns(tmp_path: Path) -> None:
    path = tmp_path / "binance_klines.csv"
    # A Binance kline export: open_time first, then OHLCV, then more columns.
    path.write_text(
        "open_time,open,high,low,close,volume,close_time,trades\n"
        "1577836800000,7195.24,7196.25,7175.46,7177.02,511.814901,1577840399999,7640\n"
    )
    frame = read_candle_file(path)
    assert list(frame.columns) == [*CANDLE_COLUMNS, "close_time", "trades"]
    assert frame.iloc[0, :6].tolist() == FIRST
    assert validate_candles(frame, "1h").iloc[0].tolist() == FIRST


# --- freqtrade ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["BTC_USDT-1h.json", "BTC_USDT-1h.json.gz"])
def test_freqtrade_json(tmp_path: Path, reference: pd.DataFrame, name: str) -> None:
    # What freqtrade's JsonDataHandler.ohlcv_store writes: date as int ms, to_json(orient="values").
    stored = _freqtrade_frame(reference)
    stored["date"] = stored["date"].astype("int64") // 1000 // 1000
    path = tmp_path / name
    stored.to_json(path, orient="values", compression="gzip" if name.endswith(".gz") else None)
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt") as handle:
        text = handle.read()
    assert text.startswith("[[1577836800000,7195.24,7196.25,7175.46,7177.02,511.814901],")
    assert len(json.loads(text)) == 37216

    frame = read_candle_file(path)
    pd.testing.assert_frame_equal(frame, reference)
    assert frame.iloc[0].tolist() == FIRST and frame.iloc[-1].tolist() == LAST


def test_freqtrade_json_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    trades = tmp_path / "BTC_USDT-trades.json"
    # freqtrade's trades layout: [timestamp, id, type, side, price, amount, cost].
    trades.write_text('[[1700179200000,"1","","buy",36480.1,0.01,364.801]]')
    with pytest.raises(
        ValueError, match=r"BTC_USDT-trades.json: freqtrade JSON candles .* rows of 7"
    ):
        read_candle_file(trades)
    broken = tmp_path / "broken.json"
    broken.write_text('{"not": "candles"')
    with pytest.raises(ValueError, match=r"broken.json: not freqtrade JSON candles"):
        read_candle_file(broken)
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    assert validate_candles(read_candle_file(empty), "1h").empty


@pytest.mark.parametrize("unit", ["ns", "ms"])
def test_freqtrade_feather(
    tmp_path: Path, reference: pd.DataFrame, unit: Literal["ns", "ms"]
) -> None:
    # What freqtrade's FeatherDataHandler.ohlcv_store writes (lz4, level 9).
    stored = _freqtrade_frame(reference)
    stored["date"] = stored["date"].astype(pd.DatetimeTZDtype(unit=unit, tz="UTC"))
    path = tmp_path / "BTC_USDT-1h.feather"
    stored.to_feather(path, compression="lz4", compression_level=9)
    schema = feather.read_table(path).schema
    assert schema.field("date").type == pa.timestamp(unit, tz="UTC")

    frame = read_candle_file(path)
    pd.testing.assert_frame_equal(frame, reference)
    assert frame.iloc[0].tolist() == FIRST


# --- Parquet --------------------------------------------------------------------------------------


def test_parquet_round_trip(tmp_path: Path, reference: pd.DataFrame) -> None:
    path = write_parquet(reference, tmp_path / "raw_data" / "binance" / "BTC-USDT" / "1h.parquet")
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["1h.parquet"]  # no partial file left
    schema = pq.read_schema(path)
    assert schema.names == list(CANDLE_COLUMNS)
    assert schema.field("ts").type == pa.int64()
    assert all(schema.field(name).type == pa.float64() for name in CANDLE_COLUMNS[1:])
    frame = read_candle_file(path)
    pd.testing.assert_frame_equal(frame, reference)
    assert frame.iloc[-1].tolist() == LAST


def test_freqtrade_parquet_layout_reads_too(tmp_path: Path, reference: pd.DataFrame) -> None:
    path = tmp_path / "BTC_USDT-1h.parquet"
    _freqtrade_frame(reference).to_parquet(path, index=False)
    pd.testing.assert_frame_equal(read_candle_file(path), reference)


def test_write_parquet_refuses_what_is_not_a_candle_frame(
    tmp_path: Path, reference: pd.DataFrame
) -> None:
    with pytest.raises(ValueError, match=r"bad.parquet: candle frame has no column volume"):
        write_parquet(reference.drop(columns="volume"), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match=r"ts must be integer ms; got dtype float64"):
        write_parquet(reference.astype({"ts": float}), tmp_path / "bad.parquet")
    assert not (tmp_path / "bad.parquet").exists()


# --- Errors ---------------------------------------------------------------------------------------


def test_unknown_extension_and_missing_file_name_the_path(tmp_path: Path) -> None:
    notes = tmp_path / "candles.txt"
    notes.write_text("hello")
    with pytest.raises(ValueError, match=r"cannot read candles from .*candles.txt: unknown file "):
        read_candle_file(notes)
    with pytest.raises(ValueError, match=r"unknown file type '.csv.zip'; expected one of .csv.gz"):
        read_candle_file(tmp_path / "candles.csv.zip")
    with pytest.raises(FileNotFoundError, match=r"candle file not found: .*nowhere.csv.gz"):
        read_candle_file(tmp_path / "nowhere.csv.gz")


def test_a_csv_without_the_needed_columns_is_refused(tmp_path: Path, shared_data: Path) -> None:
    trades = shared_data / "kraken_BTC-USDT_trades.csv.gz"
    with pytest.raises(
        ValueError,
        match=r"kraken_BTC-USDT_trades.csv.gz: missing columns 'open', 'high', 'low', 'close', "
        r"'volume'; "
        r"the file's columns: timestamp, price, amount, side",
    ):
        read_candle_file(trades)
    path = tmp_path / "no_time.csv"
    path.write_text("open,high,low,close,volume\n7195.24,7196.25,7175.46,7177.02,511.814901\n")
    with pytest.raises(
        ValueError, match=r"no_time.csv: missing a time column \(one of ts, timestamp"
    ):
        read_candle_file(path)


def test_to_epoch_ms_conversions() -> None:
    numbers = to_epoch_ms(pd.Series(["1577836800000", "1577840400000"]))
    assert numbers.dtype == np.int64 and numbers.tolist() == [1577836800000, 1577840400000]
    dates = pd.to_datetime(pd.Series(["2020-01-01 00:00:00.0005", None]), utc=True)
    converted = to_epoch_ms(dates)  # sub-millisecond and missing times stay visible to validation
    assert converted[0] == 1577836800000.5  # half a millisecond past midnight
    assert np.isnan(converted[1])
    with pytest.raises(CandleValidationError, match=r"row 0: ts 1577836800000.5 is not an int"):
        validate_candles(
            pd.DataFrame(
                {"ts": converted, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 0.0}
            ),
            "1h",
        )


# --- The --skip-invalid path end to end -----------------------------------------------------------


@pytest.mark.parametrize("rejects_name", ["rejects.csv", "rejects.csv.gz"])
def test_skip_invalid_end_to_end(tmp_path: Path, shared_data: Path, rejects_name: str) -> None:
    with gzip.open(shared_data / "binance_BTC-USDT_1h.csv.gz", "rt") as handle:
        lines = handle.read().splitlines()[:101]  # header + the first 100 real candles
    # lines[k] is row k - 1.
    lines[18] = lines[18].replace("7244.34", "7244.3.4")  # row 17: a typo in open
    lines[41] = lines[40]  # row 40 repeats row 39 (its own candle, 2020-01-02 16:00, is lost)
    lines.append(lines[60])  # row 100 repeats row 59 at the end
    source = tmp_path / "edited.csv"
    source.write_text("\n".join(lines) + "\n")

    raw = read_candle_file(source)
    good, rejects = split_valid(raw, "1h")
    assert len(good) == 98 and len(rejects) == 3
    path = write_rejects(rejects, tmp_path / "out" / rejects_name)
    back = pd.read_csv(path)
    assert list(back.columns) == ["row", *CANDLE_COLUMNS, "reason"]
    assert back["row"].tolist() == [17, 40, 100]
    assert back.loc[0, "open"] == "7244.3.4"
    assert back.loc[0, "reason"] == "open '7244.3.4' is not a number"
    assert back.loc[1, "reason"] == (
        "ts 1577977200000 (2020-01-02 15:00:00 UTC) duplicates row 39 (identical values)"
    )
    assert str(back.loc[2, "reason"]).endswith("duplicates row 59 (identical values)")
    assert [p.name for p in path.parent.iterdir()] == [rejects_name]
    # The good part is the real series without row 17 and without the overwritten 16:00 candle.
    expected = raw.drop(index=[17, 40, 100]).astype(good.dtypes.to_dict())
    pd.testing.assert_frame_equal(good, expected.reset_index(drop=True))
    assert 1577898000000 not in good["ts"].tolist() and 1577980800000 not in good["ts"].tolist()


# --- Files that cannot be read at all -------------------------------------------------------------


def _damaged(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_unreadable_files_name_the_file_and_the_cause(
    tmp_path: Path, shared_data: Path, reference: pd.DataFrame
) -> None:
    """Each damage a real file can suffer: the path, the cause in words, the library's words."""
    real = (shared_data / "binance_BTC-USDT_1h.csv.gz").read_bytes()
    write_parquet(reference.iloc[:500], tmp_path / "ok.parquet")
    parquet = (tmp_path / "ok.parquet").read_bytes()
    feather.write_feather(_freqtrade_frame(reference.iloc[:500]), tmp_path / "ok.feather")
    arrow = (tmp_path / "ok.feather").read_bytes()
    cases = [
        (
            _damaged(tmp_path / "binance_BTC-USDT_1h.csv.gz", real[: len(real) // 2]),
            r"binance_BTC-USDT_1h\.csv\.gz: truncated gzip file \(Compressed file ended before "
            r"the end-of-stream marker was reached\)$",
        ),
        (
            _damaged(tmp_path / "flipped.csv.gz", real[:20] + bytes(200) + real[220:5000]),
            r"flipped\.csv\.gz: corrupt gzip data \(Error -3 while decompressing data",
        ),
        (
            _damaged(tmp_path / "plain.csv.gz", gzip.decompress(real)[:1000]),
            r"plain\.csv\.gz: not a gzip file, although its name ends in \.gz \(Not a gzipped",
        ),
        (
            _damaged(tmp_path / "half.parquet", parquet[: len(parquet) // 2]),
            r"half\.parquet: not a readable parquet file, damaged or truncated \(.*magic bytes",
        ),
        (
            _damaged(tmp_path / "half.feather", arrow[: len(arrow) // 2]),
            r"half\.feather: not a readable feather file, damaged or truncated \(",
        ),
        (
            _damaged(tmp_path / "empty.csv", b""),
            r"empty\.csv: empty file, no header row \(No columns to parse from file\)$",
        ),
        (
            _damaged(
                tmp_path / "ragged.csv",
                b"ts,open,high,low,close,volume\n1,2,3,4,5,6\n1,2,3\n7,8,9,1,2,3,4,5\n",
            ),
            r"ragged\.csv: not a well-formed CSV file \(Error tokenizing data\. C error: Expected "
            r"6 fields in line 4, saw 8\)$",
        ),
        (
            _damaged(
                tmp_path / "latin.csv", b"ts,open,high,low,close,volume\n\xe9\xff\xfe,1,1,1,1,1\n"
            ),
            r"latin\.csv: not a text CSV file \('utf-8' codec can't decode byte",
        ),
        (
            _damaged(tmp_path / "cut.json.gz", gzip.compress(b"[[1,2,3,4,5,6]]" * 50)[:30]),
            r"cut\.json\.gz: truncated gzip file \(Compressed file ended",
        ),
    ]
    (tmp_path / "folder.csv").mkdir()
    cases.append((tmp_path / "folder.csv", r"folder\.csv: is a directory, not a candle file$"))
    for path, message in cases:
        with pytest.raises(CandleFileError, match=message) as caught:
            read_candle_file(path)
        assert caught.value.path == path


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file whatever its mode")
def test_a_file_without_read_permission_says_so(tmp_path: Path, shared_data: Path) -> None:
    path = tmp_path / "binance_BTC-USDT_1h.csv.gz"
    path.write_bytes((shared_data / "binance_BTC-USDT_1h.csv.gz").read_bytes())
    path.chmod(0)
    with pytest.raises(
        CandleFileError, match=r"1h\.csv\.gz: permission denied \(Permission denied"
    ):
        read_candle_file(path)
