"""sentiment_scout: the daily Fear & Greed index and social streams, lagged one day."""

from __future__ import annotations

from collections.abc import Sequence

from agents.banks import SOCIAL_STREAMS, sentiment_dataset
from agents.dataset import Dataset
from agents.datasets import candles_of, need_file
from agents.sources import DataSources
from agents.specialties.base import LiveInput, Specialty, series_space
from market.sentiment import read_sentiment
from market.series import SeriesKey

NAME = "sentiment_scout"


def build(sources: DataSources) -> list[Dataset]:
    """One dataset: ``sentiment_symbol``'s candles beside the daily sentiment."""
    symbol = sources.sentiment_symbol
    fear_greed = read_sentiment(need_file(sources.fear_greed, NAME, "fear_greed"))
    social = None
    if sources.social_sentiment is not None:
        path = need_file(sources.social_sentiment, NAME, "social_sentiment")
        social = {stream: read_sentiment(path, label=stream) for stream in SOCIAL_STREAMS}
    key = sources.key(symbol)
    return [
        sentiment_dataset(
            candles_of(sources, symbol, NAME),
            fear_greed,
            name=f"{key.file_stem}_sentiment",
            timeframe=sources.timeframe,
            social=social,
            rules=sources.regime_rules,
        )
    ]


def grid_datasets(
    exchange: str, timeframe: str, symbols: Sequence[str]
) -> list[tuple[str, list[str]]]:
    """The first symbol's sentiment dataset (the run's ``sentiment_symbol``)."""
    return [(f"{SeriesKey(exchange, symbols[0], timeframe).file_stem}_sentiment", [symbols[0]])]


SPECIALTY = Specialty(
    NAME,
    "Reads the crypto Fear & Greed index and the social sentiment streams, each lagged "
    "one day (a daily value is known only once its day ends), beside a few price features.",
    "direction",
    series_space(NAME, ("price", "sentiment", "all")),
    "BTC candles from the store, Fear & Greed (daily), social sentiment streams (daily)",
    prefix="ss",
    eats=(
        "store",
        "exchange",
        "timeframe",
        "sentiment_symbol",
        "start_ms",
        "end_ms",
        "fear_greed",
        "social_sentiment",
        "regime_rules",
    ),
    build=build,
    grid_datasets=grid_datasets,
    live=LiveInput.DAILY_SENTIMENT,
)
