"""The LiveStore contract (the living loop's bookkeeping) and the loop's collect path, on SQLite
and PostgreSQL: real candles of ../shared/data served by our loopback exchange to the real ccxt
client, collected by ``live.jobs.collect`` at a replayed clock."""

from __future__ import annotations

import gzip
from pathlib import Path

from cluster.config import LiveConfig, load_config
from live.jobs import LiveContext, collect, label
from live.loopback import LoopbackExchange
from live.schedule import Schedule
from market.series import SeriesKey
from market.when import parse_when
from store.db import Store
from store.records.live import LiveAnswerRecord, ValidationRecord, VoteLabelRecord

BTC = SeriesKey("binance", "BTC/USDT", "1h")
HOUR = 3_600_000


def test_watch_is_idempotent_and_keeps_the_first_sight(store: Store) -> None:
    first = store.live.watch(BTC, 1000)
    again = store.live.watch(BTC, 5000)
    assert first == again and again.added_ms == 1000 and not again.enabled
    store.live.set_labelled(BTC, 2500, 7000)
    assert store.live.series(BTC) is not None
    assert [(s.key, s.labelled, s.enabled_ms) for s in store.live.watched()] == [(BTC, 2500, 7000)]


def test_a_job_killed_mid_run_is_due_again_for_its_slot(store: Store) -> None:
    schedule = Schedule("retrain", "0 */6 * * *", run_at_start=True)
    t0 = parse_when("2024-01-01", "t")
    assert schedule.due(store.live.job("retrain"), t0) == t0  # never ran: due at start
    store.live.job_started("retrain", t0, t0)
    assert schedule.due(store.live.job("retrain"), t0 + 5 * HOUR) == t0  # killed: same slot
    store.live.job_finished("retrain", t0 + HOUR, "ok", "done")
    assert schedule.due(store.live.job("retrain"), t0 + 5 * HOUR) is None
    # Down from 05:00 to 20:00: the 06:00, 12:00 and 18:00 slots passed; it runs once, for 18:00.
    assert schedule.due(store.live.job("retrain"), t0 + 20 * HOUR) == t0 + 18 * HOUR
    job = store.live.job("retrain")
    assert job is not None and (job.runs, job.outcome, job.detail) == (1, "ok", "done")


def test_a_waiting_job_runs_at_its_next_slot_not_at_start(store: Store) -> None:
    schedule = Schedule("monitor", "0 * * * *")
    t0 = parse_when("2024-01-01T10:30", "t")
    store.live.job_registered("monitor", schedule.latest(t0))
    store.live.job_registered("monitor", 0)  # registered again: kept
    assert schedule.due(store.live.job("monitor"), t0) is None
    assert schedule.due(store.live.job("monitor"), t0 + HOUR // 2) == t0 + HOUR // 2


def test_answers_labels_and_validations_are_stored_once(store: Store) -> None:
    answer = LiveAnswerRecord(BTC, 3 * HOUR, 1, 0.5, 0.2, "calm_ranging", "v1", "live-1")
    assert store.live.record_answers([answer]) == 1
    assert store.live.record_answers([answer]) == 0
    assert store.live.last_answer(BTC) == 3 * HOUR
    frame = store.live.answers(BTC)
    assert frame[["ts", "direction", "size"]].values.tolist() == [[3 * HOUR, 1, 0.5]]
    label_ = VoteLabelRecord("live-1", "r1", "ta-1", 3 * HOUR, 1, -1, -0.01, True, 4 * HOUR)
    assert store.live.add_labels([label_, label_]) == 1
    assert store.live.labels("r1", "ta-1") == [label_]
    validation = ValidationRecord("technical_analyst", "calm_ranging", "r1", "ta-1", 5 * HOUR,
                                  HOUR, 5 * HOUR, 60, 1.5, None, True, "re-validated")  # fmt: skip
    store.live.add_validation(validation)
    assert store.live.validations("r1", "ta-1") == [validation]
    assert store.live.forget_before(BTC, 4 * HOUR) == 1 and store.live.answers(BTC).empty


def test_events_keep_their_numbers_in_order(store: Store) -> None:
    store.live.event(2000, "retrain", "r2", children=8, promoted=1)
    store.live.event(1000, "auto_enable", "binance BTC/USDT 1h", labelled=2000)
    kinds = [(e.at_ms, e.kind, e.detail) for e in store.live.events()]
    assert kinds == [(1000, "auto_enable", {"labelled": 2000}),
                     (2000, "retrain", {"children": 8, "promoted": 1})]  # fmt: skip
    assert [e.kind for e in store.live.events(since_ms=1500)] == ["retrain"]


def _closes(shared_data: Path, since: int, until: int) -> dict[int, float]:
    out = {}
    with gzip.open(shared_data / "binance_BTC-USDT_1h.csv.gz", "rt") as handle:
        next(handle)
        for line in handle:
            parts = line.split(",")
            ts = int(parts[0])
            if since <= ts < until:
                out[ts] = float(parts[4])
    return out


def test_collect_backfills_then_takes_each_new_close_on_both_backends(
    store: Store, shared_data: Path, tmp_path: Path
) -> None:
    now = [parse_when("2024-01-10T05:30", "t")]
    with LoopbackExchange(shared_data, now_ms=lambda: now[0]) as server:
        live = LiveConfig(watch=("BTC/USDT",), api_base=server.url, history_days=3,
                          fear_greed=False, auto_enable_threshold=60)  # fmt: skip
        config = load_config().model_copy(update={"live": live})
        ctx = LiveContext(config, live, store, tmp_path, lambda: now[0])
        assert collect(ctx, now[0], backfill=True) == "72 candles"
        info = store.candles.series_info(BTC)
        assert info is not None
        assert (info.rows, info.last_ts) == (72, parse_when("2024-01-10T04:00", "t"))
        now[0] = parse_when("2024-01-10T07:00", "t")
        assert collect(ctx, now[0]) == "2 candles"
        assert collect(ctx, now[0]) == "0 candles"  # nothing new: nothing stored twice
        stored = store.candles.load_candles(BTC, parse_when("2024-01-10T05:00", "t"))
        expected = _closes(shared_data, parse_when("2024-01-10T05:00", "t"), now[0])
        assert dict(zip(stored["ts"], stored["close"], strict=True)) == expected
        assert label(ctx, now[0]) == "0 votes labelled"
        watched = store.live.series(BTC)
        assert watched is not None and watched.labelled == 73 and watched.enabled_ms == now[0]
        assert [e.kind for e in store.live.events()] == ["backfill", "auto_enable"]
