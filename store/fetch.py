"""Database first: candles come from the store, and from the exchange only for what is missing.

``fetch_series`` works out which parts of ``[since, until)`` the store lacks, asks the exchange (through
ccxt, paginated, retried with backoff) for just those, and writes each page to the store as it arrives,
so a fetch killed at any point resumes from what was stored, with no duplicates and no holes.

A hole the exchange itself has no candles for (Binance's maintenance windows) is recorded as a known
gap once the exchange has been asked; later fetches do not ask again unless ``refetch_gaps`` is set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import ccxt

from market.exchange import fetch_candles, make_exchange
from market.gaps import Gap, missing_ranges
from market.series import SeriesKey
from market.validation import DEFAULT_PLAUSIBILITY, Plausibility
from store.db import Store

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
"""Called with the number of grid bars just accounted for (fetched or found absent)."""


@dataclass(frozen=True)
class FetchSettings:
    page_limit: int = 1000
    max_retries: int = 6
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    timeout_ms: int = 10_000
    enable_rate_limit: bool = True
    api_base: str | None = None  # a proxy or our loopback test server; None is the exchange itself


@dataclass(frozen=True)
class FetchResult:
    key: SeriesKey
    requested_bars: int
    already_stored: int
    fetched: int
    inserted: int
    known_gaps: tuple[Gap, ...]


def _subtract_known_gaps(
    ranges: list[tuple[int, int]], gaps: list[Gap], step: int
) -> list[tuple[int, int]]:
    """Drop from the half-open ranges every bar that lies in a gap the exchange has confirmed."""
    if not gaps:
        return ranges
    out: list[tuple[int, int]] = []
    for start, end in ranges:
        pieces = [(start, end)]
        for gap in gaps:
            gap_start, gap_end = gap.start_ts, gap.end_ts + step
            next_pieces = []
            for lo, hi in pieces:
                if gap_end <= lo or gap_start >= hi:
                    next_pieces.append((lo, hi))
                    continue
                if lo < gap_start:
                    next_pieces.append((lo, gap_start))
                if gap_end < hi:
                    next_pieces.append((gap_end, hi))
            pieces = next_pieces
        out.extend(pieces)
    return out


def plan_fetch(
    store: Store, key: SeriesKey, since_ms: int, until_ms: int, *, refetch_gaps: bool = False
) -> list[tuple[int, int]]:
    """The half-open ranges of ``[since, until)`` the store lacks and the exchange may still have."""
    step = key.timeframe_ms
    since_ms = since_ms - since_ms % step
    stored = store.candles.existing_timestamps(key, since_ms, until_ms)
    ranges = missing_ranges(stored, since_ms, until_ms, step)
    if refetch_gaps:
        return ranges
    return _subtract_known_gaps(ranges, store.candles.gaps(key), step)


def fetch_series(
    store: Store,
    key: SeriesKey,
    since_ms: int,
    until_ms: int,
    settings: FetchSettings = FetchSettings(),
    *,
    refetch_gaps: bool = False,
    exchange: ccxt.Exchange | None = None,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
    plausibility: Plausibility = DEFAULT_PLAUSIBILITY,
) -> FetchResult:
    """Make the store hold every candle of ``[since, until)`` the exchange has; see the module doc.
    ``plausibility``: the config's ``validation`` limits every page is written under."""
    if until_ms <= since_ms:
        raise ValueError(f"--since must be before --until; got since={since_ms} until={until_ms}")
    step = key.timeframe_ms
    requested = len(range(since_ms - since_ms % step, until_ms, step))
    ranges = plan_fetch(store, key, since_ms, until_ms, refetch_gaps=refetch_gaps)
    missing_bars = sum((end - start) // step for start, end in ranges)
    if progress:
        progress(requested - missing_bars)
    fetched = inserted = 0
    if ranges:
        client = exchange or make_exchange(
            key.exchange,
            api_base=settings.api_base,
            timeout_ms=settings.timeout_ms,
            enable_rate_limit=settings.enable_rate_limit,
        )
        for start, end in ranges:
            log.info("%s: fetching %d bars from %s", key, (end - start) // step, key.exchange)
            covered = start
            for page in fetch_candles(
                client,
                key,
                start,
                end,
                page_limit=settings.page_limit,
                max_retries=settings.max_retries,
                backoff_initial_s=settings.backoff_initial_s,
                backoff_max_s=settings.backoff_max_s,
                sleep=sleep,
            ):
                if page.empty:
                    continue
                inserted += store.candles.write_candles(key, page, plausibility=plausibility)
                fetched += len(page)
                last = int(page["ts"].iloc[-1])
                store.candles.set_cursor(key, max(last, store.candles.get_cursor(key) or last))
                if progress:
                    progress((last + step - covered) // step)
                covered = last + step
            if progress and end > covered:
                progress((end - covered) // step)
        _record_exchange_gaps(store, key, ranges)
    return FetchResult(
        key=key,
        requested_bars=requested,
        already_stored=requested - missing_bars,
        fetched=fetched,
        inserted=inserted,
        known_gaps=tuple(store.candles.gaps(key)),
    )


def _record_exchange_gaps(store: Store, key: SeriesKey, asked: list[tuple[int, int]]) -> None:
    """Holes still open inside ranges the exchange was asked for are the exchange's own gaps.

    That includes a range's leading and trailing parts (before a symbol was listed, say): callers
    never ask for the candle still forming, so an empty answer there is final.
    """
    step = key.timeframe_ms
    known = {gap.start_ts: gap for gap in store.candles.gaps(key)}
    for start, end in asked:
        stored = store.candles.existing_timestamps(key, start, end)
        for hole_start, hole_end in missing_ranges(stored, start, end, step):
            known[hole_start] = Gap(hole_start, hole_end - step, (hole_end - hole_start) // step)
    store.candles.replace_gaps(key, sorted(known.values(), key=lambda gap: gap.start_ts))
