"""The one DEAP adapter: bounded crossover, mutation and selection with an injected RNG.

DEAP's operators draw from the module-level ``random`` that each of its modules imported
(``deap.tools.crossover.random.random()`` and so on). Seeding the global ``random`` would make
every other user of it (and every thread) part of our reproducibility story, so instead
``deap_random(rng)`` swaps the ``random`` attribute of DEAP's modules for a ``random.Random``
seeded from the caller's numpy ``Generator`` for the duration of one call, under a lock, and puts
the module back afterwards. The global ``random`` is never read or advanced. Nothing else in
Redline calls DEAP directly: selection, breeding and the Mother go through this module.

Genomes are operated on in their ``[0, 1]^d`` encoding (``GenomeSpace.encode``) with
``low=0, up=1``, where DEAP's bounded operators (simulated binary crossover, polynomial mutation)
never leave the box; ``GenomeSpace.decode`` then maps back onto each gene's own bounds (ints round,
choices pick a bin, log floats stay positive). A gene the operator did not move keeps its parent's
exact value: decoding an untouched float would otherwise cost it a rounding error.

Operators come in two forms: ``crossover``/``mutate`` return genomes (pure functions, as the style
guide has them), and ``crossover_traced``/``mutate_traced`` also say what was applied, as
``Offspring(genome, operators)``. Each operator is recorded as one string, for lineage::

    cxSimulatedBinaryBounded(eta=15,indpb=0.5)[dropout,lr]
    mutPolynomialBounded(eta=20,indpb=0.2)[]

the DEAP function, its parameters, then the genes whose value it changed in this child (``[]``: it
ran and changed nothing). ``OperatorRecord.parse`` reads one back.
"""

from __future__ import annotations

import math
import random
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np
from deap import base
from deap.tools import crossover as _deap_crossover
from deap.tools import emo as _deap_emo
from deap.tools import mutation as _deap_mutation
from deap.tools import selection as _deap_selection

from agents.genome import Genome, GenomeSpace

CROSSOVER_NAME = "cxSimulatedBinaryBounded"
MUTATION_NAME = "mutPolynomialBounded"

# Every DEAP module whose functions we call and that draws from its own `random` global.
_DEAP_MODULES: tuple[ModuleType, ...] = (
    _deap_crossover,
    _deap_mutation,
    _deap_selection,
    _deap_emo,
)
# Re-entrant: an adapter call made while a swap is active reuses it instead of deadlocking.
_SWAP_LOCK = threading.RLock()
_SWAP_DEPTH = 0

# DEAP's SBX crosses each gene with a hard-coded probability of 0.5 (deap/tools/crossover.py).
_SBX_GENE_PROBABILITY = 0.5


@contextmanager
def deap_random(rng: np.random.Generator) -> Iterator[random.Random]:
    """Let DEAP draw from a ``random.Random`` seeded from ``rng`` (one draw), then restore it.

    Nested use reuses the outer stream, so the draws stay a function of the outermost ``rng``.
    """
    global _SWAP_DEPTH
    with _SWAP_LOCK:
        if _SWAP_DEPTH:
            yield _deap_crossover.random
            return
        stream = random.Random(int(rng.integers(0, 2**63)))
        saved = [module.random for module in _DEAP_MODULES]
        for module in _DEAP_MODULES:
            module.random = stream  # type: ignore[attr-defined]
        _SWAP_DEPTH = 1
        try:
            yield stream
        finally:
            _SWAP_DEPTH = 0
            for module, original in zip(_DEAP_MODULES, saved, strict=True):
                module.random = original  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# Operator records


_RECORD_PATTERN = re.compile(r"^(?P<name>\w+)\((?P<params>[^)]*)\)\[(?P<genes>[^\]]*)\]$")


@dataclass(frozen=True)
class OperatorRecord:
    """One operator applied to one child: DEAP's name, its parameters, the genes it changed."""

    name: str
    params: tuple[tuple[str, float], ...]
    genes: tuple[str, ...]

    def __str__(self) -> str:
        params = ",".join(f"{key}={value:.12g}" for key, value in self.params)
        return f"{self.name}({params})[{','.join(self.genes)}]"

    @classmethod
    def parse(cls, text: str) -> OperatorRecord:
        match = _RECORD_PATTERN.match(text)
        if match is None:
            raise ValueError(f"operator record must look like 'name(k=v,...)[genes]'; got {text!r}")
        params = tuple(
            (key, float(value))
            for key, value in (item.split("=", 1) for item in match["params"].split(",") if item)
        )
        genes = tuple(gene for gene in match["genes"].split(",") if gene)
        return cls(match["name"], params, genes)


