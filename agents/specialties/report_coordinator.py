"""report_coordinator: combines the other children; its champions are the mother brain."""

from __future__ import annotations

from agents.dataset import Dataset
from agents.genome import ChoiceGene, FloatGene, GenomeSpace, IntGene
from agents.sources import DataSources
from agents.specialties.base import LiveInput, Specialty, model_genes, position_genes

NAME = "report_coordinator"


def build(sources: DataSources) -> list[Dataset]:
    raise ValueError(
        f"{NAME}: its dataset is stacked from the members' out-of-sample scores; "
        "build it with stacked_dataset(base, predictions) once the members are scored"
    )


SPECIALTY = Specialty(
    NAME,
    "Combines the other children: learns from their out-of-sample scores (and their "
    "consensus) when to trust whom; the champion per regime is the mother brain.",
    "direction",
    GenomeSpace(
        NAME,
        (
            IntGene("lookback", 1, 8),
            ChoiceGene("feature_set", ("members", "consensus", "all")),
            IntGene("horizon", 1, 24),
            *model_genes(hidden=32, depth=2, dropout=0.3),
            # Up to 0.8: selective children trade less and pay less in fees.
            FloatGene("threshold", 0.0, 0.8),
            *position_genes(),
        ),
    ),
    "other children's out-of-sample scores on a shared base series (stacked_dataset)",
    prefix="rc",
    build=build,
    live=LiveInput.NONE,
    live_reason="the coordinators are the mother brain's",
)
