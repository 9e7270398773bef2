"""A run's data spec: where its inputs come from (``DataSources``), as the datasets are built from
it and as a run stores it (``to_json``) and Serve reads it back (``from_config``).

Below the specialty registry and the dataset builders (they import it; it imports neither), so
``agents.specialties`` can check a plug-in's ``eats`` against these fields at registration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import market
from agents.flow import FlowSpec
from agents.spec import plain
from market.regimes import RegimeRules
from market.series import SeriesKey, normalize_symbol
from market.timeframes import timeframe_ms
from store.db import Store

#: The shipped sample (``market/sample``): candles, the fear & greed file, rug-pull tokens.
SAMPLE_DIR = Path(market.__file__).resolve().parent / "sample"


@dataclass(frozen=True)
class DataSources:
    """Where a run's inputs come from.

    Candles: ``store`` holds them for ``exchange``/``timeframe``/``symbols``, optionally cut to
    ``start_ms <= ts < end_ms`` (the shipped sample, imported with ``store.ingest.ensure_sample``,
    holds binance BTC/ETH/SOL 1h). ``sentiment_symbol`` is the series the sentiment scout reads
    (BTC: the social streams are about bitcoin). Files: ``fear_greed`` (default: the shipped sample's),
    ``social_sentiment`` (optional), ``trades`` (one whale_watcher dataset each, bucketed into
    ``trades_timeframe`` bars), ``rugpull_tokens``. A specialty whose file is not there raises
    FileNotFoundError naming the specialty and the path.
    """

    store: Store
    exchange: str = "binance"
    timeframe: str = "1h"
    symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
    start_ms: int | None = None
    end_ms: int | None = None
    sentiment_symbol: str = "BTC/USDT"
    fear_greed: Path | None = SAMPLE_DIR / "feargreed_crypto_1d.csv.gz"
    social_sentiment: Path | None = None
    trades: tuple[Path, ...] = ()
    trades_timeframe: str = "5m"
    rugpull_tokens: Path | None = None
    regime_rules: RegimeRules = field(default_factory=RegimeRules)
    flow: FlowSpec = field(default_factory=FlowSpec)

    def __post_init__(self) -> None:
        if isinstance(self.symbols, str) or not self.symbols:
            raise ValueError(f"symbols must be a non-empty tuple of symbols; got {self.symbols!r}")
        object.__setattr__(self, "symbols", tuple(normalize_symbol(s) for s in self.symbols))
        object.__setattr__(self, "sentiment_symbol", normalize_symbol(self.sentiment_symbol))
        timeframe_ms(self.timeframe)
        timeframe_ms(self.trades_timeframe)
        for name in ("fear_greed", "social_sentiment", "rugpull_tokens"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))
        object.__setattr__(self, "trades", tuple(Path(p) for p in self.trades))

    def key(self, symbol: str) -> SeriesKey:
        return SeriesKey(self.exchange, symbol, self.timeframe)

    def to_json(self) -> dict[str, Any]:
        """The data spec: every field but the store, as plain JSON values (regime rules and flow
        as their fields); what ``agents.spec.spec_hash`` hashes for a run's data."""
        out: dict[str, Any] = {}
        for item in fields(self):
            if item.name != "store":
                out[item.name] = plain(_json_value(getattr(self, item.name)), item.name)
        return out

    @classmethod
    def from_config(
        cls,
        store: Store,
        data: Mapping[str, Any],
        rules: RegimeRules,
        *,
        where: str = "data",
    ) -> DataSources:
        """The sources of a config's ``data`` section (evolve's or a trial config's): exchange,
        timeframe, symbols, start and end (dates or ms, parsed naming ``<where>.start``), the
        side files it names; the sentiment scout reads the first symbol. ``rules`` label the bars."""
        from market.when import parse_when

        def ms(name: str) -> int | None:
            value = data.get(name)
            return None if value is None else parse_when(str(value), f"{where}.{name}")

        files = {
            name: data[name]
            for name in ("fear_greed", "social_sentiment", "trades", "rugpull_tokens")
            if name in data
        }
        if not data.get("symbols"):
            raise ValueError(f"{where}.symbols: a data spec names at least one symbol; got none")
        return cls(
            store=store,
            # An older run's data may leave them out: the defaults it was built with.
            exchange=str(data.get("exchange", cls.exchange)),
            timeframe=str(data.get("timeframe", cls.timeframe)),
            symbols=tuple(data["symbols"]),
            start_ms=ms("start"),
            end_ms=ms("end"),
            sentiment_symbol=data["symbols"][0],
            regime_rules=rules,
            **files,
        )


def _json_value(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value
