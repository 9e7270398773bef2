"""Predict and feedback on real Serve: real BTC candles, real champions, trades attributed to the
members that voted (tables and playgrounds), and the 401/404/422 answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serving.client import RedlineClient, RedlineHTTPError
from serving.ensemble import ensemble_version
from serving.schemas import PredictResponse
from store.paths import DataRoot
from tests.serving.conftest import (
    TOKEN,
    Served,
    btc_candles,
    candle_rows,
    open_store,
    run_redline,
    voting_champions,
    window_in_regime,
)
from tests.support.waiting import wait_for

FEE = 0.001  # 10 bps per side


@pytest.fixture(scope="module")
def served(serve_port: int, champions_home: Path) -> Iterator[Served]:
    from ray import serve

    assert voting_champions(champions_home), "the smoke evolution crowned no voting champion"
    served = run_redline(serve_port, champions_home, "feedback")
    yield served
    serve.delete(served.name)


@pytest.fixture
def client(served: Served) -> Iterator[RedlineClient]:
    with RedlineClient(served.url, token=TOKEN, timeout=60) as opened:
        yield opened


def _regime(served: Served) -> str:
    return sorted({row.regime for row in voting_champions(served.home)})[0]


def _predict(client: RedlineClient, served: Served, back: int = 0) -> tuple[PredictResponse, int]:
    window = window_in_regime(served.home, _regime(served), back=back)
    return client.predict("BTC/USDT", candles=candle_rows(window)), int(window["ts"].iloc[-1])


def test_predict_on_real_candles_answers_the_regime_and_the_champions_votes(
    served: Served, client: RedlineClient
) -> None:
    answer, last_ts = _predict(client, served)
    regime = _regime(served)
    assert answer.regime.name == regime and answer.as_of == last_ts
    assert answer.regime.confidence is not None and 0.0 <= answer.regime.confidence <= 1.0
    champions = {
        (row.run_id, row.agent_id) for row in voting_champions(served.home) if row.regime == regime
    }
    assert answer.members and {(m.run_id, m.agent_id) for m in answer.members} <= champions
    assert all(m.regime == regime and m.vote in (-1, 0, 1) for m in answer.members)
    with open_store(served.home) as store:
        assert answer.model_version == ensemble_version(store, served.home)
        # Written by the replica's writer just after the answer left (serving.writer).
        remembered = wait_for("the prediction's row",
                              lambda: store.trades.prediction(answer.request_id), 10)  # fmt: skip
    assert remembered.model_version == answer.model_version
    assert [m.agent_id for m in remembered.members] == [m.agent_id for m in answer.members]
    assert client.health().model_version == answer.model_version


def test_bad_requests_answer_401_and_422_naming_the_field(served: Served) -> None:
    window = candle_rows(window_in_regime(served.home, _regime(served)))
    body = {"symbol": "BTC/USDT", "candles": window}
    assert httpx.post(f"{served.url}/v1/predict", json=body, timeout=60).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert httpx.get(f"{served.url}/v1/models", headers=wrong, timeout=60).status_code == 401
    assert httpx.get(f"{served.url}/healthz", timeout=60).status_code == 200  # open

    bad = [list(row) for row in window]
    bad[3][2], bad[3][3] = bad[3][3] - 1.0, bad[3][3]  # high below low
    with RedlineClient(served.url, token=TOKEN, timeout=60) as client:
        with pytest.raises(RedlineHTTPError) as caught:
            client.predict("BTC/USDT", candles=bad)
        assert caught.value.status_code == 422
        (error,) = caught.value.detail
        assert error["loc"][:2] == ["body", "candles"] and "candles[3]: high" in error["msg"]
        with pytest.raises(RedlineHTTPError) as caught:
            client._call("POST", "/v1/predict", PredictResponse, {"symbol": "BTC/USDT", "x": 1})
        assert caught.value.status_code == 422 and caught.value.detail[0]["loc"] == ["body", "x"]


def test_feedback_lands_in_trades_and_moves_the_members_performance(
    served: Served, client: RedlineClient
) -> None:
    answer, last_ts = _predict(client, served, back=1)
    candles = btc_candles(served.home).set_index("ts")
    entry = float(candles.loc[last_ts, "close"])
    exit_ts = last_ts + 24 * 3_600_000
    exit_ = float(candles.loc[exit_ts, "close"])
    side = "short" if answer.signal.direction < 0 else "long"
    qty = 0.01
    pnl = (exit_ - entry) * qty * (1 if side == "long" else -1)
    trade = {
        "request_id": answer.request_id,
        "model_version": answer.model_version,
        "symbol": "BTC/USDT",
        "side": side,
        "entry_ts": last_ts,
        "exit_ts": exit_ts,
        "entry_price": entry,
        "exit_price": exit_,
        "pnl": pnl,
        "fees": FEE * qty * (entry + exit_),
        "qty": qty,
    }
    root = DataRoot(served.home)
    before = {m.agent_id: _live(root, m.agent_id) for m in answer.members}

    reply = client.feedback(**trade)
    assert not reply.duplicate
    net = trade["pnl"] - trade["fees"]
    direction = 1 if side == "long" else -1
    expected = {
        m.agent_id: (
            (m.vote * direction == 1 and net > 0)
            or (m.vote * direction == -1 and net < 0)
            or (m.vote == 0 and net <= 0),
            pytest.approx(m.weight * net * m.vote * direction),
        )
        for m in answer.members
    }
    assert {
        a.agent_id: (a.was_correct, a.profit_contribution) for a in reply.attributed
    } == expected

    with open_store(served.home) as store:
        trades = store.trades
        stored = trades.trade(answer.request_id)
        assert stored is not None and stored.id == reply.trade_id and stored.side == side
        rows = trades.attributions(trade_id=reply.trade_id)
    assert sorted(r.agent_id for r in rows) == sorted(m.agent_id for m in answer.members)
    for member in answer.members:
        live = _live(root, member.agent_id)
        old = before[member.agent_id]
        assert live["trades"] == old["trades"] + 1
        assert live["correct"] == old["correct"] + int(expected[member.agent_id][0])

    # A bot retrying the same report changes nothing; a report on no prediction is a 404.
    again = client.feedback(**trade)
    assert again.duplicate and again.trade_id == reply.trade_id
    assert all(_live(root, m.agent_id)["trades"] == before[m.agent_id]["trades"] + 1
               for m in answer.members)  # fmt: skip
    with pytest.raises(RedlineHTTPError) as caught:
        client.feedback(**{**trade, "request_id": "0" * 32})
    assert caught.value.status_code == 404
    with pytest.raises(RedlineHTTPError) as caught:
        client.feedback(**{**trade, "side": "long" if side == "short" else "short"})
    assert caught.value.status_code == 409


def _live(root: DataRoot, agent_id: str) -> dict[str, float]:
    path = root.playground(agent_id) / "performance.json"
    if not path.exists():
        return {"trades": 0, "correct": 0}
    return dict(json.loads(path.read_text()).get("live", {"trades": 0, "correct": 0}))
