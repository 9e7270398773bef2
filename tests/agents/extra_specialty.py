"""An eighth specialty as a plug-in (README, "How to add a specialty"): a small candle-based one.

Named by its import path, ``tests.agents.extra_specialty:SPECIALTY``, in a run's
``evolve.plugins`` (or ``REDLINE_SPECIALTIES``), so every process that looks it up (the driver,
the Mother actor, a Serve replica) imports it from here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from agents.banks import series_dataset
from agents.dataset import Dataset
from agents.datasets import per_symbol
from agents.genome import ChoiceGene, FloatGene, GenomeSpace, IntGene
from agents.specialties import LiveInput, Specialty, one_per_symbol
from market.regimes import RegimeRules
from market.series import Candles

NAME = "trend_sketcher"
PATH = f"{__name__}:SPECIALTY"


def trend_dataset(
    candles: Candles,
    *,
    name: str,
    timeframe: str,
    rules: RegimeRules | None = None,
    regimes: np.ndarray | None = None,
    feature_set: str | None = None,
    tail: int | None = None,
) -> Dataset:
    """Momentum over 6 and 24 bars and 24-bar volatility: causal (trailing windows), scale-free
    (log ratios). ``feature_set`` is ignored: both banks are always built (it is cheap)."""
    close = pd.Series(np.asarray(candles["close"], dtype=np.float64))
    logret = np.log(close).diff()
    banks = {
        "short": {"mom_6": np.log(close / close.shift(6)).to_numpy()},
        "long": {
            "mom_24": np.log(close / close.shift(24)).to_numpy(),
            "vol_24": logret.rolling(24).std().to_numpy(),
        },
    }
    return series_dataset(NAME, candles, banks, name=name, timeframe=timeframe, rules=rules,
                          regimes=regimes, tail=tail)  # fmt: skip


SPECIALTY = Specialty(
    NAME,
    "Sketches the trend from two momentum windows and the volatility; calls the direction.",
    "direction",
    # A tiny space: small nets, few epochs (a test evolves it in seconds).
    GenomeSpace(
        NAME,
        (
            IntGene("lookback", 1, 4),
            ChoiceGene("feature_set", ("short", "long", "all")),
            IntGene("horizon", 1, 4),
            IntGene("hidden", 8, 16),
            IntGene("depth", 1, 1),
            IntGene("epochs", 2, 3),
            FloatGene("threshold", 0.0, 0.5),
        ),
    ),
    "OHLCV candles of each run symbol from the store",
    prefix="tk",
    eats=("store", "exchange", "timeframe", "symbols", "start_ms", "end_ms", "regime_rules"),
    build=per_symbol(NAME, trend_dataset),
    grid_datasets=one_per_symbol,
    live=LiveInput.CANDLES,
    live_dataset=trend_dataset,
)
