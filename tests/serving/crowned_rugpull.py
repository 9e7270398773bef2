"""A rug-pull detector crowned by the project's default classifier rules, for the serving tests
that need one (a session fixture: import ``crowned_fixture`` into a test module).

A real evolution on the real Uniswap V2 tokens of ../shared/data (``classifier_scenario``: 1,000
tokens held out, drawn at random, that no child saw), its best child crowned by
``configs/defaults.yaml``'s ``champions.classifier`` rules. A test that changes the store (the
outcomes reported move the champion's stage) works on a copy (:func:`copy_crowned`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from cluster.config import load_config
from evolution.crowning import consider_evolution_run
from store.db import Store
from store.records.champions import ALL_REGIMES, RegimeBestRecord
from tests.evolution import classifier_scenario

HELD_OUT = 1000


@dataclass(frozen=True)
class Crowned:
    home: Path
    champion: RegimeBestRecord
    reason: str
    held_out: pd.DataFrame


@pytest.fixture(scope="session", name="crowned")
def crowned_fixture(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Crowned:
    home = tmp_path_factory.mktemp("rugpull-served") / "redline_data"
    home.mkdir()
    tokens = shared_data / "rugpull_uniswapv2_tokens.csv.gz"
    classifier_scenario.run(home, tokens, HELD_OUT)  # the Mother in-process (it never uses Ray)
    with Store.open(f"sqlite:///{home / 'redline.db'}", home=home) as store:
        policy = load_config().champions.to_policy()  # the project's default rules
        (decision,) = consider_evolution_run(store, classifier_scenario.RUN_ID, policy, "1h")
        champion = store.champions.champion("rugpull_detector", ALL_REGIMES)
    assert decision.decision == "PROMOTED", decision.reason
    assert champion is not None
    _, held = classifier_scenario.split_tokens(pd.read_csv(tokens), HELD_OUT)
    return Crowned(home, champion, decision.reason, held)


def copy_crowned(crowned: Crowned, home: Path) -> Path:
    """The crowned store copied into ``home`` (the checkpoints stay where they are: the rows
    name them by absolute path), for a test that changes it."""
    home.mkdir(parents=True)
    with sqlite3.connect(crowned.home / "redline.db") as source, \
            sqlite3.connect(home / "redline.db") as copy:  # fmt: skip
        source.backup(copy)
    return home
