"""The replica's prediction log: answers leave at once, their predictions are written just after.

Feedback attributes a trade to the members that voted on the prediction it names, so every answer
is remembered (``TradesStore.append_predictions``). Writing it before the answer leaves put a
database transaction on every request's path; here a daemon thread writes what has queued, all of
it in one transaction, at most ``linger_s`` (default 0.2 s) after the first of it arrived: it
wakes once per write, not once per answer. A transaction per answer, even off the request's path,
took replica CPU from the requests under ``benchmarks/serve.py``'s load (the thread's wake-ups
and SQLAlchemy's per-statement work, contending for the GIL with Serve's threads); lingering
spreads one transaction over the answers of a fifth of a second.

**Feedback still finds its prediction.** A replica asked for feedback on a request id the store
does not know yet first has its own queue written at once (:meth:`PredictionLog.flush` cuts the
linger short and waits) and looks again. With several replicas a trade reported on another
replica's prediction within that fifth of a second could miss it; no real trade opens and closes
that fast, and the bot's retry finds it.
**Rug-pull answers** (``/v1/rugpull`` with a champion) are remembered the same way, for the
outcomes reported on them (``add_answers``: ``store.rugpulls.RugpullStore.append_answers``), in
the same transaction as the predictions queued beside them.
A failed write is retried (3 attempts, 0.1 s apart) and then logged with the request ids it
drops; the replica keeps serving. :meth:`close` (the replica's shutdown) writes what is queued.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence

from store.records.rugpulls import RugpullAnswerRecord
from store.rugpulls import RugpullStore
from store.trades import PredictionRow, TradesStore

__all__ = ["PredictionLog"]

logger = logging.getLogger(__name__)

_ATTEMPTS = 3
_RETRY_S = 0.1
#: How long the writer collects answers after the first before it writes them all (seconds).
LINGER_S = 0.2

#: What the writer stores: a ``/v1/predict`` prediction or a ``/v1/rugpull`` answer.
_Row = PredictionRow | RugpullAnswerRecord


class PredictionLog:
    """A queue of predictions and the thread that writes them (see the module doc)."""

    def __init__(
        self, trades: TradesStore, linger_s: float = LINGER_S, rugpulls: RugpullStore | None = None
    ) -> None:
        if not linger_s >= 0:
            raise ValueError(f"linger_s must be a number >= 0; got {linger_s!r}")
        self._trades = trades
        self._rugpulls = rugpulls
        self._linger_s = linger_s
        self._hurry = threading.Event()  # flush() and close(): write now, do not linger
        self._queue: queue.Queue[Sequence[_Row] | None] = queue.Queue()
        self._written = threading.Condition()
        self._queued = 0  # batches put
        self._done = 0  # batches written (or dropped)
        self._thread = threading.Thread(target=self._run, name="redline-predictions", daemon=True)
        self._thread.start()

    def add(self, predictions: Sequence[PredictionRow]) -> None:
        """Queue ``predictions`` for the writer; returns at once."""
        self._put(predictions)

    def add_answers(self, answers: Sequence[RugpullAnswerRecord]) -> None:
        """Queue rug-pull ``answers`` for the writer (it needs ``rugpulls``); returns at once."""
        if answers and self._rugpulls is None:
            raise ValueError("this PredictionLog has no rugpulls store to write answers to")
        self._put(answers)

    def _put(self, predictions: Sequence[_Row]) -> None:
        if predictions:
            with self._written:
                self._queued += 1
            self._queue.put(predictions)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued before this call is written; False on timeout."""
        with self._written:
            target = self._queued
            if self._done >= target:
                return True
        self._hurry.set()
        with self._written:
            return self._written.wait_for(lambda: self._done >= target, timeout=timeout)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued and stop the thread."""
        self._queue.put(None)
        self._hurry.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is not None and self._linger_s:
                self._hurry.wait(self._linger_s)  # more answers join this write meanwhile
            self._hurry.clear()
            batches = [first]
            while True:  # everything already queued goes in the same transaction
                try:
                    batches.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = None in batches
            rows = [row for batch in batches if batch is not None for row in batch]
            self._write(rows)
            with self._written:
                self._done += sum(batch is not None for batch in batches)
                self._written.notify_all()
            if stop:
                return

    def _write(self, rows: list[_Row]) -> None:
        answers = [row for row in rows if isinstance(row, RugpullAnswerRecord)]
        predictions = [row for row in rows if not isinstance(row, RugpullAnswerRecord)]
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self._trades.transaction():  # one transaction: a retry repeats none of it
                    if predictions:
                        self._trades.append_predictions(predictions)
                    if answers and self._rugpulls is not None:
                        self._rugpulls.append_answers(answers)
                return
            except Exception as exc:  # the store hiccuped: retry, then say what is lost
                if attempt == _ATTEMPTS:
                    ids = [_request_id(row) for row in rows[:5]]
                    logger.error("dropped %d predictions (%s) after %d attempts: %s", len(rows),
                                 ", ".join(ids), attempt, exc)  # fmt: skip
                    return
                time.sleep(_RETRY_S)


def _request_id(row: _Row) -> str:
    return row.request_id if isinstance(row, RugpullAnswerRecord) else row[0]
