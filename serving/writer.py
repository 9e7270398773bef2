"""The replica's prediction log: answers leave at once, their predictions are written just after.

Feedback attributes a trade to the members that voted on the prediction it names, so every answer
is remembered (``TradesStore.append_predictions``). Writing it before the answer leaves put a
database transaction on every request's path; here a daemon thread writes whatever has queued,
all of it in one transaction, as soon as it is there (a few milliseconds behind the answer,
several answers per write under load).

**Feedback still finds its prediction.** A replica asked for feedback on a request id the store
does not know yet first waits for its own queue to drain (:meth:`PredictionLog.flush`) and looks
again. With several replicas a trade reported on another replica's prediction within those few
milliseconds could miss it; no real trade opens and closes that fast, and the bot's retry finds it.
A failed write is retried (3 attempts, 0.1 s apart) and then logged with the request ids it
drops; the replica keeps serving. :meth:`close` (the replica's shutdown) writes what is queued.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence

from store.trades import PredictionRow, TradesStore

__all__ = ["PredictionLog"]

logger = logging.getLogger(__name__)

_ATTEMPTS = 3
_RETRY_S = 0.1


class PredictionLog:
    """A queue of predictions and the thread that writes them (see the module doc)."""

    def __init__(self, trades: TradesStore) -> None:
        self._trades = trades
        self._queue: queue.Queue[Sequence[PredictionRow] | None] = queue.Queue()
        self._written = threading.Condition()
        self._queued = 0  # batches put
        self._done = 0  # batches written (or dropped)
        self._thread = threading.Thread(target=self._run, name="redline-predictions", daemon=True)
        self._thread.start()

    def add(self, predictions: Sequence[PredictionRow]) -> None:
        """Queue ``predictions`` for the writer; returns at once."""
        if predictions:
            with self._written:
                self._queued += 1
            self._queue.put(predictions)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued before this call is written; False on timeout."""
        with self._written:
            target = self._queued
            return self._written.wait_for(lambda: self._done >= target, timeout=timeout)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued and stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
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

    def _write(self, rows: list[PredictionRow]) -> None:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                self._trades.append_predictions(rows)
                return
            except Exception as exc:  # the store hiccuped: retry, then say what is lost
                if attempt == _ATTEMPTS:
                    logger.error("dropped %d predictions (%s) after %d attempts: %s", len(rows),
                                 ", ".join(r[0] for r in rows[:5]), attempt, exc)  # fmt: skip
                    return
                time.sleep(_RETRY_S)
