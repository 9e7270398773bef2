"""The replica's prediction writer on a real SQLite store: answers do not wait for the write,
flush waits for it, a failing store is retried and then reported, close writes what is queued."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from serving.writer import PredictionLog
from store.db import Store
from store.records.rugpulls import RugpullAnswerRecord
from store.rugpulls import RugpullStore
from store.trades import PredictionRow, TradesStore

MEMBER = {"agent_id": "ta-1", "run_id": "run-1", "specialty": "technical_analyst",
          "regime": "bull_trending", "generation": 2, "vote": 1, "score": 0.4, "weight": 1.0}  # fmt: skip


def rows(*ids: str) -> list[PredictionRow]:
    return [(request_id, "v1", [MEMBER], "bull_trending") for request_id in ids]


@pytest.fixture
def trades(tmp_path: Path) -> TradesStore:
    return Store.open(f"sqlite:///{tmp_path / 'redline.db'}", home=tmp_path).trades


def test_flush_waits_for_every_queued_prediction(trades: TradesStore) -> None:
    log = PredictionLog(trades)
    for i in range(50):
        log.add(rows(f"req-{i}-a", f"req-{i}-b"))
    assert log.flush(timeout=10)
    assert all(trades.prediction(f"req-{i}-b") is not None for i in range(50))
    assert trades.prediction("req-49-a").members[0].agent_id == "ta-1"  # type: ignore[union-attr]
    log.close()
    assert not log.alive()


def test_a_failing_store_is_retried_then_the_loss_is_logged(
    trades: TradesStore, caplog: pytest.LogCaptureFixture
) -> None:
    log = PredictionLog(trades)
    log.add(rows("dup-1"))
    assert log.flush(timeout=10)
    with caplog.at_level(logging.ERROR, logger="serving.writer"):
        log.add(rows("dup-2", "dup-1"))  # dup-1 is stored: the whole batch is refused each time
        assert log.flush(timeout=10)
    assert "dropped 2 predictions (dup-2, dup-1) after 3 attempts" in caplog.text
    assert trades.prediction("dup-2") is None
    log.add(rows("after"))  # the writer goes on
    assert log.flush(timeout=10) and trades.prediction("after") is not None
    log.close()


def test_close_writes_what_is_queued(trades: TradesStore) -> None:
    log = PredictionLog(trades)
    gate = threading.Event()
    original = trades.append_predictions

    def slow(predictions: list[PredictionRow]) -> None:
        gate.wait(5)
        original(predictions)

    trades.append_predictions = slow  # type: ignore[method-assign]
    for i in range(5):
        log.add(rows(f"late-{i}"))
    gate.set()
    log.close(timeout=10)
    assert not log.alive()
    assert all(trades.prediction(f"late-{i}") is not None for i in range(5))


def test_answers_within_the_linger_share_one_write(trades: TradesStore) -> None:
    log = PredictionLog(trades, linger_s=1.0)
    writes: list[int] = []
    original = trades.append_predictions

    def counted(predictions: list[PredictionRow]) -> None:
        writes.append(len(predictions))
        original(predictions)

    trades.append_predictions = counted  # type: ignore[method-assign]
    for i in range(10):
        log.add(rows(f"linger-{i}"))
    assert log.flush(timeout=10)
    assert writes == [10]
    assert all(trades.prediction(f"linger-{i}") is not None for i in range(10))
    log.close()


def test_flush_does_not_wait_out_the_linger(trades: TradesStore) -> None:
    log = PredictionLog(trades, linger_s=60.0)
    log.add(rows("hurried"))
    assert log.flush(timeout=10)  # within 10 s although the writer would linger a minute
    assert trades.prediction("hurried") is not None
    log.close(timeout=10)
    assert not log.alive()


def test_a_negative_linger_is_refused(trades: TradesStore) -> None:
    with pytest.raises(ValueError, match=r"linger_s must be a number >= 0; got -1"):
        PredictionLog(trades, linger_s=-1)


def test_rugpull_answers_share_the_predictions_write_and_its_all_or_nothing(
    trades: TradesStore, caplog: pytest.LogCaptureFixture
) -> None:
    rugpulls = RugpullStore(trades.database)
    log = PredictionLog(trades, rugpulls=rugpulls)
    answer = RugpullAnswerRecord("rp-1", "v1", "r-rugpull", "rd-1", 0.97, True, 0.5)
    log.add(rows("req-1"))
    log.add_answers([answer])
    assert log.flush(timeout=10)
    assert trades.prediction("req-1") is not None and rugpulls.answer("rp-1") is not None
    with caplog.at_level(logging.ERROR, logger="serving.writer"):
        log.add(rows("req-2"))
        log.add_answers([answer])  # rp-1 is stored: the whole write is refused, req-2 with it
        assert log.flush(timeout=10)
    assert "dropped 2 predictions (req-2, rp-1) after 3 attempts" in caplog.text
    assert trades.prediction("req-2") is None
    log.close()
    with pytest.raises(ValueError, match="this PredictionLog has no rugpulls store"):
        PredictionLog(trades).add_answers([answer])
