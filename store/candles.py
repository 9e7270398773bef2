"""Candles and their ingestion bookkeeping (cursors, known gaps) in one :class:`Database`.

``CandleStore`` takes and returns plain values (candle frames, frozen dataclasses, ``SeriesKey``),
never ORM objects. The same contract suite (tests/store/test_store_contract.py) runs on both
backends.

Writes are idempotent: a candle is keyed by (exchange, symbol, timeframe, ts) and writing it again
changes nothing. Every write is one transaction (or joins the open one), validated before it starts,
so a bad batch raises and leaves the database exactly as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any, Literal

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table, delete, func, select

from market.gaps import Gap
from market.series import CANDLE_COLUMNS, SeriesKey
from market.validation import DEFAULT_PLAUSIBILITY, Plausibility, validate_candles
from store import pgcopy
from store.models import MARKET_DATA_UNIQUE, MarketData, SeriesCursor, SeriesGap
from store.repository import Repository

__all__ = ["WRITE_METHODS", "CandleStore", "Replaced", "SeriesInfo", "WriteMethod"]

logger = logging.getLogger(__name__)

WriteMethod = Literal["auto", "copy", "insert"]
WRITE_METHODS: tuple[str, ...] = ("auto", "copy", "insert")

_PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
_INSERT_COLUMNS = "exchange, symbol, timeframe, ts, open, high, low, close, volume"
_STAGE = "redline_candles_stage"

_candles: Table = MarketData.__table__  # type: ignore[assignment]
_cursors: Table = SeriesCursor.__table__  # type: ignore[assignment]
_gaps: Table = SeriesGap.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class SeriesInfo:
    """What the store holds for one series: its candles' extent and its known gaps."""

    key: SeriesKey
    rows: int
    first_ts: int
    last_ts: int
    gap_count: int
    missing_bars: int


@dataclass(frozen=True)
class Replaced:
    """What :meth:`CandleStore.replace_candles` did: the rows it removed (a candle frame) and how many
    candles it wrote."""

    old: pd.DataFrame
    written: int


