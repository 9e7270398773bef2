"""market_scanner: ranks the symbols of a panel by their expected return."""

from __future__ import annotations

from agents.banks import panel_dataset
from agents.dataset import Dataset
from agents.datasets import candles_of
from agents.sources import DataSources
from agents.specialties.base import LiveInput, Specialty, series_space

NAME = "market_scanner"


def build(sources: DataSources) -> list[Dataset]:
    """One panel of every run symbol, aligned on common timestamps."""
    candles = {s: candles_of(sources, s, NAME) for s in sources.symbols}
    name = f"{sources.exchange}_panel_{sources.timeframe}"
    return [
        panel_dataset(candles, name=name, timeframe=sources.timeframe, rules=sources.regime_rules)
    ]


SPECIALTY = Specialty(
    NAME,
    "Ranks the symbols of a panel by their expected return: cross-sectional momentum "
    "ranks and returns relative to the panel.",
    "rank",
    series_space(NAME, ("fast", "slow", "all")),
    "OHLCV candles of all run symbols, aligned on common timestamps (a panel)",
    prefix="ms",
    eats=("store", "exchange", "timeframe", "symbols", "start_ms", "end_ms", "regime_rules"),
    build=build,
    live=LiveInput.PANEL,
)
