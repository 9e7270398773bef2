"""volume_hunter: volume z-scores, effort against result, money flows; calls the direction."""

from __future__ import annotations

from agents.banks import volume_dataset
from agents.datasets import per_symbol
from agents.specialties.base import LiveInput, Specialty, one_per_symbol, series_space

NAME = "volume_hunter"

SPECIALTY = Specialty(
    NAME,
    "Reads volume: z-scores, relative volume, volume against range (effort vs result), "
    "signed-volume and money flows, VWAP gaps; calls the direction.",
    "direction",
    series_space(NAME, ("fast", "slow", "all")),
    "OHLCV candles of each run symbol from the store; volume-centred features",
    prefix="vh",
    eats=("store", "exchange", "timeframe", "symbols", "start_ms", "end_ms", "regime_rules"),
    build=per_symbol(NAME, volume_dataset),
    grid_datasets=one_per_symbol,
    live=LiveInput.CANDLES,
    live_dataset=volume_dataset,
)
