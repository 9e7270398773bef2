"""What every command shares: the config and the store, opened once per invocation."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cluster.config import RedlineConfig, data_home, load_config
from market.regimes import RegimeRules
from store.db import Store


@dataclass
class CliState:
    config_path: Path | None = None
    _config: RedlineConfig | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)

    @property
    def config(self) -> RedlineConfig:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def home(self) -> Path:
        return data_home(self.config)


def open_store(state: CliState) -> Store:
    """The store for this invocation (created and migrated on first use)."""
    if state._store is None:
        state.home.mkdir(parents=True, exist_ok=True)
        state._store = Store.open(home=state.home)  # REDLINE_DATABASE_URL wins when set
        # The table follows the config this invocation loaded (the rules' one home); a run keeps
        # the rules it was judged under in its own row whatever the table says later.
        if _table_rules(state._store) != state.config.regimes:
            state._store.regimes.sync_regime_definitions(state.config.regimes)
    return state._store


def _table_rules(store: Store) -> RegimeRules | None:
    try:
        return store.regimes.regime_rules()
    except ValueError:  # a table edited into an invalid state: the sync repairs it
        return None


def make_console(stderr: bool = False) -> Console:
    """A rich console; when output is not a terminal (make, CI, pipes) tables get 120 columns."""
    console = Console(stderr=stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, width=120)
    return console


def status_progress(console: Console) -> Progress:
    """The bars of long commands (evolve, queue start): a description, the bar, done/total, a
    ``status`` field each task updates, and the time elapsed."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
    )


def num(value: float | None, spec: str = "+.3f") -> str:
    """A table cell: ``value`` formatted, or ``-`` when missing or not finite."""
    return "-" if value is None or not math.isfinite(value) else format(value, spec)