class CandleStore(Repository):
    """Candles, cursors and gaps in ``database`` (a :class:`store.database.Database`)."""

    # -- candles -----------------------------------------------------------------------------

    def write_candles(
        self,
        key: SeriesKey,
        candles: pd.DataFrame,
        *,
        method: WriteMethod = "auto",
        plausibility: Plausibility = DEFAULT_PLAUSIBILITY,
    ) -> int:
        """Store a candle frame for ``key``; returns how many candles were new.

        The frame is validated first (``market.validation.validate_candles``): one bad row raises
        ``CandleValidationError`` naming the row, field and value, and nothing is written. Candles
        already stored are left as they are (idempotent). ``method``: ``"copy"`` (the bulk path:
        PostgreSQL COPY into a staging table, SQLite executemany), ``"insert"`` (one INSERT per row,
        the baseline benchmarks compare against), ``"auto"`` (= copy). ``plausibility``: the
        configured ``validation.*`` limits (the defaults when not given).
        """
        if method not in WRITE_METHODS:
            raise ValueError(f"method must be one of {', '.join(WRITE_METHODS)}; got {method!r}")
        clean = validate_candles(candles, key.timeframe, plausibility=plausibility)
        if clean.empty:
            return 0
        with self._db.writing() as connection:
            if method == "insert":
                inserted = self._insert_rows(connection, key, clean)
            else:
                inserted = self._bulk_write(connection, key, clean)
        logger.debug("%s: %d of %d candles new (%s)", key, inserted, len(clean), method)
        return inserted

    def replace_candles(
        self,
        key: SeriesKey,
        candles: pd.DataFrame,
        start_ms: int,
        end_ms: int,
        *,
        plausibility: Plausibility = DEFAULT_PLAUSIBILITY,
        keep_old: Callable[[pd.DataFrame], object] | None = None,
    ) -> Replaced:
        """Make ``candles`` the stored candles of ``key`` with ``start_ms <= ts < end_ms``.

        The one way to correct a stored candle (writes are otherwise first-write-wins). One
        transaction: the stored rows of the range are read, handed to ``keep_old`` (which writes
        them somewhere safe; if it raises, nothing changes), deleted, and ``candles`` written.
        ``candles`` is validated first, strictly, and every one must lie in the range; a bad frame
        raises before the transaction starts. Nothing outside the range changes. Both bounds are
        open times on the key's grid, ``start_ms < end_ms``.
        """
        _check_ts("start_ms", start_ms, key)
        _check_ts("end_ms", end_ms, key)
        if end_ms <= start_ms:
            raise ValueError(f"end_ms must be after start_ms ({start_ms}); got {end_ms}")
        clean = validate_candles(candles, key.timeframe, plausibility=plausibility)
        outside = np.flatnonzero((clean["ts"] < start_ms) | (clean["ts"] >= end_ms))
        if len(outside):
            row = int(outside[0])
            raise ValueError(
                f"row {row}: ts {int(clean['ts'].iloc[row])} is outside the range being replaced "
                f"[{start_ms}, {end_ms}) ({len(outside)} rows are)"
            )
        in_range = (*_series_filter(_candles, key), _candles.c.ts >= start_ms)
        in_range += (_candles.c.ts < end_ms,)
        query = select(*(_candles.c[name] for name in CANDLE_COLUMNS)).where(*in_range)
        with self._db.writing() as connection:
            rows = connection.execute(query.order_by(_candles.c.ts)).all()
            old = pd.DataFrame(rows, columns=list(CANDLE_COLUMNS)).astype(
                {"ts": np.int64} | {name: np.float64 for name in _PRICE_COLUMNS}
            )
            if keep_old is not None and len(old):
                keep_old(old)
            connection.execute(delete(_candles).where(*in_range))
            written = self._bulk_write(connection, key, clean) if len(clean) else 0
        logger.info(
            "%s: replaced %d candles in [%d, %d) by %d", key, len(old), start_ms, end_ms, written
        )
        return Replaced(old=old, written=written)

    def _bulk_write(self, connection: Connection, key: SeriesKey, clean: pd.DataFrame) -> int:
        """Validated candles, new ones only, by the backend's bulk path; how many were new."""
        if self.dialect == "postgresql":
            return self._copy_postgres(connection, key, clean)
        return self._executemany_sqlite(connection, key, clean)

    def _insert_sql(self) -> str:
        mark = "?" if self.dialect == "sqlite" else "%s"
        marks = ", ".join([mark] * 9)
        return (
            f"INSERT INTO market_data ({_INSERT_COLUMNS}) VALUES ({marks}) "
            "ON CONFLICT (exchange, symbol, timeframe, ts) DO NOTHING"
        )

    @staticmethod
    def _rows(key: SeriesKey, clean: pd.DataFrame) -> list[tuple[Any, ...]]:
        # Plain Python ints and floats: drivers bind those without per-value numpy conversions.
        columns = [clean["ts"].to_numpy(dtype=np.int64).tolist()]
        columns += [clean[name].to_numpy(dtype=np.float64).tolist() for name in _PRICE_COLUMNS]
        keys = (repeat(key.exchange), repeat(key.symbol), repeat(key.timeframe))
        return list(zip(*keys, *columns, strict=False))

    def _insert_rows(self, connection: Connection, key: SeriesKey, clean: pd.DataFrame) -> int:
        sql = self._insert_sql()
        driver = connection.connection.driver_connection
        assert driver is not None
        before = driver.total_changes if self.dialect == "sqlite" else 0
        inserted = 0
        cursor = driver.cursor()
        try:
            for row in self._rows(key, clean):
                cursor.execute(sql, row)
                inserted += max(cursor.rowcount, 0)
        finally:
            cursor.close()
        return int(driver.total_changes - before) if self.dialect == "sqlite" else inserted

    def _executemany_sqlite(
        self, connection: Connection, key: SeriesKey, clean: pd.DataFrame
    ) -> int:
        driver = connection.connection.driver_connection
        assert driver is not None
        before = driver.total_changes
        cursor = driver.cursor()
        try:
            # Skip the candles already stored (one range scan of the covering index) rather than
            # letting each one fail its insert: rewriting a stored batch gets ten times cheaper.
            # The write lock is held since BEGIN IMMEDIATE, so nothing lands in between; the
            # ON CONFLICT clause stays as the guarantee.
            cursor.execute(
                "SELECT ts FROM market_data WHERE exchange = ? AND symbol = ? AND timeframe = ? "
                "AND ts BETWEEN ? AND ?",
                (
                    key.exchange,
                    key.symbol,
                    key.timeframe,
                    int(clean["ts"].min()),
                    int(clean["ts"].max()),
                ),
            )
            rows = cursor.fetchall()
            if rows:
                stored = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=len(rows))
                clean = clean[~_contains(np.sort(stored), clean["ts"].to_numpy())]
            if len(clean):
                cursor.executemany(self._insert_sql(), self._rows(key, clean))
        finally:
            cursor.close()
        return int(driver.total_changes - before)

    @staticmethod
    def _copy_postgres(connection: Connection, key: SeriesKey, clean: pd.DataFrame) -> int:
        driver = connection.connection.driver_connection
        assert driver is not None
        columns = ", ".join(f"s.{name}" for name in CANDLE_COLUMNS)
        with driver.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (ts bigint, open float8, high float8, "
                "low float8, close float8, volume float8) ON COMMIT DROP"
            )
            pgcopy.copy_in(cursor, _STAGE, clean, CANDLE_COLUMNS)
            # Row counts let the planner hash the few stored timestamps instead of probing the
            # index once per staged row; JIT only adds compile time to a one-off bulk statement.
            cursor.execute(f"ANALYZE {_STAGE}")
            cursor.execute("SET LOCAL jit = off")
            # Validated batches are in ts order and a scan of the fresh staging table keeps it,
            # so the unique index fills left to right without a sort. The anti-join skips stored
            # candles without a speculative insert each (rewriting a stored batch costs a tenth);
            # ON CONFLICT still covers a concurrent writer committing the same candles meanwhile.
            cursor.execute(
                f"INSERT INTO market_data ({_INSERT_COLUMNS}) "
                "SELECT %(exchange)s::varchar, %(symbol)s::varchar, %(timeframe)s::varchar, "
                f"{columns} FROM {_STAGE} s "
                "WHERE NOT EXISTS (SELECT 1 FROM market_data m WHERE m.exchange = %(exchange)s "
                "AND m.symbol = %(symbol)s AND m.timeframe = %(timeframe)s AND m.ts = s.ts) "
                f"ON CONFLICT ON CONSTRAINT {MARKET_DATA_UNIQUE} DO NOTHING",
                _series_values(key),
            )
            return int(cursor.rowcount)

    def load_candles(
        self, key: SeriesKey, start_ms: int | None = None, end_ms: int | None = None
    ) -> pd.DataFrame:
        """The stored candles of ``key`` with ``start_ms <= ts < end_ms``, as a candle frame."""
        return pd.DataFrame(self._select_range(CANDLE_COLUMNS, key, start_ms, end_ms))

    def existing_timestamps(
        self, key: SeriesKey, start_ms: int | None = None, end_ms: int | None = None
    ) -> np.ndarray:
        """Sorted int64 open times stored for ``key`` with ``start_ms <= ts < end_ms``."""
        return self._select_range(("ts",), key, start_ms, end_ms)["ts"]

    def _select_range(
        self, columns: Sequence[str], key: SeriesKey, start_ms: int | None, end_ms: int | None
    ) -> dict[str, np.ndarray]:
        # Straight through the driver: SQLAlchemy's row objects cost several times the query
        # itself on a million candles, and PostgreSQL's binary COPY skips Python rows entirely.
        mark = "?" if self.dialect == "sqlite" else "%s"
        sql = f"SELECT {', '.join(columns)} FROM market_data WHERE exchange = {mark} "
        sql += f"AND symbol = {mark} AND timeframe = {mark}"
        params: list[Any] = [key.exchange, key.symbol, key.timeframe]
        if start_ms is not None:
            sql += f" AND ts >= {mark}"
            params.append(int(start_ms))
        if end_ms is not None:
            sql += f" AND ts < {mark}"
            params.append(int(end_ms))
        sql += " ORDER BY ts"
        with self._db.reading() as connection:
            driver = connection.connection.driver_connection
            assert driver is not None
            if self.dialect == "postgresql":
                with driver.cursor() as cursor:
                    return pgcopy.copy_out(cursor, sql, params, columns)
            cursor = driver.cursor()
            try:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
            finally:
                cursor.close()
        frame = pd.DataFrame(rows, columns=list(columns))
        return {
            name: frame[name].to_numpy(dtype=np.int64 if name == "ts" else np.float64)
            for name in columns
        }

    def delete_series(self, key: SeriesKey) -> int:
        """Remove a series' candles, cursor and gaps; returns how many candles were removed."""
        with self._db.writing() as connection:
            removed = connection.execute(delete(_candles).where(*_series_filter(_candles, key)))
            connection.execute(delete(_cursors).where(*_series_filter(_cursors, key)))
            connection.execute(delete(_gaps).where(*_series_filter(_gaps, key)))
        logger.info("%s: deleted %d candles", key, removed.rowcount)
        return int(removed.rowcount)

    def delete_before(self, key: SeriesKey, ts_ms: int) -> int:
        """Remove ``key``'s candles opened before ``ts_ms`` (the living loop's retention) and the
        known gaps that end before it; returns how many candles were removed."""
        with self._db.writing() as connection:
            removed = connection.execute(
                delete(_candles).where(*_series_filter(_candles, key), _candles.c.ts < ts_ms)
            )
            connection.execute(
                delete(_gaps).where(*_series_filter(_gaps, key), _gaps.c.end_ts < ts_ms)
            )
        logger.info("%s: deleted %d candles before %d", key, removed.rowcount, ts_ms)
        return int(removed.rowcount)

    # -- series overview ---------------------------------------------------------------------

    def list_series(self) -> list[SeriesInfo]:
        """Every series with at least one candle, ordered by exchange, symbol, timeframe."""
        return self._series_infos(None)

    def series_info(self, key: SeriesKey) -> SeriesInfo | None:
        """What the store holds for ``key``; None when it holds no candle of it."""
        infos = self._series_infos(key)
        return infos[0] if infos else None

    def _series_infos(self, key: SeriesKey | None) -> list[SeriesInfo]:
        # Two aggregates, one per table: the candle one is a single pass over the unique index,
        # so it stays fast on millions of rows.
        series = (_candles.c.exchange, _candles.c.symbol, _candles.c.timeframe)
        candles = select(
            *series, func.count(), func.min(_candles.c.ts), func.max(_candles.c.ts)
        ).group_by(*series)
        gap_series = (_gaps.c.exchange, _gaps.c.symbol, _gaps.c.timeframe)
        gaps = select(
            *gap_series, func.count(), func.coalesce(func.sum(_gaps.c.missing), 0)
        ).group_by(*gap_series)
        if key is not None:
            candles = candles.where(*_series_filter(_candles, key))
            gaps = gaps.where(*_series_filter(_gaps, key))
        with self._db.reading() as connection:
            candle_rows = connection.execute(candles).all()
            gap_stats = {
                (row[0], row[1], row[2]): (int(row[3]), int(row[4]))
                for row in connection.execute(gaps)
            }
        infos = []
        for exchange, symbol, timeframe, rows, first_ts, last_ts in candle_rows:
            gap_count, missing = gap_stats.get((exchange, symbol, timeframe), (0, 0))
            infos.append(
                SeriesInfo(
                    key=SeriesKey(exchange, symbol, timeframe),
                    rows=int(rows),
                    first_ts=int(first_ts),
                    last_ts=int(last_ts),
                    gap_count=gap_count,
                    missing_bars=missing,
                )
            )
        return sorted(infos, key=lambda info: info.key)

    # -- ingestion bookkeeping ---------------------------------------------------------------

    def get_cursor(self, key: SeriesKey) -> int | None:
        """The last open time fetched without holes for ``key``; None before the first fetch."""
        query = select(_cursors.c.last_ts).where(*_series_filter(_cursors, key))
        with self._db.reading() as connection:
            value = connection.execute(query).scalar_one_or_none()
        return None if value is None else int(value)

    def set_cursor(self, key: SeriesKey, ts_ms: int) -> None:
        """Record ``ts_ms`` (a candle open time on the key's grid) as the series' cursor."""
        _check_ts("ts_ms", ts_ms, key)
        values = {**_series_values(key), "last_ts": int(ts_ms), "updated_at": self._db.now()}
        keys = ("exchange", "symbol", "timeframe")
        statement = self._db.upsert(_cursors, keys, values, only_changed=False)
        with self._db.writing() as connection:
            connection.execute(statement, [values])

    def replace_gaps(self, key: SeriesKey, gaps: Sequence[Gap]) -> None:
        """Make ``gaps`` the series' complete list of known gaps (one transaction)."""
        step = key.timeframe_ms
        starts: set[int] = set()
        for index, gap in enumerate(gaps):
            _check_ts(f"gaps[{index}].start_ts", gap.start_ts, key)
            _check_ts(f"gaps[{index}].end_ts", gap.end_ts, key)
            expected = (gap.end_ts - gap.start_ts) // step + 1
            if gap.end_ts < gap.start_ts or gap.missing != expected:
                raise ValueError(
                    f"gaps[{index}].missing must be the bars from start_ts to end_ts ({expected}); "
                    f"got {gap.missing!r} for {gap.start_ts}..{gap.end_ts}"
                )
            if gap.start_ts in starts:
                raise ValueError(f"gaps[{index}].start_ts is listed twice; got {gap.start_ts}")
            starts.add(gap.start_ts)
        now = self._db.now()
        rows = [
            {
                **_series_values(key),
                "start_ts": int(gap.start_ts),
                "end_ts": int(gap.end_ts),
                "missing": int(gap.missing),
                "detected_at": now,
            }
            for gap in gaps
        ]
        with self._db.writing() as connection:
            connection.execute(delete(_gaps).where(*_series_filter(_gaps, key)))
            if rows:
                connection.execute(_gaps.insert(), rows)

    def gaps(self, key: SeriesKey) -> list[Gap]:
        """The series' known gaps, oldest first."""
        query = (
            select(_gaps.c.start_ts, _gaps.c.end_ts, _gaps.c.missing)
            .where(*_series_filter(_gaps, key))
            .order_by(_gaps.c.start_ts)
        )
        with self._db.reading() as connection:
            rows = connection.execute(query).all()
        return [Gap(start_ts=int(s), end_ts=int(e), missing=int(m)) for s, e, m in rows]


def _series_filter(table: Table, key: SeriesKey) -> Iterator[Any]:
    yield table.c.exchange == key.exchange
    yield table.c.symbol == key.symbol
    yield table.c.timeframe == key.timeframe


def _series_values(key: SeriesKey) -> dict[str, str]:
    return {"exchange": key.exchange, "symbol": key.symbol, "timeframe": key.timeframe}


def _contains(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Which of ``values`` are in ``sorted_values`` (a binary search each; np.isin hashes)."""
    at = np.searchsorted(sorted_values, values).clip(max=len(sorted_values) - 1)
    return np.asarray(sorted_values[at] == values)


def _check_ts(field: str, value: object, key: SeriesKey) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{field} must be an integer ms timestamp; got {value!r}")
    if value < 0 or value % key.timeframe_ms:
        raise ValueError(
            f"{field} must be a non-negative open time on the {key.timeframe} grid "
            f"(a multiple of {key.timeframe_ms}); got {value}"
        )
