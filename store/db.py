"""The store: one :class:`store.database.Database` and the topic repositories built on it.

``Store.open(url, home=)`` opens (and migrates) the database and hands it to each repository:

- ``store.candles``: candles, ingestion cursors and known gaps (:class:`CandleStore`);
- ``store.regimes``: the regime definitions (:class:`RegimeStore`);
- ``store.runs``: evolution runs and their population (:class:`RunStore`);
- ``store.champions``: the best model per (specialty, regime), the champions and the promotions
  log (:class:`ChampionStore`, the one writer of ``regime_best_models``);
- ``store.training``: Tune's trained configs, their backtests and the queue (:class:`TrainingStore`);
- ``store.trades``: served predictions, reported trades and their attribution (:class:`TradesStore`);
- ``store.rugpulls``: the rug-pull detector's served answers and the tokens' outcomes
  (:class:`RugpullStore`);
- ``store.live``: the living loop's watch list, schedules, events, answers, vote labels and
  champions' re-validations (:class:`LiveStore`).

The repositories share the database's transactions and clock; each uses only the database's public
API and its own tables, and asks another repository (never its private members) for the rest.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from store.candles import CandleStore
from store.champions import ChampionStore
from store.database import Clock, Database, utcnow
from store.live import LiveStore
from store.regimes import RegimeStore
from store.rugpulls import RugpullStore
from store.runs import RunStore
from store.trades import TradesStore
from store.training import TrainingStore

__all__ = ["Store"]


class Store:
    """The repositories of one database. Build it with :meth:`Store.open`."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.candles = CandleStore(database)
        self.regimes = RegimeStore(database)
        self.champions = ChampionStore(database)
        self.runs = RunStore(database, champions=self.champions)
        self.training = TrainingStore(database, runs=self.runs)
        self.trades = TradesStore(database)
        self.rugpulls = RugpullStore(database)
        self.live = LiveStore(database)

    @classmethod
    def open(
        cls, url: str | None = None, home: Path | None = None, *, clock: Clock = utcnow
    ) -> Store:
        """``Database.open`` (migrated to the newest schema) with every repository on it."""
        return cls(Database.open(url, home, clock=clock))

    @property
    def url(self) -> str:
        """The database's full URL, password included: for handing to actors, never printing."""
        return self.database.url

    @property
    def url_for_display(self) -> str:
        """The database's URL with its password masked."""
        return self.database.url_for_display

    def close(self) -> None:
        """Close the database; the store must not be used afterwards."""
        self.database.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url_for_display!r})"
