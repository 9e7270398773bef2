"""Genomes: a child's DNA as typed genes with bounds, and the space they are drawn from.

Every gene maps to and from the unit interval (``GenomeSpace.encode`` / ``decode``). The genetic
operators work on that encoding with bounded operators, so whatever they produce decodes to a genome
whose every gene lies within its bounds: an integer gene rounds, a choice gene picks a bin, a float
gene on a log scale stays positive.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

GeneValue = int | float | str


def _check_default(gene: IntGene | FloatGene) -> None:
    if gene.default is not None and not gene.low <= gene.default <= gene.high:
        raise ValueError(
            f"gene {gene.name}: default {gene.default!r} is not in [{gene.low}, {gene.high}]"
        )


@dataclass(frozen=True)
class IntGene:
    """``default``: as for :class:`ChoiceGene`."""

    name: str
    low: int
    high: int
    default: int | None = None

    def __post_init__(self) -> None:
        if self.high < self.low:
            raise ValueError(f"gene {self.name}: high ({self.high}) must be >= low ({self.low})")
        _check_default(self)

    def decode(self, unit: float) -> int:
        return int(self.low + round(min(max(unit, 0.0), 1.0) * (self.high - self.low)))

    def encode(self, value: GeneValue) -> float:
        return 0.5 if self.high == self.low else (int(value) - self.low) / (self.high - self.low)

    def check(self, value: GeneValue) -> int:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"gene {self.name} must be an integer; got {value!r}")
        if not self.low <= value <= self.high:
            raise ValueError(f"gene {self.name} must be in [{self.low}, {self.high}]; got {value}")
        return int(value)


@dataclass(frozen=True)
class FloatGene:
    """``default``: as for :class:`ChoiceGene`."""

    name: str
    low: float
    high: float
    log: bool = False
    default: float | None = None

    def __post_init__(self) -> None:
        if self.high < self.low:
            raise ValueError(f"gene {self.name}: high ({self.high}) must be >= low ({self.low})")
        _check_default(self)
        if self.log and self.low <= 0:
            raise ValueError(f"gene {self.name}: a log-scale gene needs low > 0; got {self.low}")

    def decode(self, unit: float) -> float:
        unit = min(max(unit, 0.0), 1.0)
        if self.log:
            value = math.exp(math.log(self.low) + unit * (math.log(self.high) - math.log(self.low)))
        else:
            value = self.low + unit * (self.high - self.low)
        return float(min(max(value, self.low), self.high))  # float rounding never leaves the bounds

    def encode(self, value: GeneValue) -> float:
        if self.high == self.low:
            return 0.5
        if self.log:
            span = math.log(self.high) - math.log(self.low)
            if span == 0.0:  # bounds a rounding error apart: one value in effect
                return 0.5
            return (math.log(float(value)) - math.log(self.low)) / span
        return (float(value) - self.low) / (self.high - self.low)

    def check(self, value: GeneValue) -> float:
        if isinstance(value, bool | str) or not isinstance(value, int | float | np.number):
            raise ValueError(f"gene {self.name} must be a number; got {value!r}")
        if not (math.isfinite(float(value)) and self.low <= float(value) <= self.high):
            raise ValueError(f"gene {self.name} must be in [{self.low}, {self.high}]; got {value}")
        return float(value)


@dataclass(frozen=True)
class ChoiceGene:
    """``default``: what a genome without the gene behaves as (e.g. ``family`` "mlp"), when the
    gene came after genomes that lack it; a Tune grid that does not name the gene uses it."""

    name: str
    choices: tuple[GeneValue, ...]
    default: GeneValue | None = None

    def __post_init__(self) -> None:
        if not self.choices:
            raise ValueError(f"gene {self.name}: needs at least one choice")
        if self.default is not None and self.default not in self.choices:
            raise ValueError(
                f"gene {self.name}: default {self.default!r} is not one of {list(self.choices)}"
            )

    def decode(self, unit: float) -> GeneValue:
        index = min(int(min(max(unit, 0.0), 1.0) * len(self.choices)), len(self.choices) - 1)
        return self.choices[index]

    def encode(self, value: GeneValue) -> float:
        return (self.choices.index(value) + 0.5) / len(self.choices)

    def check(self, value: GeneValue) -> GeneValue:
        if value not in self.choices:
            raise ValueError(f"gene {self.name} must be one of {list(self.choices)}; got {value!r}")
        return value


Gene = IntGene | FloatGene | ChoiceGene


@dataclass(frozen=True)
class Genome:
    """A child's DNA: its specialty and one value per gene, in the space's gene order."""

    specialty: str
    values: tuple[tuple[str, GeneValue], ...]

    def __getitem__(self, name: str) -> GeneValue:
        for key, value in self.values:
            if key == name:
                return value
        raise KeyError(f"genome of {self.specialty} has no gene {name!r}")

    def as_dict(self) -> dict[str, GeneValue]:
        return dict(self.values)

    def to_json(self) -> str:
        return json.dumps({"specialty": self.specialty, "genes": self.as_dict()}, sort_keys=True)

    def digest(self) -> str:
        """SHA-256 of the canonical JSON: equal genomes, equal digests, across runs and machines."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_json(cls, text: str) -> Genome:
        raw = json.loads(text)
        return cls(raw["specialty"], tuple(raw["genes"].items()))


@dataclass(frozen=True)
class GenomeSpace:
    """The genes a specialty's children carry, with their bounds."""

    specialty: str
    genes: tuple[Gene, ...]

    def __post_init__(self) -> None:
        names = [gene.name for gene in self.genes]
        if len(set(names)) != len(names):
            raise ValueError(f"genome space of {self.specialty} repeats a gene name: {names}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(gene.name for gene in self.genes)

    def decode(self, unit: np.ndarray) -> Genome:
        if unit.shape != (len(self.genes),):
            raise ValueError(
                f"{self.specialty}: expected {len(self.genes)} genes; got shape {unit.shape}"
            )
        pairs = zip(self.genes, unit, strict=True)
        return Genome(self.specialty, tuple((g.name, g.decode(float(u))) for g, u in pairs))

    def encode(self, genome: Genome) -> np.ndarray:
        self.validate(genome)
        return np.array([gene.encode(genome[gene.name]) for gene in self.genes], dtype=np.float64)

    def sample(self, rng: np.random.Generator) -> Genome:
        return self.decode(rng.random(len(self.genes)))

    def validate(self, genome: Genome | Mapping[str, GeneValue]) -> Genome:
        """The genome, checked gene by gene; errors name the gene, its bounds and the value. A gene
        the genome lacks takes its ``default`` when it has one (a genome stored before the gene
        existed: a resumed run), else the genome is refused naming the gene."""
        values = genome.as_dict() if isinstance(genome, Genome) else dict(genome)
        if isinstance(genome, Genome) and genome.specialty != self.specialty:
            raise ValueError(f"genome is of {genome.specialty!r}, not {self.specialty!r}")
        unknown = sorted(set(values) - set(self.names))
        if unknown:
            known = ", ".join(self.names)
            raise ValueError(f"{self.specialty} has no gene {unknown[0]!r}; genes: {known}")
        for gene in self.genes:  # a gene added after the genome was made: what it behaved as
            if gene.name not in values and gene.default is not None:
                values[gene.name] = gene.default
        missing = [name for name in self.names if name not in values]
        if missing:
            raise ValueError(f"{self.specialty} genome is missing gene {missing[0]!r}")
        return Genome(
            self.specialty, tuple((gene.name, gene.check(values[gene.name])) for gene in self.genes)
        )
