"""Hot swap under load on real Serve: a champion is promoted 5 times while a bot keeps predicting;
every swap is picked up without a restart and no request fails."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from serving.client import RedlineClient, RedlineError
from serving.ensemble import ensemble_version
from store.champions import ChampionStore
from store.records.champions import PromotionRecord, RegimeBestRecord
from store.training import TrainingStore
from tests.serving.conftest import (
    TOKEN,
    Served,
    candle_rows,
    open_store,
    run_redline,
    voting_champions,
    window_in_regime,
)

PROMOTIONS = 5


@pytest.fixture(scope="module")
def served(serve_port: int, champions_home: Path) -> Iterator[Served]:
    from ray import serve

    served = run_redline(serve_port, champions_home, "hotswap", reload_interval_s=0.2)
    yield served
    serve.delete(served.name)


def _challengers(home: Path) -> tuple[RegimeBestRecord, RegimeBestRecord]:
    """The champion of a voting (specialty, regime) and the same row with another trained child
    of its run: promoting them in turn swaps a real model for another real model."""
    champion = voting_champions(home)[0]
    with open_store(home) as store:
        agents = store.training.runs.agents(champion.run_id, specialty=champion.specialty)
    other = next(
        a
        for a in agents
        if a.agent_id != champion.agent_id and a.status == "OK" and a.checkpoint_path
    )
    rival = replace(
        champion,
        agent_id=other.agent_id,
        checkpoint_path=other.checkpoint_path,
        checkpoint_sha256=other.checkpoint_sha256,
        is_champion=False,
    )
    return champion, rival


def _promote(tstore: TrainingStore, candidate: RegimeBestRecord, incumbent: str) -> None:
    ChampionStore(tstore.database).promote(
        candidate,
        PromotionRecord(
            specialty=candidate.specialty,
            regime=candidate.regime,
            decision="PROMOTED",
            challenger=candidate.model,
            incumbent=incumbent,
            reason="hot-swap test",
            before={},
            after={},
            dsr=candidate.dsr,
            n_trials=1,
            margin=0.0,
        ),
    )


def test_five_promotions_under_steady_load_fail_no_request(served: Served) -> None:
    champion, rival = _challengers(served.home)
    rows = candle_rows(window_in_regime(served.home, champion.regime))
    stop = threading.Event()
    latencies: list[float] = []
    errors: list[str] = []
    versions: set[str] = set()

    def bot() -> None:
        with RedlineClient(served.url, token=TOKEN, timeout=60, retries=0) as client:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    answer = client.predict("BTC/USDT", candles=rows)
                except RedlineError as error:
                    errors.append(repr(error))
                else:
                    versions.add(answer.model_version)
                latencies.append(time.perf_counter() - started)

    with RedlineClient(served.url, token=TOKEN, timeout=60) as client:
        swaps_before = client.health().swaps
        load = threading.Thread(target=bot, daemon=True)
        load.start()
        try:
            with open_store(served.home) as store:
                tstore = store.training
                current = champion
                for step in range(PROMOTIONS):
                    # The two models in turn, each time with a new Sharpe: 5 distinct versions.
                    model = rival if step % 2 == 0 else champion
                    sharpe = (model.sharpe or 0.0) + 0.001 * (step + 1)
                    candidate = replace(model, is_champion=False, sharpe=sharpe)
                    _promote(tstore, candidate, current.model)
                    current = candidate
                    wanted = ensemble_version(store, served.home)
                    deadline = time.monotonic() + 60
                    while client.health().model_version != wanted:
                        assert time.monotonic() < deadline, f"swap {step + 1} not picked up"
                        time.sleep(0.05)
                    time.sleep(0.3)  # a few requests on each version
        finally:
            stop.set()
            load.join(timeout=60)
        health = client.health()

    assert errors == []
    assert health.swaps - swaps_before >= PROMOTIONS
    assert len(versions) >= PROMOTIONS  # requests were answered by every ensemble in turn
    assert len(latencies) > 20
    ordered = sorted(latencies)
    # No request waited for a load: the slowest stays within a small multiple of the median.
    assert ordered[-1] < max(20 * ordered[len(ordered) // 2], 2.0), ordered[-5:]
