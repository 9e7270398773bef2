"""Selection, the kill rule, elites, the hall of fame and breeding: pure functions over scores.

Every child is scored out of sample on objectives that are all maximized (direction and rank
specialties: ``(sharpe, max_drawdown, hit_rate)``; classify: ``(auc, precision, recall)``). A child
that failed, or whose objectives are not all finite, is *unusable*: it is never a parent, an elite
or in the hall of fame, and the kill rule always kills it.

The weighted score ``sum(w * o)`` (default weights ``(1.0, 0.5, 1.0)``) is the one scalar view of a
child: tournament selection, elites, the hall of fame and the "bottom quantile" of the kill rule use
it. NSGA-II uses the objectives themselves. All DEAP calls go through ``evolution.operators``.

Kill rule (``decide_kills``), first matching reason wins:

1. ``FAILED``: the child failed (or has a non-finite objective). Always, elites or not.
2. Elites are protected from the two rules below: the ``protect_elites`` best usable children by
   weighted score (default 2, so crossover still has two parents) survive even when every child
   misses the hit-rate bar, which on noisy markets happens; the population never dies out.
3. ``LOW_HIT_RATE``: out-of-sample hit rate below ``min_hit_rate`` (0.5, the product documents).
4. ``DOMINATED``: in the last non-dominated front, that front not being the first (some child
   dominates it), and weighted score at or below the ``bottom_quantile`` quantile of the usable
   children's weighted scores (numpy's linear quantile). ``bottom_quantile=0`` turns it off.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from agents.genome import Genome, GenomeSpace
from evolution.operators import (
    crossover_traced,
    mutate_traced,
    nsga2_select,
    pareto_fronts,
    tournament_select,
)
from store.records.population import KillReason

logger = logging.getLogger(__name__)

DEFAULT_WEIGHTS: tuple[float, ...] = (1.0, 0.5, 1.0)
SELECTION_METHODS = ("nsga2", "tournament")


def _fmt(value: float) -> str:
    return f"{value:.4g}"


@dataclass(frozen=True)
class Scored:
    """One child's out-of-sample result, as selection sees it (objectives all maximized)."""

    agent_id: str
    genome: Genome
    objectives: tuple[float, ...]
    hit_rate: float
    failed: bool = False
    reason: str = ""  # why it failed, from the child's report

    @property
    def usable(self) -> bool:
        return not self.failed and all(math.isfinite(value) for value in self.objectives)

    def score(self, weights: Sequence[float] = DEFAULT_WEIGHTS) -> float:
        """The weighted score ``sum(w * o)``; ``-inf`` for an unusable child."""
        if len(weights) != len(self.objectives):
            raise ValueError(
                f"weights must have one value per objective ({len(self.objectives)}) of "
                f"{self.agent_id}; got {tuple(weights)}"
            )
        if not self.usable:
            return -math.inf
        return float(sum(w * o for w, o in zip(weights, self.objectives, strict=True)))


def _check_unique(scored: Sequence[Scored]) -> None:
    seen: set[str] = set()
    for item in scored:
        if item.agent_id in seen:
            raise ValueError(f"agent_id must be unique in a population; {item.agent_id!r} repeats")
        seen.add(item.agent_id)


def nsga2_rank(scored: Sequence[Scored]) -> list[tuple[int, float]]:
    """Per child, in input order: (non-dominated front, 0 best; crowding distance in its front).

    Unusable children share one extra front after the last, with crowding distance 0.
    """
    _check_unique(scored)
    usable = [item for item in scored if item.usable]
    ranks = iter(pareto_fronts([item.objectives for item in usable]))
    usable_ranks = [next(ranks) for _ in usable]
    after_last = max((front for front, _ in usable_ranks), default=-1) + 1
    lookup = dict(zip((item.agent_id for item in usable), usable_ranks, strict=True))
    return [lookup.get(item.agent_id, (after_last, 0.0)) for item in scored]


def select_parents(
    scored: Sequence[Scored],
    k: int,
    rng: np.random.Generator,
    *,
    method: Literal["nsga2", "tournament"] | str = "nsga2",
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    tournsize: int = 3,
) -> list[Scored]:
    """Parents among the usable children.

    ``nsga2``: DEAP's ``selNSGA2`` over the objectives, each child at most once, so at most
    ``min(k, usable)`` parents, best front first. ``tournament``: DEAP's ``selTournament`` on the
    weighted score, ``k`` parents drawn with replacement. No usable child: no parents.
    """
    if method not in SELECTION_METHODS:
        raise ValueError(f"method must be one of {', '.join(SELECTION_METHODS)}; got {method!r}")
    if k < 0:
        raise ValueError(f"k must be >= 0; got {k}")
    _check_unique(scored)
    usable = [item for item in scored if item.usable]
    if method == "nsga2":
        chosen = nsga2_select([item.objectives for item in usable], k, rng)
    else:
        scores = [item.score(weights) for item in usable]
        chosen = tournament_select(scores, k, rng, tournsize=tournsize)
    return [usable[index] for index in chosen]


