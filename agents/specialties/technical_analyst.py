"""technical_analyst: price indicators at fast and slow windows; calls the direction."""

from __future__ import annotations

from agents.banks import technical_dataset
from agents.datasets import per_symbol
from agents.specialties.base import LiveInput, Specialty, one_per_symbol, series_space

NAME = "technical_analyst"


SPECIALTY = Specialty(
    NAME,
    "Reads price indicators (returns, moving-average gaps, RSI, ATR, MACD, Bollinger "
    "width, realized volatility) at fast and slow windows and calls the direction.",
    "direction",
    series_space(NAME, ("fast", "slow", "all")),
    "OHLCV candles of each run symbol from the store; features of market.features at "
    "fast and slow windows",
    prefix="ta",
    eats=("store", "exchange", "timeframe", "symbols", "start_ms", "end_ms", "regime_rules"),
    build=per_symbol(NAME, technical_dataset),
    grid_datasets=one_per_symbol,
    live=LiveInput.CANDLES,
    live_dataset=technical_dataset,
)
