"""The child actor shell: a fixed pool of ``ChildAgent`` Ray actors (``agents.pool`` contract).

The Ray pool is sized to the cluster's CPUs once and reused across generations; every dataset is
put in the object store once and handed to actors by reference (numpy arrays are read zero-copy).
A child that raises, times out, or whose actor process dies is retried on a fresh actor up to
``retries`` times, then recorded FAILED with the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from agents.child import ChildWorker, TrainTask
from agents.dataset import Dataset
from agents.pool import OnDone, dataset_key, failed_outcome

logger = logging.getLogger(__name__)


@ray.remote(num_cpus=1, max_restarts=0)
class ChildAgent(ChildWorker):
    """The Ray actor shell: a pool slot that trains one child after another."""

    def ping(self) -> str:
        return repr(self)


@dataclass
class _Running:
    task: TrainTask
    actor: Any
    slot: int
    started: float
    attempt: int


class RayPool:
    """A fixed pool of ``ChildAgent`` actors (one CPU each), reused for every generation."""

    def __init__(
        self,
        home: Path,
        datasets: Mapping[str, Dataset],
        *,
        size: int | None = None,
        run_id: str = "run",
        refs: Mapping[str, Any] | None = None,
        timeout_s: float = 600.0,
        retries: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ray.is_initialized():
            raise RuntimeError("RayPool needs ray.init() first (cluster.session.ensure_ray)")
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.size = max(1, size or cpus)
        self.home = str(home)
        self.run_id = run_id
        self.timeout_s = timeout_s
        self.retries = retries
        self.clock = clock
        # Each dataset goes into the object store once per run; tasks carry the reference.
        # (a caller that already put them passes the references)
        self.refs = dict(refs) if refs else {n: ray.put(d) for n, d in datasets.items()}
        self._spawned = 0
        self.actors = [self._new_actor(slot) for slot in range(self.size)]

    def add_datasets(self, datasets: Mapping[str, Dataset]) -> None:
        """Put datasets made during the run (the coordinator's stacks) in the object store once."""
        self.refs.update({name: ray.put(dataset) for name, dataset in datasets.items()})

    def _new_actor(self, slot: int) -> Any:
        # A replaced slot gets a new name: a killed actor's name is released asynchronously.
        self._spawned += 1
        name = f"child-pool:{self.run_id}:{slot}.{self._spawned}"
        return ChildAgent.options(name=name).remote(self.home)  # type: ignore[attr-defined]

    def _replace(self, slot: int) -> None:
        ray.kill(self.actors[slot], no_restart=True)
        self.actors[slot] = self._new_actor(slot)

    def run(self, tasks: Sequence[TrainTask], on_done: OnDone) -> None:
        queue: list[tuple[TrainTask, int]] = [(task, 0) for task in tasks]
        queue.reverse()  # pop() from the end keeps the given order
        running: dict[Any, _Running] = {}
        free = list(range(self.size))
        while queue or running:
            while queue and free:
                task, attempt = queue.pop()
                slot = free.pop(0)
                actor = self.actors[slot]
                # The task carries the child's name (dashboard, `ray list tasks`, fault tests).
                ref = actor.train.options(name=task.actor_label).remote(
                    task, self.refs[dataset_key(task)]
                )
                running[ref] = _Running(task, actor, slot, self.clock(), attempt)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            now = self.clock()
            for ref in ready:
                job = running.pop(ref)
                free.append(job.slot)
                try:
                    on_done(job.task, ray.get(ref, timeout=60))
                except ray.exceptions.RayActorError as exc:
                    self._replace(job.slot)
                    self._retry_or_fail(
                        job, f"actor process died: {_first_line(exc)}", queue, on_done
                    )
                except ray.exceptions.RayTaskError as exc:
                    self._retry_or_fail(job, f"raised: {_first_line(exc)}", queue, on_done)
            for ref, job in list(running.items()):
                if now - job.started > self.timeout_s:
                    running.pop(ref)
                    self._replace(job.slot)  # the only way to stop a busy actor
                    free.append(job.slot)
                    self._retry_or_fail(job, f"timed out after {self.timeout_s:g}s", queue, on_done)

    def _retry_or_fail(
        self, job: _Running, reason: str, queue: list[tuple[TrainTask, int]], on_done: OnDone
    ) -> None:
        if job.attempt < self.retries:
            logger.warning("%s: %s; retrying on a fresh actor", job.task.actor_label, reason)
            queue.append((job.task, job.attempt + 1))
            return
        attempts = job.attempt + 1
        reason = f"{reason} (after {attempts} attempts)"
        # The last attempt's time: what the child cost before it was given up on.
        on_done(job.task, failed_outcome(job.task, reason, self.clock() - job.started))

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