def elites(
    scored: Sequence[Scored], n: int, *, weights: Sequence[float] = DEFAULT_WEIGHTS
) -> list[Scored]:
    """The ``n`` best usable children by weighted score (ties: agent id), best first."""
    if n < 0:
        raise ValueError(f"n must be >= 0; got {n}")
    usable = [item for item in scored if item.usable]
    return sorted(usable, key=lambda item: (-item.score(weights), item.agent_id))[:n]


# ---------------------------------------------------------------------------------------------
# The kill rule


@dataclass(frozen=True)
class KillRule:
    """When the Mother kills a child (see the module docstring for the order of the rules)."""

    min_hit_rate: float = 0.5
    bottom_quantile: float = 0.25
    weights: tuple[float, ...] = DEFAULT_WEIGHTS
    protect_elites: int = 2

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_hit_rate <= 1.0:
            raise ValueError(f"min_hit_rate must be in [0, 1]; got {self.min_hit_rate}")
        if not 0.0 <= self.bottom_quantile <= 1.0:
            raise ValueError(f"bottom_quantile must be in [0, 1]; got {self.bottom_quantile}")
        if self.protect_elites < 0:
            raise ValueError(f"protect_elites must be >= 0; got {self.protect_elites}")


@dataclass(frozen=True)
class KillDecision:
    agent_id: str
    reason: KillReason
    detail: str  # names the value and the threshold, e.g. "out-of-sample hit rate 0.47 < 0.5"


def _failure_detail(item: Scored) -> str:
    if item.failed:
        return f"child failed: {item.reason}" if item.reason else "child failed"
    index, value = next((i, v) for i, v in enumerate(item.objectives) if not math.isfinite(v))
    return f"objective {index + 1} of {len(item.objectives)} is {value}"


def decide_kills(scored: Sequence[Scored], rule: KillRule = KillRule()) -> list[KillDecision]:
    """The children to kill, in input order, each with its reason; survivors are not listed."""
    _check_unique(scored)
    usable = [item for item in scored if item.usable]
    protected = {
        item.agent_id for item in elites(usable, rule.protect_elites, weights=rule.weights)
    }
    ranks = dict(zip((item.agent_id for item in scored), nsga2_rank(scored), strict=True))
    n_fronts = max((ranks[item.agent_id][0] for item in usable), default=-1) + 1
    scores = {item.agent_id: item.score(rule.weights) for item in usable}
    threshold = (
        float(np.quantile(list(scores.values()), rule.bottom_quantile)) if scores else math.nan
    )
    decisions = []
    for item in scored:
        if not item.usable:
            decisions.append(KillDecision(item.agent_id, KillReason.FAILED, _failure_detail(item)))
            continue
        if item.agent_id in protected:
            continue
        if not item.hit_rate >= rule.min_hit_rate:  # NaN hit rate fails the bar too
            detail = f"out-of-sample hit rate {_fmt(item.hit_rate)} < {_fmt(rule.min_hit_rate)}"
            decisions.append(KillDecision(item.agent_id, KillReason.LOW_HIT_RATE, detail))
            continue
        front = ranks[item.agent_id][0]
        score = scores[item.agent_id]
        if rule.bottom_quantile > 0 and 0 < front == n_fronts - 1 and score <= threshold:
            detail = (
                f"in the last non-dominated front ({front + 1} of {n_fronts}) and weighted score "
                f"{_fmt(score)} <= {_fmt(threshold)}, the bottom "
                f"{_fmt(rule.bottom_quantile * 100)}% quantile"
            )
            decisions.append(KillDecision(item.agent_id, KillReason.DOMINATED, detail))
    return decisions


# ---------------------------------------------------------------------------------------------
# Hall of fame


@dataclass(frozen=True)
class HallEntry:
    agent_id: str
    generation: int
    genome_json: str
    objectives: tuple[float, ...]
    hit_rate: float
    score: float


