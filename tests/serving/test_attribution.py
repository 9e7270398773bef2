"""The feedback attribution without Ray: the rule, the members' live records in their playgrounds
and the champions' lifecycle, on SQLite with real BTC/USDT 1h prices (January 2020)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from evolution.champions import ChampionPolicy
from serving.feedback import apply_feedback, attribute, live_performance
from store.champions import ChampionStore
from store.db import Store
from store.errors import NotFoundError
from store.paths import DataRoot
from store.records.champions import PromotionRecord, RegimeBestRecord
from store.records.trades import PredictionMember, PredictionRecord, TradeRecord
from store.runs import RunStore
from store.trades import TradesStore
from tests.store.conftest import BTC_1H, FEB_2020, JAN_2020, real_candles
from tests.store.test_runs_contract import _run

VERSION = "3f9a1c2b7d4e"
REGIME = "bull_trending"
RUN = "evo-20240401-a"
LONG, SHORT, FLAT = (
    PredictionMember(RUN, "ta-g002-003", "technical_analyst", REGIME, 2, 1, 0.5),
    PredictionMember(RUN, "vh-g001-000", "volume_hunter", REGIME, 1, -1, 0.3),
    PredictionMember(RUN, "ta-g001-004", "technical_analyst", REGIME, 1, 0, 0.2),
)


def _trade(request_id: str, side: str, start: int, hours: int = 24) -> TradeRecord:
    candles = real_candles(BTC_1H, JAN_2020, FEB_2020)
    entry, exit_ = candles.iloc[start], candles.iloc[start + hours]
    qty = 0.1
    move = (float(exit_["close"]) - float(entry["close"])) * qty
    return TradeRecord(
        request_id=request_id,
        model_version=VERSION,
        exchange="binance",
        symbol="BTC/USDT",
        side=side,
        entry_ts=int(entry["ts"]),
        exit_ts=int(exit_["ts"]),
        entry_price=float(entry["close"]),
        exit_price=float(exit_["close"]),
        pnl=move if side == "long" else -move,
        fees=0.001 * qty * (float(entry["close"]) + float(exit_["close"])),
        qty=qty,
    )


def _winning_start(side: str, skip: int = 0) -> int:
    """A start hour whose 24-hour trade on ``side`` made money net of fees (the ``skip``-th)."""
    found = [s for s in range(0, 600, 7) if _trade("x", side, s).net_pnl > 0]
    return found[skip]


@pytest.fixture
def trades(tmp_path: Path) -> TradesStore:
    return Store.open(f"sqlite:///{tmp_path / 'redline.db'}", home=tmp_path).trades


def test_the_rule_on_a_winner_and_a_loser() -> None:
    prediction = PredictionRecord("req-1", VERSION, REGIME, (LONG, SHORT, FLAT))
    win = replace(_trade("req-1", "long", _winning_start("long")), id=7)
    net = win.net_pnl
    rows = attribute(prediction, win)
    assert [(r.trade_id, r.agent_id, r.was_correct) for r in rows] == [
        (7, LONG.agent_id, True),
        (7, SHORT.agent_id, False),
        (7, FLAT.agent_id, False),  # sitting out a winner was wrong
    ]
    assert [r.profit_contribution for r in rows] == pytest.approx([0.5 * net, -0.3 * net, 0.0])
    # The same call shorted, on a rising market: a loser; the short voter and the flat one were right.
    loss = replace(win, side="short", pnl=-win.pnl)
    assert loss.net_pnl < 0
    assert [r.was_correct for r in attribute(prediction, loss)] == [True, False, True]
    assert [r.profit_contribution for r in attribute(prediction, loss)] == pytest.approx(
        [-0.5 * loss.net_pnl, 0.3 * loss.net_pnl, 0.0]
    )
    with pytest.raises(ValueError, match=r"attribute needs a stored trade"):
        attribute(prediction, replace(win, id=None))


def test_feedback_updates_playgrounds_and_moves_the_champion(
    trades: TradesStore, tmp_path: Path
) -> None:
    RunStore(trades.database).create_run(_run(RUN))
    champion = RegimeBestRecord(RUN, LONG.specialty, REGIME, LONG.agent_id, sharpe=1.2)
    ChampionStore(trades.database).promote(
        champion,
        PromotionRecord(LONG.specialty, REGIME, "PROMOTED", champion.model, None, "test", {}, {},
                        0.97, 10, 0.25),
    )  # fmt: skip
    root = DataRoot(tmp_path)
    root.playground(LONG.agent_id).mkdir(parents=True)
    (root.playground(LONG.agent_id) / "performance.json").write_text(
        json.dumps({"agent_id": LONG.agent_id, "metrics": {"sharpe": 1.2}})
    )
    policy = ChampionPolicy(min_live_trades=2)

    for step in range(2):
        request = f"req-{step}"
        trades.record_prediction(request, VERSION, [LONG, SHORT, FLAT], regime=REGIME)
        trade = _trade(request, "long", _winning_start("long", step))
        outcome = apply_feedback(Store(trades.database), trade, home=tmp_path, policy=policy)
        assert not outcome.duplicate and len(outcome.attributions) == 3
        stage = ChampionStore(trades.database).champion(LONG.specialty, REGIME).stage  # type: ignore[union-attr]
        assert stage == ("PAPER" if step == 0 else "MATURE")  # 2 live trades, all correct

    performance = json.loads((root.playground(LONG.agent_id) / "performance.json").read_text())
    assert performance["metrics"] == {"sharpe": 1.2}  # the training record is kept
    assert performance["live"]["trades"] == 2 and performance["live"]["hit_rate"] == 1.0
    mine = trades.attributions(run_id=RUN, agent_id=LONG.agent_id)
    assert performance["live"]["cumulative_profit"] == pytest.approx(
        sum(r.profit_contribution for r in mine)
    )
    assert live_performance(mine).trades == 2
    short = json.loads((root.playground(SHORT.agent_id) / "performance.json").read_text())
    assert short["live"] == {"trades": 2, "correct": 0, "hit_rate": 0.0,
                             "cumulative_profit": pytest.approx(
                                 sum(r.profit_contribution for r in trades.attributions(
                                     run_id=RUN, agent_id=SHORT.agent_id)))}  # fmt: skip

    # A replayed report changes nothing, not even the stage or the playground.
    again = apply_feedback(Store(trades.database), _trade("req-1", "long", _winning_start("long", 1)),
                           home=tmp_path, policy=policy)  # fmt: skip
    assert again.duplicate
    assert json.loads((root.playground(LONG.agent_id) / "performance.json").read_text()) == (
        performance
    )
    with pytest.raises(NotFoundError, match=r"request_id 'req-9' is not a prediction"):
        apply_feedback(Store(trades.database), _trade("req-9", "long", 0), home=tmp_path)
