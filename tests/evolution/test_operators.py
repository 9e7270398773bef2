"""The DEAP adapter: bounded operators within every gene's bounds, injected RNG, global random intact."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
from deap.tools import crossover as deap_crossover
from deap.tools import emo as deap_emo
from deap.tools import mutation as deap_mutation
from deap.tools import selection as deap_selection
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.genome import ChoiceGene, FloatGene, Gene, Genome, GenomeSpace, IntGene
from evolution.operators import (
    Offspring,
    OperatorRecord,
    crossover,
    crossover_traced,
    deap_random,
    first_front,
    mutate,
    mutate_traced,
    nsga2_select,
    pareto_fronts,
    tournament_select,
)

SPACE = GenomeSpace(
    "technical_analyst",
    (
        IntGene("lookback", 8, 128),
        ChoiceGene("feature_set", ("price", "momentum", "volatility")),
        IntGene("hidden", 4, 64),
        FloatGene("dropout", 0.0, 0.5),
        FloatGene("lr", 1e-4, 1e-1, log=True),
        FloatGene("threshold", 0.0, 0.3),
    ),
)


@st.composite
def gene_spaces(draw: st.DrawFn) -> GenomeSpace:
    """Random spaces of int, float, log-float and choice genes, degenerate bounds included."""
    kinds = draw(
        st.lists(st.sampled_from(["int", "float", "log", "choice"]), min_size=1, max_size=8)
    )
    genes: list[Gene] = []
    for index, kind in enumerate(kinds):
        name = f"g{index}"
        if kind == "int":
            low = draw(st.integers(-1000, 1000))
            genes.append(IntGene(name, low, low + draw(st.integers(0, 5000))))
        elif kind == "float":
            start = draw(st.floats(-1e6, 1e6))
            genes.append(FloatGene(name, start, start + draw(st.floats(0.0, 1e6))))
        elif kind == "log":
            positive = draw(st.floats(1e-8, 1e3))
            # A ratio within a few ulps of 1 makes log(high) == log(low) with high != low, which
            # FloatGene.encode divides by (reported); a real space never declares such a gene.
            ratio = draw(st.one_of(st.just(1.0), st.floats(1.0001, 1e6)))
            genes.append(FloatGene(name, positive, positive * ratio, log=True))
        else:
            choices = draw(st.lists(st.integers(0, 50), min_size=1, max_size=6, unique=True))
            genes.append(ChoiceGene(name, tuple(choices)))
    return GenomeSpace("technical_analyst", tuple(genes))


def assert_within_bounds(space: GenomeSpace, genome: Genome) -> None:
    assert space.validate(genome) == genome  # raises, naming the gene, if any gene is out of bounds
    for gene in space.genes:
        value = genome[gene.name]
        if isinstance(gene, ChoiceGene):
            assert value in gene.choices
        else:
            assert isinstance(value, int if isinstance(gene, IntGene) else float)
            assert gene.low <= value <= gene.high


seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=150, deadline=None)
@given(space=gene_spaces(), seed=seeds, eta=st.floats(0.0, 100.0), indpb=st.floats(0.0, 0.5))
def test_crossover_keeps_every_gene_within_bounds(
    space: GenomeSpace, seed: int, eta: float, indpb: float
) -> None:
    rng = np.random.default_rng(seed)
    a, b = space.sample(rng), space.sample(rng)
    for child in crossover(a, b, space, rng, eta=eta, indpb=indpb):
        assert_within_bounds(space, child)


@settings(max_examples=150, deadline=None)
@given(space=gene_spaces(), seed=seeds, eta=st.floats(0.0, 100.0), indpb=st.floats(0.0, 1.0))
def test_mutate_keeps_every_gene_within_bounds(
    space: GenomeSpace, seed: int, eta: float, indpb: float
) -> None:
    rng = np.random.default_rng(seed)
    genome = space.sample(rng)
    for _ in range(3):  # mutants of mutants too, gene values at the bounds included
        genome = mutate(genome, space, rng, eta=eta, indpb=indpb)
        assert_within_bounds(space, genome)


@settings(max_examples=50, deadline=None)
@given(space=gene_spaces(), seed=seeds)
def test_same_rng_seed_same_children(space: GenomeSpace, seed: int) -> None:
    parents = [space.sample(np.random.default_rng(seed + n)) for n in (1, 2)]

    def children(seed: int) -> tuple[Genome, Genome, Genome]:
        rng = np.random.default_rng(seed)
        first, second = crossover(parents[0], parents[1], space, rng)
        return first, second, mutate(first, space, rng, indpb=0.5)

    assert children(seed) == children(seed)


def test_different_seeds_give_different_children() -> None:
    a, b = SPACE.sample(np.random.default_rng(1)), SPACE.sample(np.random.default_rng(2))
    outcomes = {crossover(a, b, SPACE, np.random.default_rng(s)) for s in range(20)}
    assert len(outcomes) > 15


def test_global_random_and_deap_modules_are_untouched() -> None:
    random.seed(20240601)
    before = random.getstate()
    a, b = SPACE.sample(np.random.default_rng(1)), SPACE.sample(np.random.default_rng(2))
    rng = np.random.default_rng(3)
    crossover(a, b, SPACE, rng)
    mutate(a, SPACE, rng, indpb=1.0)
    tournament_select([0.1, 0.5, 0.2, 0.9], 10, rng)
    nsga2_select([(1.0, 2.0), (2.0, 1.0), (0.0, 0.0)], 2, rng)
    assert random.getstate() == before
    for module in (deap_crossover, deap_mutation, deap_selection, deap_emo):
        assert module.random is random


def test_deap_modules_are_restored_when_the_operator_raises() -> None:
    with pytest.raises(RuntimeError, match="boom"), deap_random(np.random.default_rng(0)):
        assert deap_mutation.random is not random
        raise RuntimeError("boom")
    assert deap_mutation.random is random


def test_mutate_is_deaps_polynomial_mutation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The adapter feeds DEAP a random.Random seeded with one draw of the injected generator."""
    genome = SPACE.sample(np.random.default_rng(5))
    stream = random.Random(int(np.random.default_rng(9).integers(0, 2**63)))
    monkeypatch.setattr(deap_mutation, "random", stream)
    vector = SPACE.encode(genome).tolist()
    deap_mutation.mutPolynomialBounded(vector, eta=20.0, low=0.0, up=1.0, indpb=0.5)
    monkeypatch.undo()
    expected = SPACE.decode(np.array(vector))
    got = mutate(genome, SPACE, np.random.default_rng(9), eta=20.0, indpb=0.5)
    assert got != genome
    for name in SPACE.names:
        if isinstance(expected[name], str):
            assert got[name] == expected[name]
        else:
            assert got[name] == pytest.approx(expected[name], rel=1e-12)