@dataclass(frozen=True)
class HallOfFame:
    """The best-ever usable children by weighted score, at most ``maxsize``, best first.

    Immutable: ``update`` returns a new hall. A child enters once (by agent id); at equal scores
    the one already in the hall stays ahead, as in DEAP's ``HallOfFame``. ``to_dict`` /
    ``from_dict`` round-trip through plain JSON types, for ``generation_<N>.json`` and resuming.
    """

    maxsize: int = 10
    weights: tuple[float, ...] = DEFAULT_WEIGHTS
    entries: tuple[HallEntry, ...] = ()

    def __post_init__(self) -> None:
        if self.maxsize < 1:
            raise ValueError(f"maxsize must be >= 1; got {self.maxsize}")

    @property
    def best(self) -> HallEntry | None:
        return self.entries[0] if self.entries else None

    def update(self, scored: Iterable[Scored], generation: int) -> HallOfFame:
        present = {entry.agent_id for entry in self.entries}
        newcomers = sorted(
            (
                HallEntry(
                    item.agent_id,
                    generation,
                    item.genome.to_json(),
                    tuple(float(v) for v in item.objectives),
                    float(item.hit_rate),
                    item.score(self.weights),
                )
                for item in scored
                if item.usable and item.agent_id not in present
            ),
            key=lambda entry: entry.agent_id,
        )
        ranked = sorted([*self.entries, *newcomers], key=lambda entry: -entry.score)
        return HallOfFame(self.maxsize, self.weights, tuple(ranked[: self.maxsize]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "maxsize": self.maxsize,
            "weights": list(self.weights),
            "entries": [
                {
                    "agent_id": entry.agent_id,
                    "generation": entry.generation,
                    "genome": entry.genome_json,
                    "objectives": list(entry.objectives),
                    "hit_rate": entry.hit_rate,
                    "score": entry.score,
                }
                for entry in self.entries
            ],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> HallOfFame:
        entries = tuple(
            HallEntry(
                str(item["agent_id"]),
                int(item["generation"]),
                str(item["genome"]),
                tuple(float(v) for v in item["objectives"]),
                float(item["hit_rate"]),
                float(item["score"]),
            )
            for item in raw.get("entries", [])
        )
        return cls(int(raw["maxsize"]), tuple(float(w) for w in raw["weights"]), entries)


# ---------------------------------------------------------------------------------------------
# Breeding


@dataclass(frozen=True)
class Birth:
    """A genome to train, its parents (the one its operator records refer to first) and operators."""

    genome: Genome
    parents: tuple[str, ...]
    operators: tuple[str, ...]


def breed(
    parents: Sequence[Scored],
    n_children: int,
    space: GenomeSpace,
    rng: np.random.Generator,
    *,
    cx_prob: float = 0.7,
    cx_eta: float = 15.0,
    cx_indpb: float = 0.5,
    mut_eta: float = 20.0,
    mut_indpb: float = 0.2,
    distinct: bool = True,
    max_retries: int = 5,
) -> list[Birth]:
    """``n_children`` births from ``parents``' genomes.

    Parents are paired in random order (a fresh permutation on each pass through them). A pair of
    two different agents is crossed with probability ``cx_prob`` (two children, each listing both
    parents, its own first); otherwise each parent passes a copy on alone (one parent). Every child
    is then mutated. With ``distinct`` a child equal to a parent or to an earlier sibling is
    mutated again, up to ``max_retries`` times (each recorded), so training slots are not spent on
    clones; a space too small to allow that keeps the clone.
    """
    if n_children < 0:
        raise ValueError(f"n_children must be >= 0; got {n_children}")
    if not 0.0 <= cx_prob <= 1.0:
        raise ValueError(f"cx_prob must be in [0, 1]; got {cx_prob}")
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0; got {max_retries}")
    if n_children == 0:
        return []
    if not parents:
        raise ValueError(f"parents must not be empty to breed {n_children} children; got none")
    seen = {space.validate(parent.genome).digest() for parent in parents}
    queue: list[int] = []
    births: list[Birth] = []
    pending: list[tuple[Genome, tuple[str, ...], tuple[str, ...]]]
    while len(births) < n_children:
        while len(queue) < 2:
            queue.extend(int(i) for i in rng.permutation(len(parents)))
        a, b = parents[queue.pop(0)], parents[queue.pop(0)]
        if a.agent_id != b.agent_id and rng.random() < cx_prob:
            first, second = crossover_traced(
                a.genome, b.genome, space, rng, eta=cx_eta, indpb=cx_indpb
            )
            pending = [
                (first.genome, (a.agent_id, b.agent_id), first.operators),
                (second.genome, (b.agent_id, a.agent_id), second.operators),
            ]
        else:
            pending = [(a.genome, (a.agent_id,), ()), (b.genome, (b.agent_id,), ())]
        for genome, lineage, operators in pending:
            if len(births) == n_children:
                break
            tries = 0
            while True:
                mutated = mutate_traced(genome, space, rng, eta=mut_eta, indpb=mut_indpb)
                genome, operators = mutated.genome, operators + mutated.operators
                if not distinct or genome.digest() not in seen or tries >= max_retries:
                    break
                tries += 1
            if distinct and genome.digest() in seen:
                logger.debug("child of %s is a clone after %d retries", lineage, tries)
            seen.add(genome.digest())
            births.append(Birth(genome, lineage, operators))
    return births
