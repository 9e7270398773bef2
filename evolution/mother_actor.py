"""The Mother's Ray shell: named ``mother:<run_id>``, it owns the child pool and runs the generations.

It only moves data: it opens the run store, builds the pool of child actors, and calls the plain
``evolution.mother.Mother``. ``progress()`` answers while ``run()`` works (two concurrent calls) and
the dashboard gets the metrics the driver injects (``metrics=``: generation, best and median
fitness, children alive/killed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import ray

from evolution.mother import EvolutionSettings, Mother, Progress


class MotherMetrics(Protocol):
    """What the Mother's shell reports to after each finished child (the driver supplies it)."""

    def update(self, progress: Progress, mother: Mother) -> None: ...


def no_metrics(run_id: str) -> MotherMetrics:
    return _NoMetrics()


class _NoMetrics:
    def update(self, progress: Progress, mother: Mother) -> None:
        return None


@ray.remote(num_cpus=0, max_concurrency=2)  # type: ignore[call-overload]
class MotherActor:
    def __init__(
        self,
        run_id: str,
        database_url: str,
        home: str,
        settings: EvolutionSettings,
        dataset_refs: Mapping[str, Any],
        pool_options: Mapping[str, Any],
        config_hash: str,
        metrics: Callable[[str], MotherMetrics] = no_metrics,
    ) -> None:
        from agents.actor import RayPool
        from store.db import Store

        datasets = {name: ray.get(ref) for name, ref in dataset_refs.items()}  # zero-copy
        self.pool = RayPool(Path(home), datasets, run_id=run_id, refs=dataset_refs, **pool_options)
        # Made here, in the actor's process, where Ray's metric agent collects them; the factory is
        # the driver's (``cluster.metrics.EvolutionMetrics``), so this shell never imports it.
        self.metrics = metrics(run_id)
        self.latest = Progress()
        self.mother = Mother(
            run_id,
            Store.open(database_url, home=Path(home)).runs,
            self.pool,
            datasets,
            settings,
            Path(home),
            config_hash=config_hash,
            on_progress=self._on_progress,
        )

    def _on_progress(self, progress: Progress) -> None:
        self.latest = progress
        self.metrics.update(progress, self.mother)

    def run(self) -> int:
        self.mother.run()
        return self.mother.next_generation()

    def progress(self) -> Progress:
        return replace(self.latest, best=dict(self.latest.best))

    def close(self) -> None:
        self.pool.close()