def test_untouched_genes_keep_the_parents_exact_values() -> None:
    genome = SPACE.sample(np.random.default_rng(11))
    assert mutate(genome, SPACE, np.random.default_rng(0), indpb=0.0) == genome
    first, second = crossover(genome, genome, SPACE, np.random.default_rng(0))
    assert first == genome and second == genome


def test_operator_records_name_the_operator_parameters_and_changed_genes() -> None:
    a, b = SPACE.sample(np.random.default_rng(1)), SPACE.sample(np.random.default_rng(2))
    first, second = crossover_traced(a, b, SPACE, np.random.default_rng(3), eta=15.0, indpb=0.5)
    for child, parent in ((first, a), (second, b)):
        (text,) = child.operators
        record = OperatorRecord.parse(text)
        assert record.name == "cxSimulatedBinaryBounded"
        assert record.params == (("eta", 15.0), ("indpb", 0.5))
        changed = tuple(n for n in SPACE.names if child.genome[n] != parent[n])
        assert record.genes == changed and changed
    mutant = mutate_traced(a, SPACE, np.random.default_rng(4), eta=20.0, indpb=1.0)
    assert isinstance(mutant, Offspring)
    assert mutant.operators[0].startswith("mutPolynomialBounded(eta=20,indpb=1)[")
    assert str(OperatorRecord.parse(mutant.operators[0])) == mutant.operators[0]
    untouched = mutate_traced(a, SPACE, np.random.default_rng(4), indpb=0.0)
    assert untouched.operators == ("mutPolynomialBounded(eta=20,indpb=0)[]",)