@dataclass(frozen=True)
class Offspring:
    """A new genome and the operators that made it from its parent(s), oldest first."""

    genome: Genome
    operators: tuple[str, ...]


def _check_probability(name: str, value: float, high: float = 1.0) -> float:
    if not (isinstance(value, int | float) and 0.0 <= value <= high):
        raise ValueError(f"{name} must be in [0, {high:g}]; got {value!r}")
    return float(value)


def _check_eta(name: str, value: float) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    return float(value)


def _rebuild(space: GenomeSpace, parent: Genome, before: list[float], after: list[float]) -> Genome:
    """Decode only the genes the operator moved; the rest keep the parent's exact values."""
    decoded = space.decode(np.clip(np.asarray(after, dtype=np.float64), 0.0, 1.0))
    values = tuple(
        (name, new if moved != old else parent[name])
        for (name, new), moved, old in zip(decoded.values, after, before, strict=True)
    )
    return Genome(space.specialty, values)


def _changed(parent: Genome, child: Genome) -> tuple[str, ...]:
    return tuple(name for name, value in child.values if value != parent[name])


# ---------------------------------------------------------------------------------------------
# Crossover and mutation


def crossover_traced(
    a: Genome,
    b: Genome,
    space: GenomeSpace,
    rng: np.random.Generator,
    *,
    eta: float = 15.0,
    indpb: float = 0.5,
) -> tuple[Offspring, Offspring]:
    """DEAP's bounded simulated binary crossover of two genomes of ``space``.

    Each gene is crossed with probability ``indpb``. DEAP's SBX crosses each gene it is given with
    a fixed probability of 0.5, so ``indpb`` first offers each gene to it with probability
    ``2 * indpb``: ``indpb`` may be at most 0.5, and 0.5 (the default) is DEAP's own behaviour.
    The first child is recorded against ``a``, the second against ``b``.
    """
    eta = _check_eta("eta", eta)
    indpb = _check_probability("indpb", indpb, _SBX_GENE_PROBABILITY)
    a, b = space.validate(a), space.validate(b)
    vec_a, vec_b = space.encode(a).tolist(), space.encode(b).tolist()
    child_a, child_b = list(vec_a), list(vec_b)
    with deap_random(rng) as stream:
        offer = indpb / _SBX_GENE_PROBABILITY
        offered = [i for i in range(len(child_a)) if offer >= 1.0 or stream.random() < offer]
        if offered:
            sub_a = [child_a[i] for i in offered]
            sub_b = [child_b[i] for i in offered]
            _deap_crossover.cxSimulatedBinaryBounded(sub_a, sub_b, eta=eta, low=0.0, up=1.0)
            for i, x, y in zip(offered, sub_a, sub_b, strict=True):
                child_a[i], child_b[i] = x, y
    params = (("eta", eta), ("indpb", indpb))
    result = []
    for parent, before, after in ((a, vec_a, child_a), (b, vec_b, child_b)):
        genome = _rebuild(space, parent, before, after)
        record = OperatorRecord(CROSSOVER_NAME, params, _changed(parent, genome))
        result.append(Offspring(genome, (str(record),)))
    return result[0], result[1]


def crossover(
    a: Genome,
    b: Genome,
    space: GenomeSpace,
    rng: np.random.Generator,
    *,
    eta: float = 15.0,
    indpb: float = 0.5,
) -> tuple[Genome, Genome]:
    """Two new genomes from ``a`` and ``b`` (see ``crossover_traced``), every gene within bounds."""
    first, second = crossover_traced(a, b, space, rng, eta=eta, indpb=indpb)
    return first.genome, second.genome


def mutate_traced(
    genome: Genome,
    space: GenomeSpace,
    rng: np.random.Generator,
    *,
    eta: float = 20.0,
    indpb: float = 0.2,
) -> Offspring:
    """DEAP's bounded polynomial mutation: each gene moves with probability ``indpb``."""
    eta = _check_eta("eta", eta)
    indpb = _check_probability("indpb", indpb)
    genome = space.validate(genome)
    before = space.encode(genome).tolist()
    after = list(before)
    with deap_random(rng):
        _deap_mutation.mutPolynomialBounded(after, eta=eta, low=0.0, up=1.0, indpb=indpb)
    child = _rebuild(space, genome, before, after)
    params = (("eta", eta), ("indpb", indpb))
    record = OperatorRecord(MUTATION_NAME, params, _changed(genome, child))
    return Offspring(child, (str(record),))


