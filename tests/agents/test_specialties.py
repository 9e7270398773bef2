"""The registry of specialties and their genome spaces."""

from __future__ import annotations

import numpy as np
import pytest

from agents.genome import ChoiceGene, FloatGene, GenomeSpace, IntGene
from agents.specialties import SPECIALTIES, TASKS, Specialty, get_specialty

SEVEN = (
    "technical_analyst",
    "volume_hunter",
    "market_scanner",
    "whale_watcher",
    "sentiment_scout",
    "rugpull_detector",
    "report_coordinator",
)
#: The gene names the trainer reads (CONTRACTS4.md).
KNOWN_GENES = {
    "lookback", "feature_set", "horizon", "hidden", "depth", "dropout", "lr", "epochs",
    "threshold", "weight_decay", "batch_size", "band", "min_hold", "levels", "vol_target",
    # families (agents.models, agents.gbm) and targets (market.labels, agents.training)
    "family", "num_leaves", "n_estimators", "learning_rate", "min_child_samples",
    "feature_fraction", "label", "barrier", "primary",
}  # fmt: skip


def test_registry_holds_the_seven_in_design_order() -> None:
    assert tuple(SPECIALTIES) == SEVEN
    assert {s.task for s in SPECIALTIES.values()} == set(TASKS)
    assert get_specialty("market_scanner").task == "rank"
    assert get_specialty("rugpull_detector").task == "classify"
    for name in SEVEN:
        specialty = get_specialty(name)
        assert specialty.name == name == specialty.space.specialty
        assert specialty.description and specialty.inputs


def test_unknown_specialty_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"specialty must be one of technical_analyst, "
                       r"volume_hunter, .*report_coordinator; got 'astrologer'"):  # fmt: skip
        get_specialty("astrologer")


def test_a_specialty_checks_its_task_and_space() -> None:
    space = SPECIALTIES["technical_analyst"].space
    with pytest.raises(ValueError, match="task must be one of direction, rank, classify; got 'x'"):
        Specialty("technical_analyst", "d", "x", space, "i", prefix="ta")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="its genome space is for 'technical_analyst'"):
        Specialty("volume_hunter", "d", "direction", space, "i", prefix="vh")


@pytest.mark.parametrize("name", SEVEN)
def test_spaces_use_contract_gene_names_and_cpu_sized_bounds(name: str) -> None:
    space = get_specialty(name).space
    assert set(space.names) <= KNOWN_GENES
    genes = {gene.name: gene for gene in space.genes}
    feature_set = genes["feature_set"]
    assert isinstance(feature_set, ChoiceGene)
    assert feature_set.choices == get_specialty(name).feature_sets and "all" in feature_set.choices
    hidden, depth, epochs = genes["hidden"], genes["depth"], genes["epochs"]
    assert isinstance(hidden, IntGene) and hidden.low >= 8 and hidden.high <= 64
    assert isinstance(depth, IntGene) and depth.low == 1 and depth.high <= 3
    assert isinstance(epochs, IntGene) and epochs.low >= 2 and epochs.high <= 12
    lr = genes["lr"]
    assert isinstance(lr, FloatGene) and lr.log and (lr.low, lr.high) == (1e-4, 1e-2)
    dropout = genes["dropout"]
    assert isinstance(dropout, FloatGene) and dropout.low == 0.0 and dropout.high <= 0.4
    if name == "rugpull_detector":  # tokens: no history, no horizon, no trading threshold
        assert not {"lookback", "horizon", "threshold"} & set(space.names)
    else:
        for gene_name in ("lookback", "horizon"):
            gene = genes[gene_name]
            assert isinstance(gene, IntGene) and gene.low == 1 and gene.high <= 24
        threshold = genes["threshold"]
        assert isinstance(threshold, FloatGene) and (threshold.low, threshold.high) == (0, 0.8)


@pytest.mark.parametrize("name", SEVEN)
def test_families_and_targets_are_genes_of_the_model_specialties(name: str) -> None:
    genes = {gene.name: gene for gene in get_specialty(name).space.genes}
    if name == "report_coordinator":  # the mother brain's coordinators stay MLPs on returns
        assert not {"family", "label", "primary"} & set(genes)
        return
    family = genes["family"]
    assert isinstance(family, ChoiceGene)
    expected = ("mlp", "gbm") if name == "rugpull_detector" else ("mlp", "tcn", "gbm")
    assert family.choices == expected  # tokens have no window: no tcn
    trees, leaves = genes["n_estimators"], genes["num_leaves"]  # a few seconds on 2 cores
    assert isinstance(trees, IntGene) and trees.high <= 150
    assert isinstance(leaves, IntGene) and leaves.high <= 31
    if name == "rugpull_detector":
        assert not {"label", "barrier", "primary"} & set(genes)
        return
    label, primary = genes["label"], genes["primary"]
    assert isinstance(label, ChoiceGene) and label.choices == ("fwd", "volscaled", "triple_barrier")
    assert isinstance(primary, ChoiceGene) and primary.choices == ("none", "sma_cross", "momentum")


@pytest.mark.parametrize("name", SEVEN)
def test_sampled_and_decoded_genomes_stay_in_bounds(name: str) -> None:
    space: GenomeSpace = get_specialty(name).space
    rng = np.random.default_rng(7)
    for _ in range(200):
        genome = space.sample(rng)
        assert space.validate(genome) == genome
        assert space.decode(space.encode(genome)) == genome
    # The unit cube's corners decode to the bounds themselves.
    for corner in (np.zeros(len(space.genes)), np.ones(len(space.genes))):
        space.validate(space.decode(corner))
