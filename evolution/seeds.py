"""Seeds: one root seed for a run, and every other seed derived from it by position.

Every seed is a node of the ``np.random.SeedSequence(root_seed)`` spawn tree, addressed by its
``spawn_key`` instead of by how many times ``spawn`` was called before. So
``SeedSequence(root).spawn(g + 1)[g]`` is generation ``g``'s sequence and ``.spawn(i + 1)[i]``
of that is child ``i``'s: the same numbers whichever seed is asked for first, which is what lets a
resumed run pick up with exactly the seeds an uninterrupted run would have used.

A specialty's sub-population gets its own branch under the generation (``specialty=``), keyed by a
stable CRC-32 of the specialty's name, so adding or reordering specialties never changes another
specialty's seeds. The layout of the tree::

    (generation,)                          all specialties together (specialty=None)
    (generation, index)                    child ``index`` (specialty=None)
    (generation, crc32(specialty))         that specialty's breeding RNG in that generation
    (generation, crc32(specialty), index)  that specialty's child ``index``

Generation ``g``'s RNG makes generation ``g``'s genomes: it samples them at generation 0
(``initial_population``) and selects parents and breeds them afterwards.
"""

from __future__ import annotations

import zlib

import numpy as np

from agents.genome import Genome, GenomeSpace

# Seeds are stored beside every child (a BIGINT column) and fed to torch.manual_seed and
# random.Random, so they are kept non-negative and below 2**63.
_SEED_BITS = 63


def _check_non_negative(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer; got {value!r}")
    return int(value)


def specialty_key(specialty: str) -> int:
    """The stable spawn-key entry of a specialty: CRC-32 of its name (same on every machine)."""
    if not specialty:
        raise ValueError(f"specialty must be a non-empty name; got {specialty!r}")
    return zlib.crc32(specialty.encode())


def _spawn_key(generation: int, specialty: str | None, *rest: int) -> tuple[int, ...]:
    key: tuple[int, ...] = (_check_non_negative("generation", generation),)
    if specialty is not None:
        key += (specialty_key(specialty),)
    return key + rest


def seed_sequence(
    root_seed: int, generation: int, *, specialty: str | None = None
) -> np.random.SeedSequence:
    """Generation ``generation``'s node of the root seed's spawn tree (see the module docstring)."""
    root = _check_non_negative("root_seed", root_seed)
    return np.random.SeedSequence(root, spawn_key=_spawn_key(generation, specialty))


def child_seed(root_seed: int, generation: int, index: int, *, specialty: str | None = None) -> int:
    """The seed of child ``index`` born in ``generation``: an int in [0, 2**63), stored with it."""
    root = _check_non_negative("root_seed", root_seed)
    position = _check_non_negative("index", index)
    sequence = np.random.SeedSequence(root, spawn_key=_spawn_key(generation, specialty, position))
    return int(sequence.generate_state(1, dtype=np.uint64)[0]) >> (64 - _SEED_BITS)


def generation_rng(
    root_seed: int, generation: int, *, specialty: str | None = None
) -> np.random.Generator:
    """A fresh RNG for one generation (of one specialty): selection, pairing and operators."""
    return np.random.default_rng(seed_sequence(root_seed, generation, specialty=specialty))


def initial_population(space: GenomeSpace, n: int, root_seed: int) -> list[Genome]:
    """Generation 0 of ``space.specialty``: ``n`` genomes drawn uniformly within the bounds.

    Each genome consumes the same number of draws, so the first ``k`` genomes of a population of
    ``n > k`` are the population of ``k``: growing the population keeps the children it had.
    """
    count = _check_non_negative("n", n)
    rng = generation_rng(root_seed, 0, specialty=space.specialty)
    return [space.sample(rng) for _ in range(count)]
