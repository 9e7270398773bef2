"""whale_watcher: large prints in public trades, bucketed into 5m flow bars."""

from __future__ import annotations

from agents.banks import whale_dataset
from agents.dataset import Dataset
from agents.datasets import need_file
from agents.flow import read_trades
from agents.sources import DataSources
from agents.specialties.base import LiveInput, Specialty, series_space

NAME = "whale_watcher"


def build(sources: DataSources) -> list[Dataset]:
    """One dataset per trades file, in ``trades_timeframe`` bars."""
    if not sources.trades:
        raise FileNotFoundError(f"{NAME}: DataSources.trades names no trades file")
    out = []
    for path in sources.trades:
        trades = read_trades(need_file(path, NAME, "trades"))
        stem = path.name.split(".", 1)[0]
        out.append(
            whale_dataset(
                trades,
                name=f"{stem}_{sources.trades_timeframe}",
                timeframe=sources.trades_timeframe,
                spec=sources.flow,
                rules=sources.regime_rules,
            )
        )
    return out


SPECIALTY = Specialty(
    NAME,
    "Watches large prints: share of volume from trades above a trailing size quantile, "
    "their buy/sell imbalance and count per bar, plus the flow of all trades.",
    "direction",
    # 5m bars of a few days of trades (~1.5k bars): an hour of lookback and horizon.
    series_space(NAME, ("flow", "price", "all"), lookback=12, horizon=12),
    "public trades files (timestamp,price,amount,side) turned into 5m candles and "
    "per-bar whale-flow features",
    prefix="ww",
    eats=("trades", "trades_timeframe", "flow", "regime_rules"),
    build=build,
    live=LiveInput.NONE,
    live_reason="needs the series' public trades (its 5m flow bars); /v1/predict carries candles",
)
