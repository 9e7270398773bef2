"""The Mother: one run of evolution, a sub-population per specialty, generation after generation.

A generation ``g`` of a specialty, as data:
1. its PENDING children (births written when ``g - 1`` ended; generation 0 is drawn from the root
   seed) are trained on the pool; each result is written the moment it arrives;
2. report_coordinator children train last, on a dataset stacked from the best members' scores;
3. the Mother scores the alive children out of sample, kills by the kill rule (each kill with its
   reason), selects parents (NSGA-II by default), breeds the next generation's children, and writes
   the generation row, the kills and the births in ONE transaction, then the log files.

Everything is in the database, so a run killed at any point resumes where it stopped: trained
children are not trained again, and since every seed is derived from the root seed by position
(``evolution.seeds``), a resumed run ends with the same genomes and scores as one never stopped.
This class is plain Python: on ``agents.pool.LocalPool`` it runs without Ray
(``tests/evolution/test_mother.py``); ``evolution.mother_actor`` is its Ray shell.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from agents.child import TrainOutcome, TrainTask, read_oos
from agents.dataset import Dataset
from agents.datasets import stacked_dataset, symbol_group
from agents.genome import Genome
from agents.pool import TrainerPool
from agents.specialties import get_specialty, load_plugins
from evolution.brain import COORDINATOR, fit_mother_brain
from evolution.lineage import new_agent_id
from evolution.seeds import child_seed, generation_rng, initial_population
from evolution.selection import (
    DEFAULT_WEIGHTS,
    HallOfFame,
    KillRule,
    Scored,
    breed,
    decide_kills,
    select_parents,
)
from market.backtest import DEFAULT_FEE_BPS
from market.regimes import REGIMES
from store.paths import DataRoot
from store.records.champions import ALL_REGIMES, RegimeBestRecord, Stage
from store.records.population import (
    ANCESTOR,
    AgentRecord,
    AgentStatus,
    GenerationRecord,
    KillRecord,
    RunStatus,
)
from store.runs import RunStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvolutionSettings:
    """How a run evolves; built from ``configs/evolve*.yaml`` by ``cluster.config``."""

    root_seed: int
    generations: int
    population: Mapping[str, int]  # specialty -> children alive per generation
    datasets: Mapping[str, str]  # specialty -> the dataset name its children train on
    selection: str = "nsga2"
    weights: tuple[float, ...] = DEFAULT_WEIGHTS
    kill: KillRule = field(default_factory=KillRule)
    cx_prob: float = 0.7
    cx_eta: float = 15.0
    cx_indpb: float = 0.5
    mut_eta: float = 20.0
    mut_indpb: float = 0.2
    hall_of_fame: int = 5
    coordinator_members: int = 2  # best children per member specialty stacked for the coordinator
    fee_bps: float = DEFAULT_FEE_BPS
    torch_threads: int = 1
    plugins: tuple[str, ...] = ()  # import paths of plug-in specialties (agents.specialties)
    # specialty -> (agent id, genome JSON) of earlier runs' best children: generation 0 starts
    # from them (the living loop's retrain continues the hall of fame), the rest drawn as usual.
    ancestors: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        load_plugins(self.plugins)
        if self.generations < 1:
            raise ValueError(f"evolution.generations must be at least 1; got {self.generations}")
        for name, size in self.population.items():
            get_specialty(name)
            if size < 2:
                raise ValueError(f"population.{name} must be at least 2; got {size}")
            if name != COORDINATOR and name not in self.datasets:
                raise ValueError(f"population.{name} has no dataset to train on")


@dataclass
class Progress:
    """What the dashboard and the CLI's progress bars show; updated as results arrive."""

    generation: int = 0
    planned: int = 0
    trained: int = 0
    failed: int = 0
    killed: int = 0
    best: dict[str, float] = field(default_factory=dict)
    done: bool = False