def mutate(
    genome: Genome,
    space: GenomeSpace,
    rng: np.random.Generator,
    *,
    eta: float = 20.0,
    indpb: float = 0.2,
) -> Genome:
    """A new genome: ``genome`` after polynomial mutation, every gene within bounds."""
    return mutate_traced(genome, space, rng, eta=eta, indpb=indpb).genome


# ---------------------------------------------------------------------------------------------
# Selection on plain objective vectors (all maximized)


class _Individual:
    """The least DEAP needs of an individual: a fitness, and where it came from."""

    __slots__ = ("fitness", "index")

    def __init__(self, fitness: Any, index: int) -> None:
        self.fitness = fitness
        self.index = index


@cache
def _fitness_class(n_objectives: int) -> type:
    # Built here rather than through deap.creator, which registers classes in a global namespace.
    return type(f"_Maximize{n_objectives}", (base.Fitness,), {"weights": (1.0,) * n_objectives})


def _individuals(objectives: Sequence[Sequence[float]]) -> list[_Individual]:
    if not objectives:
        return []
    width = len(objectives[0])
    if width == 0:
        raise ValueError("objectives must have at least one value per individual; got ()")
    fitness_class = _fitness_class(width)
    individuals = []
    for index, values in enumerate(objectives):
        if len(values) != width:
            raise ValueError(
                f"objectives must all have {width} values; individual {index} has {len(values)}"
            )
        bad = [value for value in values if not math.isfinite(value)]
        if bad:
            raise ValueError(f"objectives must be finite; individual {index} has {bad[0]}")
        individuals.append(_Individual(fitness_class(tuple(float(v) for v in values)), index))
    return individuals


def pareto_fronts(objectives: Sequence[Sequence[float]]) -> list[tuple[int, float]]:
    """Per individual, in input order: (non-dominated front, 0 best; crowding distance in it).

    DEAP's ``sortNondominated`` over every individual, then ``assignCrowdingDist`` per front
    (``inf`` at the extremes of a front).
    """
    individuals = _individuals(objectives)
    if not individuals:
        return []
    fronts = _deap_emo.sortNondominated(individuals, len(individuals))
    ranks: list[tuple[int, float]] = [(0, 0.0)] * len(individuals)
    for front_index, front in enumerate(fronts):
        _deap_emo.assignCrowdingDist(front)
        for individual in front:
            ranks[individual.index] = (front_index, float(individual.fitness.crowding_dist))
    return ranks


def nsga2_select(
    objectives: Sequence[Sequence[float]], k: int, rng: np.random.Generator
) -> list[int]:
    """Indices of the ``min(k, n)`` individuals DEAP's ``selNSGA2`` keeps, best front first.

    ``selNSGA2`` draws nothing today (ties in crowding keep input order); it still runs under
    ``deap_random(rng)`` so that a DEAP that starts drawing cannot reach the global ``random``.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0; got {k}")
    individuals = _individuals(objectives)
    if not individuals or k == 0:
        return []
    with deap_random(rng):
        chosen = _deap_emo.selNSGA2(individuals, min(k, len(individuals)))
    return [individual.index for individual in chosen]


def tournament_select(
    scores: Sequence[float], k: int, rng: np.random.Generator, *, tournsize: int = 3
) -> list[int]:
    """Indices of ``k`` winners of DEAP's ``selTournament`` on one score (with replacement)."""
    if k < 0:
        raise ValueError(f"k must be >= 0; got {k}")
    if tournsize < 1:
        raise ValueError(f"tournsize must be >= 1; got {tournsize}")
    individuals = _individuals([(score,) for score in scores])
    if not individuals or k == 0:
        return []
    with deap_random(rng):
        chosen = _deap_selection.selTournament(individuals, k, tournsize=tournsize)
    return [individual.index for individual in chosen]


def first_front(objectives: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated individuals, in input order."""
    individuals = _individuals(objectives)
    if not individuals:
        return []
    front = _deap_emo.sortNondominated(individuals, len(individuals), first_front_only=True)[0]
    return sorted(individual.index for individual in front)


__all__ = [
    "CROSSOVER_NAME",
    "MUTATION_NAME",
    "Offspring",
    "OperatorRecord",
    "crossover",
    "crossover_traced",
    "deap_random",
    "first_front",
    "mutate",
    "mutate_traced",
    "nsga2_select",
    "pareto_fronts",
    "tournament_select",
]
