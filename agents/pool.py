"""Where children train: the pool contract, and the in-process pool (no Ray).

The Ray pool (``agents.actor.RayPool``) keeps the same contract on a fixed pool of actors.

Both pools take the same ``TrainTask`` list and call ``on_done(task, outcome)`` as each child
finishes, so the Mother records every result the moment it exists (a run killed later does not
train that child again). The Ray pool is sized to the cluster's CPUs once and reused across
generations; every dataset is put in the object store once and handed to actors by reference
(numpy arrays are read zero-copy). A child that raises, times out, or whose actor process dies is
retried on a fresh actor up to ``retries`` times, then recorded FAILED with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from agents.child import ChildWorker, TrainOutcome, TrainTask
from agents.dataset import Dataset

OnDone = Callable[[TrainTask, TrainOutcome], None]


class TrainerPool(Protocol):
    def run(self, tasks: Sequence[TrainTask], on_done: OnDone) -> None: ...

    def add_datasets(self, datasets: Mapping[str, Dataset]) -> None: ...

    def close(self) -> None: ...


def failed_outcome(task: TrainTask, reason: str, seconds: float = 0.0) -> TrainOutcome:
    return TrainOutcome.failed(task, reason, seconds)


class LocalPool:
    """Trains children one after another in this process (tests, the sequential baseline)."""

    def __init__(self, home: Path, datasets: Mapping[str, Dataset]) -> None:
        self.worker = ChildWorker(home)
        self.datasets = dict(datasets)

    def add_datasets(self, datasets: Mapping[str, Dataset]) -> None:
        self.datasets.update(datasets)

    def run(self, tasks: Sequence[TrainTask], on_done: OnDone) -> None:
        for task in tasks:
            try:
                outcome = self.worker.train(task, self.datasets[dataset_key(task)])
            except Exception as exc:  # a broken child is a result
                outcome = failed_outcome(task, f"{type(exc).__name__}: {exc}")
            on_done(task, outcome)

    def close(self) -> None:
        return None


def dataset_key(task: TrainTask) -> str:
    return f"{task.specialty}/{task.dataset_name}"
