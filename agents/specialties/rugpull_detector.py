"""rugpull_detector: classifies Uniswap V2 tokens as rug pulls from on-chain features."""

from __future__ import annotations

import pandas as pd

from agents.banks import rugpull_dataset
from agents.dataset import Dataset
from agents.datasets import need_file
from agents.genome import ChoiceGene, GenomeSpace
from agents.sources import DataSources
from agents.specialties.base import LiveInput, Specialty, family_genes, model_genes

NAME = "rugpull_detector"


def build(sources: DataSources) -> list[Dataset]:
    """One dataset of the tokens file."""
    return [rugpull_dataset(pd.read_csv(need_file(sources.rugpull_tokens, NAME, "rugpull_tokens")))]


SPECIALTY = Specialty(
    NAME,
    "Classifies Uniswap V2 tokens as rug pulls from 18 on-chain features (about 9 in 10 "
    "tokens of the data set are rug pulls: judged by AUC, precision and recall).",
    "classify",
    # Tokens are not a time series: no lookback, no horizon, no trading threshold.
    # Tabular tokens: LightGBM's home ground; no window, so no tcn.
    GenomeSpace(
        NAME,
        (
            ChoiceGene("feature_set", ("activity", "holders", "all")),
            *model_genes(),
            *family_genes(("mlp", "gbm")),
        ),
    ),
    "rugpull_uniswapv2_tokens.csv.gz: 18 token features and is_rugpull",
    prefix="rd",
    eats=("rugpull_tokens",),
    build=build,
    live=LiveInput.TOKENS,
    live_reason="scores tokens: POST /v1/rugpull",
)