def test_crossover_indpb_controls_how_many_genes_cross() -> None:
    space = GenomeSpace("technical_analyst", tuple(FloatGene(f"g{i}", 0.0, 1.0) for i in range(40)))
    a = space.decode(np.full(40, 0.2))
    b = space.decode(np.full(40, 0.8))
    rng = np.random.default_rng(0)
    crossed = [
        sum(c[n] != a[n] for n in space.names)
        for c, _ in (crossover(a, b, space, rng, indpb=indpb) for indpb in [0.1] * 50)
    ]
    assert np.mean(crossed) / 40 == pytest.approx(0.1, abs=0.03)
    assert crossover(a, b, space, rng, indpb=0.0) == (a, b)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"indpb": 0.7}, r"indpb must be in \[0, 0.5\]; got 0.7"),
        ({"eta": -1.0}, r"eta must be a finite number >= 0; got -1.0"),
    ],
)
def test_crossover_rejects_bad_parameters(kwargs: dict[str, float], message: str) -> None:
    a, b = SPACE.sample(np.random.default_rng(1)), SPACE.sample(np.random.default_rng(2))
    with pytest.raises(ValueError, match=message):
        crossover(a, b, SPACE, np.random.default_rng(0), **kwargs)


def test_mutate_rejects_bad_parameters_and_foreign_genomes() -> None:
    genome = SPACE.sample(np.random.default_rng(1))
    with pytest.raises(ValueError, match=r"indpb must be in \[0, 1\]; got 1.5"):
        mutate(genome, SPACE, np.random.default_rng(0), indpb=1.5)
    bad = Genome(
        "technical_analyst", tuple((n, 10_000 if n == "lookback" else v) for n, v in genome.values)
    )
    with pytest.raises(ValueError, match=r"gene lookback must be in \[8, 128\]; got 10000"):
        mutate(bad, SPACE, np.random.default_rng(0))


def test_concurrent_threads_get_the_same_children_as_sequential_calls() -> None:
    genome = SPACE.sample(np.random.default_rng(1))
    expected = [mutate(genome, SPACE, np.random.default_rng(s), indpb=0.8) for s in range(40)]
    results: list[Genome | None] = [None] * 40

    def work(start: int) -> None:
        for s in range(start, 40, 4):
            results[s] = mutate(genome, SPACE, np.random.default_rng(s), indpb=0.8)

    threads = [threading.Thread(target=work, args=(start,)) for start in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == expected


def test_pareto_fronts_and_selection_on_plain_vectors() -> None:
    objectives = [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (0.2, 0.2), (0.1, 0.1)]
    assert [front for front, _ in pareto_fronts(objectives)] == [0, 0, 0, 1, 2]
    assert first_front(objectives) == [0, 1, 2]
    assert nsga2_select(objectives, 4, np.random.default_rng(0)) == [0, 1, 2, 3]
    winners = tournament_select([0.0, 1.0], 50, np.random.default_rng(0), tournsize=2)
    assert winners.count(1) > 30
    with pytest.raises(ValueError, match="objectives must be finite; individual 1 has nan"):
        pareto_fronts([(1.0,), (float("nan"),)])
    with pytest.raises(ValueError, match="objectives must all have 2 values; individual 1 has 1"):
        pareto_fronts([(1.0, 2.0), (1.0,)])