class Mother:
    def __init__(
        self,
        run_id: str,
        runs: RunStore,
        pool: TrainerPool,  # agents.pool.LocalPool in-process, agents.actor.RayPool on Ray
        datasets: Mapping[str, Dataset],  # "specialty/name" -> dataset
        settings: EvolutionSettings,
        home: Path,
        *,
        config_hash: str = "",
        on_progress: Callable[[Progress], None] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        load_plugins(settings.plugins)  # settings may come unpickled in another process
        self.run_id = run_id
        self.runs = runs
        self.pool = pool
        self.datasets = dict(datasets)
        self.settings = settings
        self.root = DataRoot(home)
        self.config_hash = config_hash
        self.on_progress = on_progress
        self.now = now
        self.progress = Progress()
        self.members = [name for name in settings.population if name != COORDINATOR]

    # --- the run ---------------------------------------------------------------------------

    def next_generation(self) -> int:
        """The first generation not yet written (0 for a new run)."""
        done = {record.generation for record in self.runs.generations(self.run_id)}
        generation = 0
        while generation in done:
            generation += 1
        return generation

    def run(self) -> None:
        self._write_missing_logs()
        for generation in range(self.next_generation(), self.settings.generations):
            self.run_generation(generation)
        if COORDINATOR in self.settings.population:
            base = self.datasets[self._dataset_key(self.settings.datasets[COORDINATOR])]
            try:
                brain = fit_mother_brain(
                    self.run_id,
                    self.runs,
                    self.root.home,
                    base,
                    fee_bps=self.settings.fee_bps,
                    pools=[ds for ds in self.datasets.values() if ds.pooled],
                )
            except ValueError as exc:  # nothing to fit (every coordinator failed): no brain
                logger.warning("no mother brain for run %s: %s", self.run_id, exc)
            else:
                logger.info("mother brain %s: champions %s", brain.version, brain.champions)
        self.runs.update_run(self.run_id, status=RunStatus.FINISHED)
        self.progress.done = True
        self._emit()

    def run_generation(self, generation: int) -> None:
        if generation == 0:
            self._ensure_initial_population()
        self.progress = replace(self.progress, generation=generation)
        pending = self._pending(generation, self.members)
        self.progress.planned = len(pending) + len(self._pending(generation, [COORDINATOR]))
        self.progress.trained = self.progress.failed = 0
        self._emit()
        self.pool.run([self._task(record) for record in pending], self._record)
        if COORDINATOR in self.settings.population:
            self._train_coordinators(generation)
        self._close_generation(generation)

    def _train_coordinators(self, generation: int) -> None:
        """The report_coordinator children, on the members' stacked scores. A stack that cannot
        be built (no member child succeeded, an unreadable score file) fails these children with
        the reason; the generation goes on."""
        pending = self._pending(generation, [COORDINATOR])
        if not pending:
            return
        try:
            stacked = self._stack(generation)
        except Exception as exc:
            reason = f"stacked dataset not built: {type(exc).__name__}: {exc}"
            logger.warning("generation %d: %s", generation, reason)
            for record in pending:
                task = self._task(record, f"stack_g{generation:03d}")
                self._record(task, TrainOutcome.failed(task, reason))
            return
        self.pool.run([self._task(r, stacked.name) for r in pending], self._record)

    # --- births ------------------------------------------------------------------------------

    def _ensure_initial_population(self) -> None:
        if self.runs.agents(self.run_id, generation=0):
            return
        births = []
        for specialty, size in self.settings.population.items():
            space = get_specialty(specialty).space
            carried = list(self.settings.ancestors.get(specialty, ()))[:size]
            for index, genome in enumerate(
                initial_population(space, size, self.settings.root_seed)
            ):
                if index < len(carried):  # an ancestor's genome, its agent id as its parent
                    parent, text = carried[index]
                    genome = space.validate(Genome.from_json(text))
                    births.append(self._birth_record(genome, 0, index, (parent,), (ANCESTOR,)))
                    continue
                births.append(self._birth_record(genome, 0, index, (), ()))
        self.runs.add_agents(births)

    def _birth_record(
        self,
        genome: Genome,
        generation: int,
        index: int,
        parents: Sequence[str],
        operators: Sequence[str],
    ) -> AgentRecord:
        specialty = genome.specialty
        return AgentRecord(
            agent_id=f"{self.run_id}.{new_agent_id(specialty, generation, index)}",
            run_id=self.run_id,
            specialty=specialty,
            generation=generation,
            genome_json=genome.to_json(),
            genome_digest=genome.digest(),
            parents=tuple(parents),
            operators=tuple(operators),
            seed=child_seed(self.settings.root_seed, generation, index, specialty=specialty),
            status=AgentStatus.PENDING,
            config_hash=self.config_hash,
        )

    # --- training ----------------------------------------------------------------------------

    def _pending(self, generation: int, specialties: Sequence[str]) -> list[AgentRecord]:
        records = self.runs.agents(self.run_id, generation=generation)
        return sorted(
            (r for r in records if r.status == AgentStatus.PENDING and r.specialty in specialties),
            key=lambda r: r.agent_id,
        )

    def _task(self, record: AgentRecord, dataset_name: str | None = None) -> TrainTask:
        name = dataset_name or self.settings.datasets[record.specialty]
        return TrainTask(
            run_id=self.run_id,
            agent_id=record.agent_id,
            generation=record.generation,
            genome=Genome.from_json(record.genome_json),
            seed=record.seed,
            dataset_name=name,
            fee_bps=self.settings.fee_bps,
            torch_threads=self.settings.torch_threads,
        )

    def _record(self, task: TrainTask, outcome: TrainOutcome) -> None:
        report = outcome.report
        record = self.runs.require_agent(task.agent_id)
        objectives = tuple(float(v) for v in report.objectives)
        self.runs.upsert_agent(
            replace(
                record,
                status=AgentStatus.OK if report.ok else AgentStatus.FAILED,
                reason=report.reason,
                objectives=objectives if report.ok else (),
                sharpe=_finite(report.metrics.get("sharpe")),
                max_drawdown=_finite(report.metrics.get("max_drawdown")),
                hit_rate=_finite(kill_rule_hit_rate(report.metrics)),
                metrics={k: float(v) for k, v in report.metrics.items()},
                per_regime={
                    regime: {k: float(v) for k, v in values.items()}
                    for regime, values in report.per_regime.items()
                },
                train_seconds=report.train_seconds,
                # A failed child has no checkpoint: None, not the outcome's "".
                checkpoint_path=outcome.checkpoint_path or None,
                checkpoint_sha256=outcome.checkpoint_sha256 or None,
                dataset_digest=report.dataset_digest,
            )
        )
        self.progress.trained += 1
        self.progress.failed += 0 if report.ok else 1
        if report.ok:
            best = self.progress.best.get(task.specialty, -math.inf)
            self.progress.best[task.specialty] = max(best, report.objectives[0])
        self._emit()

    # --- the coordinator's stacked dataset ----------------------------------------------------

    def _stack(self, generation: int) -> Dataset:
        """Members' out-of-sample scores, stacked on the coordinator's base series.

        The best ``coordinator_members`` alive children of every member specialty that trains on
        the base dataset, or on a pooled dataset holding the base series' rows (their scores of
        those rows: ``symbol_group``), contribute their scores; the coordinator then walks forward
        over them, so it trains on earlier out-of-sample scores and is scored on later ones.
        """
        base_key = (
            self.settings.datasets.get(COORDINATOR) or self.settings.datasets[self.members[0]]
        )
        base = self.datasets[self._dataset_key(base_key)]
        predictions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for specialty in self.members:
            name = self.settings.datasets[specialty]
            # Its own dataset first: two specialties' pooled datasets share a name, not their rows.
            own = self.datasets.get(f"{specialty}/{name}") or self.datasets[self._dataset_key(name)]
            group = None
            if own.name != base.name:  # another series, or a pool: its rows of the base's symbol
                group = symbol_group(own, base) if own.pooled else None
                if group is None:
                    continue
            alive = [r for r in self.runs.agents(self.run_id, specialty=specialty, alive_at=generation)
                     if r.status == AgentStatus.OK and r.objectives]  # fmt: skip
            ranked = sorted(alive, key=lambda r: (-self._score(r), r.agent_id))
            for record in ranked[: self.settings.coordinator_members]:
                pooled = None if group is None else (own, group)  # its base-symbol rows
                predictions[record.agent_id] = read_oos(
                    self.root, record.agent_id, record.generation, pooled=pooled
                )
        if not predictions:
            raise RuntimeError(
                f"generation {generation}: no member child trained on {base.name} succeeded, so "
                "the report_coordinator has nothing to stack"
            )
        stacked = stacked_dataset(base, predictions)
        stacked = replace(stacked, specialty=COORDINATOR, name=f"stack_g{generation:03d}")
        self.datasets[f"{COORDINATOR}/{stacked.name}"] = stacked
        self.pool.add_datasets({f"{COORDINATOR}/{stacked.name}": stacked})
        return stacked

    def _dataset_key(self, name: str) -> str:
        """The dataset a name refers to, whichever specialty's folder holds it."""
        for key in self.datasets:
            if key.split("/", 1)[1] == name:
                return key
        raise KeyError(f"no dataset named {name!r}; have {sorted(self.datasets)}")

    # --- selection, kills, births ---------------------------------------------------------------

    def _score(self, record: AgentRecord) -> float:
        return float(np.dot(record.objectives, self.settings.weights))

    def _close_generation(self, generation: int) -> None:
        last = generation == self.settings.generations - 1
        births: list[AgentRecord] = []
        kills: list[KillRecord] = []
        summaries: list[GenerationRecord] = []
        for specialty, size in self.settings.population.items():
            alive = sorted(
                self.runs.agents(self.run_id, specialty=specialty, alive_at=generation),
                key=lambda r: r.agent_id,
            )
            scored = [_scored(r) for r in alive if r.status != AgentStatus.PENDING]
            decisions = decide_kills(scored, self.settings.kill)
            killed = {d.agent_id for d in decisions}
            kills += [
                KillRecord(self.run_id, d.agent_id, generation, d.reason, d.detail, self.now())
                for d in decisions
            ]
            survivors = [s for s in scored if s.agent_id not in killed]
            hall = self._hall(specialty, generation, scored)
            born = 0
            if not last:
                rng = generation_rng(self.settings.root_seed, generation + 1, specialty=specialty)
                space = get_specialty(specialty).space
                parents = select_parents(survivors, max(2, len(survivors)), rng,
                                         method=self.settings.selection, weights=self.settings.weights)  # fmt: skip
                wanted = max(0, size - len(survivors))
                if parents:
                    new = breed(parents, wanted, space, rng, cx_prob=self.settings.cx_prob,
                                cx_eta=self.settings.cx_eta, cx_indpb=self.settings.cx_indpb,
                                mut_eta=self.settings.mut_eta, mut_indpb=self.settings.mut_indpb)  # fmt: skip
                    births += [
                        self._birth_record(b.genome, generation + 1, i, b.parents, b.operators)
                        for i, b in enumerate(new)
                    ]
                else:  # nobody usable survived: start that specialty afresh from the space
                    births += [
                        self._birth_record(space.sample(rng), generation + 1, i, (), ("resampled",))
                        for i in range(wanted)
                    ]
                born = wanted
            usable = [s.score(self.settings.weights) for s in scored if s.usable]
            best = max(
                scored, key=lambda s: (s.score(self.settings.weights), s.agent_id), default=None
            )
            summaries.append(
                GenerationRecord(
                    run_id=self.run_id,
                    generation=generation,
                    specialty=specialty,
                    born=sum(1 for r in alive if r.generation == generation),
                    evaluated=len(scored),
                    failed=sum(1 for s in scored if not s.usable),
                    killed=len(decisions),
                    alive=len(alive) - len(decisions) + born,
                    best_fitness=max(usable) if usable else None,
                    median_fitness=float(np.median(usable)) if usable else None,
                    best_agent_id=best.agent_id if best and best.usable else None,
                    hall_of_fame=tuple(entry.agent_id for entry in hall.entries),
                    finished_at=self.now(),
                )
            )
        regime_best = self._regime_best(generation)
        with self.runs.transaction():  # the run's progress commits with its generation
            self.runs.record_generation_outcome(summaries, births, kills, regime_best)
            self.runs.update_run(self.run_id, generations_done=generation + 1)
        self.progress.killed = len(kills)
        self._emit()
        self._write_logs(generation, summaries, kills)

    def _hall(self, specialty: str, generation: int, scored: list[Scored]) -> HallOfFame:
        """The best children of the run so far (any generation, dead or alive)."""
        earlier = [
            _scored(r)
            for r in self.runs.agents(self.run_id, specialty=specialty)
            if r.status == AgentStatus.OK and r.objectives and r.generation < generation
        ]
        hall = HallOfFame(maxsize=self.settings.hall_of_fame, weights=self.settings.weights)
        hall = hall.update([s for s in earlier if s.usable], max(generation - 1, 0))
        return hall.update([s for s in scored if s.usable], generation)

    def _regime_best(self, generation: int) -> list[RegimeBestRecord]:
        """The run's best alive child per (specialty, regime) by its out-of-sample Sharpe there;
        a classifier (task ``classify``) has one row, regime ``ALL_REGIMES``: its child with the
        highest AUC lower bound (``auc_low``; ties: the higher AUC, then the agent id)."""
        out = []
        for specialty in self.settings.population:
            alive = [r for r in self.runs.agents(self.run_id, specialty=specialty, alive_at=generation)
                     if r.status == AgentStatus.OK]  # fmt: skip
            if get_specialty(specialty).task == "classify":
                out += self._classifier_best(specialty, alive)
                continue
            for regime in REGIMES:
                candidates = [
                    (sharpe, r.agent_id, r)
                    for r in alive
                    if (sharpe := (r.per_regime.get(regime) or {}).get("sharpe")) is not None
                ]
                if not candidates:
                    continue
                sharpe, _, best = max(candidates, key=lambda c: (c[0], c[1]))
                out.append(
                    RegimeBestRecord(
                        run_id=self.run_id,
                        specialty=specialty,
                        regime=regime,
                        agent_id=best.agent_id,
                        sharpe=float(sharpe),
                        metrics=best.per_regime[regime],
                        stage=Stage.DISCOVERY,
                        updated_at=self.now(),
                    )
                )
        return out

    def _classifier_best(self, specialty: str, alive: list[AgentRecord]) -> list[RegimeBestRecord]:
        candidates = [
            (low, auc, r.agent_id, r)
            for r in alive
            if math.isfinite(low := r.metrics.get("auc_low", math.nan))
            and math.isfinite(auc := r.metrics.get("auc", math.nan))
        ]
        if not candidates:
            return []
        best = max(candidates, key=lambda c: (c[0], c[1], c[2]))[3]
        row = RegimeBestRecord(
            run_id=self.run_id,
            specialty=specialty,
            regime=ALL_REGIMES,
            agent_id=best.agent_id,
            metrics={k: v for k, v in best.metrics.items() if math.isfinite(v)},
            stage=Stage.DISCOVERY,
            updated_at=self.now(),
        )
        return [row]

    # --- logs ------------------------------------------------------------------------------------

    def _write_missing_logs(self) -> None:
        """Write the logs of closed generations that have none: a run killed after a generation's
        transaction but before its files never revisits that generation, so a resume writes them
        here (from the same database state, hence the same content)."""
        order = {name: index for index, name in enumerate(self.settings.population)}
        summaries = sorted(self.runs.generations(self.run_id), key=lambda s: order[s.specialty])
        for generation in sorted({s.generation for s in summaries}):
            if not (self.root.evolution_logs / f"generation_{generation}.json").exists():
                mine = [s for s in summaries if s.generation == generation]  # config order
                kills = [k for k in self.runs.kills(self.run_id) if k.generation == generation]
                self._write_logs(generation, mine, kills)

    def _write_logs(
        self, generation: int, summaries: list[GenerationRecord], kills: list[KillRecord]
    ) -> None:
        folder = self.root.evolution_logs
        folder.mkdir(parents=True, exist_ok=True)
        agents = self.runs.agents(self.run_id, generation=None)
        payload = {
            "run_id": self.run_id,
            "generation": generation,
            "specialties": [
                {
                    "specialty": s.specialty,
                    "evaluated": s.evaluated,
                    "failed": s.failed,
                    "killed": s.killed,
                    "alive": s.alive,
                    "best_fitness": s.best_fitness,
                    "median_fitness": s.median_fitness,
                    "best_agent_id": s.best_agent_id,
                }
                for s in summaries
            ],
            "children": [
                {
                    "agent_id": a.agent_id,
                    "specialty": a.specialty,
                    "born": a.generation,
                    "status": a.status,
                    "objectives": list(a.objectives) if a.objectives else None,
                    "parents": list(a.parents),
                    "killed_generation": a.killed_generation,
                }
                for a in agents
                if a.generation <= generation
                and (a.killed_generation is None or a.killed_generation >= generation)
            ],
        }
        (folder / f"generation_{generation}.json").write_text(json.dumps(payload, indent=2))
        # kill_log.csv is rewritten whole from the database: a resumed run never doubles a line.
        with (folder / "kill_log.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["run_id", "generation", "agent_id", "reason", "detail", "killed_at"])
            for kill in self.runs.kills(self.run_id):
                writer.writerow([kill.run_id, kill.generation, kill.agent_id, kill.reason,
                                 kill.detail, kill.killed_at.isoformat() if kill.killed_at else ""])  # fmt: skip

    def _emit(self) -> None:
        if self.on_progress:
            self.on_progress(replace(self.progress, best=dict(self.progress.best)))


def kill_rule_hit_rate(metrics: Mapping[str, float]) -> float | None:
    """The hit rate the kill rule reads: the out-of-sample direction hit rate of a trading child;
    for the rug-pull classifier, whose calls have no direction, its AUC (below 0.5 is worse than a
    coin, the same bar the product documents set)."""
    if "direction_hit_rate" in metrics:
        return metrics["direction_hit_rate"]
    return metrics.get("auc")


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _scored(record: AgentRecord) -> Scored:
    failed = record.status != AgentStatus.OK or not record.objectives
    objectives = record.objectives or (math.nan,) * 3
    return Scored(
        agent_id=record.agent_id,
        genome=Genome.from_json(record.genome_json),
        objectives=tuple(objectives),
        hit_rate=record.hit_rate if record.hit_rate is not None else math.nan,
        failed=failed,
        reason=record.reason or "",
    )
