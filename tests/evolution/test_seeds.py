"""Seeds: one root seed, every other seed a position in its spawn tree, asked for in any order."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.genome import ChoiceGene, FloatGene, GenomeSpace, IntGene
from evolution.seeds import (
    child_seed,
    generation_rng,
    initial_population,
    seed_sequence,
    specialty_key,
)

SPACE = GenomeSpace(
    "volume_hunter",
    (
        IntGene("lookback", 8, 128),
        ChoiceGene("feature_set", ("volume", "flow")),
        FloatGene("lr", 1e-4, 1e-1, log=True),
        FloatGene("dropout", 0.0, 0.5),
    ),
)


@settings(max_examples=30, deadline=None)
@given(root=st.integers(0, 2**64), order_seed=st.integers(0, 1000))
def test_child_seeds_do_not_depend_on_the_order_they_are_asked_for(
    root: int, order_seed: int
) -> None:
    positions = [(g, i) for g in range(4) for i in range(6)]
    in_order = {position: child_seed(root, *position) for position in positions}
    shuffled = list(positions)
    random.Random(order_seed).shuffle(shuffled)
    assert {position: child_seed(root, *position) for position in shuffled} == in_order
    assert len(set(in_order.values())) == len(positions)
    assert all(0 <= seed < 2**63 for seed in in_order.values())


def test_child_seed_is_the_node_of_the_spawned_tree() -> None:
    """The same seeds as SeedSequence(root).spawn(...) chains, without replaying the spawns."""
    root = 20240601
    tree = np.random.SeedSequence(root)
    for generation, sequence in enumerate(tree.spawn(3)):
        for index, child in enumerate(sequence.spawn(4)):
            expected = int(child.generate_state(1, dtype=np.uint64)[0]) >> 1
            assert child_seed(root, generation, index) == expected
    assert seed_sequence(root, 2).spawn_key == (2,)


def test_a_resumed_run_gets_the_same_generation_rng() -> None:
    uninterrupted = [generation_rng(7, g).random(5) for g in range(4)]
    resumed = generation_rng(7, 3).random(5)  # nothing of generations 0..2 was asked for
    np.testing.assert_array_equal(resumed, uninterrupted[3])
    assert not np.array_equal(uninterrupted[2], uninterrupted[3])
    assert not np.array_equal(generation_rng(8, 3).random(5), uninterrupted[3])


def test_specialties_get_their_own_streams() -> None:
    assert child_seed(1, 2, 3, specialty="technical_analyst") != child_seed(
        1, 2, 3, specialty="volume_hunter"
    )
    assert child_seed(1, 2, 3, specialty="volume_hunter") != child_seed(1, 2, 3)
    assert specialty_key("volume_hunter") == 513_941_557  # CRC-32: the same on every machine
    ta = generation_rng(1, 2, specialty="technical_analyst").random(3)
    vh = generation_rng(1, 2, specialty="volume_hunter").random(3)
    assert not np.array_equal(ta, vh)


def test_initial_population_is_deterministic_within_bounds_and_grows_by_appending() -> None:
    five = initial_population(SPACE, 5, root_seed=42)
    assert five == initial_population(SPACE, 5, root_seed=42)
    assert initial_population(SPACE, 3, root_seed=42) == five[:3]
    assert initial_population(SPACE, 5, root_seed=43) != five
    assert len({genome.digest() for genome in five}) == 5
    for genome in five:
        assert SPACE.validate(genome) == genome
    assert initial_population(SPACE, 0, root_seed=42) == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: child_seed(-1, 0, 0), "root_seed must be a non-negative integer; got -1"),
        (lambda: child_seed(1, -2, 0), "generation must be a non-negative integer; got -2"),
        (
            lambda: child_seed(1, 0, 1.5),  # type: ignore[arg-type]
            "index must be a non-negative integer; got 1.5",
        ),
        (lambda: generation_rng(1, 0, specialty=""), "specialty must be a non-empty name; got ''"),
        (lambda: initial_population(SPACE, -3, 1), "n must be a non-negative integer; got -3"),
    ],
)
def test_bad_arguments_name_the_field_and_the_value(
    call: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call()
