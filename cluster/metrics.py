"""Redline's custom metrics on the Ray dashboard (Prometheus through ``ray.util.metrics``)."""

from __future__ import annotations

from typing import Any

from ray.util.metrics import Counter, Gauge


class EvolutionMetrics:
    """Generation, best and median fitness per specialty, children alive and killed, queue depth."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.generation = Gauge("redline_generation", "Generation being evolved", tag_keys=("run",))
        self.best = Gauge("redline_best_fitness", "Best fitness", tag_keys=("run", "specialty"))
        self.median = Gauge(
            "redline_median_fitness", "Median fitness", tag_keys=("run", "specialty")
        )
        self.alive = Gauge(
            "redline_children_alive", "Children alive", tag_keys=("run", "specialty")
        )
        self.killed = Counter(
            "redline_children_killed", "Children killed", tag_keys=("run", "specialty")
        )
        self.queue = Gauge("redline_queue_depth", "Children waiting to train", tag_keys=("run",))
        self._counted_kills: set[str] = set()

    def update(self, progress: Any, mother: Any) -> None:
        tags = {"run": self.run_id}
        self.generation.set(progress.generation, tags=tags)
        self.queue.set(max(0, progress.planned - progress.trained), tags=tags)
        for record in mother.runs.generations(self.run_id):
            spec = {"run": self.run_id, "specialty": record.specialty}
            if record.best_fitness is not None:
                self.best.set(record.best_fitness, tags=spec)
            if record.median_fitness is not None:
                self.median.set(record.median_fitness, tags=spec)
            self.alive.set(record.alive, tags=spec)
        for kill in mother.runs.kills(self.run_id):
            if kill.agent_id not in self._counted_kills:
                self._counted_kills.add(kill.agent_id)
                specialty = mother.runs.require_agent(kill.agent_id).specialty
                self.killed.inc(1, tags={"run": self.run_id, "specialty": specialty})
