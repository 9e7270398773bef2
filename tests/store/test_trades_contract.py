"""The TradesStore contract (predictions, trades, attributions, the champions' live stage) on SQLite
and PostgreSQL.

The trades are real: entries and exits at the closes of Binance BTC/USDT 1h candles (January 2020),
pnl from the price move, fees 10 bps of each side's notional.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from store.champions import ChampionStore
from store.db import Store
from store.errors import NotFoundError
from store.models import Prediction, Trade, TradeAttribution
from store.records.champions import PromotionRecord, RegimeBestRecord
from store.records.trades import AttributionRecord, PredictionMember, PredictionRecord, TradeRecord
from store.runs import RunStore
from store.trades import FeedbackConflictError, TradesStore
from tests.store.conftest import BTC_1H, FEB_2020, JAN_2020, real_candles
from tests.store.rows import Clock, clocked, count_rows
from tests.store.test_runs_contract import _run

VERSION = "3f9a1c2b7d4e"
REGIME = "bull_trending"
MEMBERS = (
    PredictionMember("evo-20240401-a", "ta-g002-003", "technical_analyst", REGIME, 2, 1, 0.6),
    PredictionMember("evo-20240401-a", "vh-g001-000", "volume_hunter", REGIME, 1, -1, 0.3),
    PredictionMember("tune-5f1c0f0b8e7d", "tr-5f1c0f0b8e7d", "volume_hunter", REGIME, 0, 0, 0.1),
)


@pytest.fixture
def trades(store: Store, clock: Clock) -> TradesStore:
    return clocked(store, clock).trades


def _trade(request_id: str, side: str = "long", start: int = 100, hours: int = 24) -> TradeRecord:
    candles = real_candles(BTC_1H, JAN_2020, FEB_2020)
    entry, exit_ = candles.iloc[start], candles.iloc[start + hours]
    qty = 0.05
    move = (float(exit_["close"]) - float(entry["close"])) * qty
    fees = 0.001 * qty * (float(entry["close"]) + float(exit_["close"]))
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
        fees=fees,
        qty=qty,
    )


def _by_sign(prediction: PredictionRecord, trade: TradeRecord) -> list[AttributionRecord]:
    """A simple rule for the store's tests (serving.feedback has the real one)."""
    assert trade.id is not None
    win = trade.net_pnl > 0
    return [
        AttributionRecord(
            trade_id=trade.id,
            run_id=m.run_id,
            agent_id=m.agent_id,
            specialty=m.specialty,
            regime=m.regime,
            vote=m.vote,
            weight=m.weight,
            was_correct=(m.vote * trade.direction > 0) == win,
            profit_contribution=m.weight * trade.net_pnl * m.vote * trade.direction,
        )
        for m in prediction.members
    ]


# -- predictions -----------------------------------------------------------------------------------


def test_a_prediction_is_remembered_once(trades: TradesStore, store: Store, clock: Clock) -> None:
    stored = trades.record_prediction("req-1", VERSION, MEMBERS, regime=REGIME)
    assert stored == PredictionRecord("req-1", VERSION, REGIME, MEMBERS, clock.now)
    assert trades.prediction("req-1") == stored
    assert trades.prediction("req-unknown") is None

    clock.tick()
    # Written again (a retried write) it changes nothing, not even created_at.
    assert trades.record_prediction("req-1", VERSION, MEMBERS, regime=REGIME) == stored
    assert count_rows(store, Prediction) == 1
    with pytest.raises(ValueError, match=r"request_id 'req-1' already names another prediction"):
        trades.record_prediction("req-1", VERSION, MEMBERS[:1], regime=REGIME)

    # Members as the response's mappings: the regime defaults to the live one.
    as_dicts = [{k: v for k, v in m.to_dict().items() if k != "regime"} for m in MEMBERS]
    assert trades.record_prediction("req-2", VERSION, as_dicts, regime=REGIME).members == MEMBERS
    # No live regime, nobody voted: remembered too (feedback on it attributes to nobody).
    assert trades.record_prediction("req-3", VERSION, []).regime == "unknown"


def test_a_batch_of_predictions_is_one_write(
    trades: TradesStore, store: Store, clock: Clock
) -> None:
    as_dicts = [{k: v for k, v in m.to_dict().items() if k != "regime"} for m in MEMBERS]
    stored = trades.record_predictions(
        [("req-1", VERSION, MEMBERS, REGIME), ("req-2", VERSION, as_dicts, REGIME),
         ("req-3", VERSION, [], "")]
    )  # fmt: skip
    assert stored == [
        PredictionRecord("req-1", VERSION, REGIME, MEMBERS, clock.now),
        PredictionRecord("req-2", VERSION, REGIME, MEMBERS, clock.now),
        PredictionRecord("req-3", VERSION, "unknown", (), clock.now),
    ]
    assert [trades.prediction(f"req-{i}") for i in (1, 2, 3)] == stored
    assert trades.record_predictions([]) == []
    clock.tick()
    # Written again it changes nothing; one conflicting row refuses the whole batch.
    assert trades.record_predictions([("req-1", VERSION, MEMBERS, REGIME)]) == stored[:1]
    with pytest.raises(ValueError, match=r"request_id 'req-2' already names another prediction"):
        trades.record_predictions(
            [("req-4", VERSION, MEMBERS, REGIME), ("req-2", VERSION, MEMBERS[:1], REGIME)]
        )
    assert trades.prediction("req-4") is None
    assert count_rows(store, Prediction) == 3


def test_appended_predictions_read_back_as_recorded_ones_and_refuse_a_reused_id(
    trades: TradesStore, store: Store, clock: Clock
) -> None:
    trades.append_predictions([("req-1", VERSION, MEMBERS, REGIME), ("req-2", VERSION, [], "")])
    assert trades.prediction("req-1") == PredictionRecord("req-1", VERSION, REGIME, MEMBERS,
                                                          clock.now)  # fmt: skip
    assert trades.prediction("req-2") == PredictionRecord(
        "req-2", VERSION, "unknown", (), clock.now
    )
    trades.append_predictions([])
    with pytest.raises(IntegrityError):
        trades.append_predictions([("req-3", VERSION, [], ""), ("req-1", VERSION, [], "")])
    assert trades.prediction("req-3") is None
    assert count_rows(store, Prediction) == 2
    with pytest.raises(ValueError, match=r"PredictionMember.vote must be -1, 0 or 1; got 2"):
        trades.append_predictions([("req-4", VERSION, [replace_dict(MEMBERS[0], vote=2)], REGIME)])


def test_predictions_remember_the_series_they_read(trades: TradesStore, clock: Clock) -> None:
    as_of = int(real_candles(BTC_1H, JAN_2020, FEB_2020)["ts"].iloc[-1])
    trades.append_predictions([("req-1", VERSION, MEMBERS, REGIME, "binance", "BTC/USDT", "1h",
                                as_of)])  # fmt: skip
    assert trades.prediction("req-1") == PredictionRecord(
        "req-1", VERSION, REGIME, MEMBERS, clock.now, exchange="binance", symbol="BTC/USDT",
        timeframe="1h", as_of=as_of,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"PredictionRecord.as_of must be a non-negative integer"):
        trades.append_predictions([("req-2", VERSION, [], "", "binance", "BTC/USDT", "1h", -1)])


def test_bad_members_name_the_field(trades: TradesStore) -> None:
    with pytest.raises(ValueError, match=r"PredictionMember.vote must be -1, 0 or 1; got 2"):
        trades.record_prediction("req-1", VERSION, [replace_dict(MEMBERS[0], vote=2)])
    with pytest.raises(ValueError, match=r"PredictionMember.weight must be a finite number >= 0"):
        trades.record_prediction("req-1", VERSION, [replace_dict(MEMBERS[0], weight=float("nan"))])
    with pytest.raises(ValueError, match=r"a member needs run_id, agent_id"):
        trades.record_prediction("req-1", VERSION, [{"agent_id": "ta-g002-003"}], regime=REGIME)
    assert trades.prediction("req-1") is None


def replace_dict(member: PredictionMember, **changes: Any) -> dict[str, Any]:
    return member.to_dict() | changes


# -- trades ----------------------------------------------------------------------------------------


def test_trade_records_check_their_fields() -> None:
    good = _trade("req-1")
    with pytest.raises(ValueError, match=r"TradeRecord.side must be one of long, short; got 'buy'"):
        replace(good, side="buy")
    with pytest.raises(ValueError, match=r"TradeRecord.exit_ts must not be before entry_ts"):
        replace(good, exit_ts=good.entry_ts - 3_600_000)
    with pytest.raises(ValueError, match=r"TradeRecord.entry_price must be a finite number > 0"):
        replace(good, entry_price=0.0)
    with pytest.raises(ValueError, match=r"TradeRecord.fees must be a finite number >= 0"):
        replace(good, fees=-1.0)
    with pytest.raises(ValueError, match=r"TradeRecord.pnl must be a finite number; got inf"):
        replace(good, pnl=float("inf"))


def test_feedback_is_stored_with_its_attribution_once(
    trades: TradesStore, store: Store, clock: Clock
) -> None:
    trades.record_prediction("req-1", VERSION, MEMBERS, regime=REGIME)
    trade = _trade("req-1")
    first = trades.record_feedback(trade, _by_sign)
    assert not first.duplicate and first.trade.id is not None
    assert first.trade == replace(trade, id=first.trade.id, created_at=clock.now)
    assert first.prediction.members == MEMBERS
    assert [(a.agent_id, a.vote) for a in first.attributions] == [
        (m.agent_id, m.vote) for m in MEMBERS
    ]
    assert trades.attributions(trade_id=first.trade.id) == list(first.attributions)
    assert trades.trade("req-1") == first.trade and trades.trades() == [first.trade]

    # The bot retries: nothing new, the stored answer.
    clock.tick()
    again = trades.record_feedback(trade, _by_sign)
    assert again.duplicate and again.trade == first.trade
    assert again.attributions == first.attributions
    assert (count_rows(store, Trade), count_rows(store, TradeAttribution)) == (1, 3)

    # Another trade on the same prediction is refused, and changes nothing.
    with pytest.raises(FeedbackConflictError, match=r"request_id 'req-1' already has another"):
        trades.record_feedback(_trade("req-1", side="short"), _by_sign)
    assert trades.trades() == [first.trade]


def test_feedback_needs_the_prediction_it_acted_on(trades: TradesStore, store: Store) -> None:
    with pytest.raises(NotFoundError, match=r"request_id 'req-9' is not a prediction"):
        trades.record_feedback(_trade("req-9"), _by_sign)
    trades.record_prediction("req-1", VERSION, MEMBERS, regime=REGIME)
    with pytest.raises(ValueError, match=r"model_version must be the one request 'req-1' was"):
        trades.record_feedback(replace(_trade("req-1"), model_version="0000aaaa"), _by_sign)
    assert count_rows(store, Trade) == 0


def test_a_failing_attribution_leaves_no_trade(trades: TradesStore, store: Store) -> None:
    trades.record_prediction("req-1", VERSION, MEMBERS, regime=REGIME)

    def broken(prediction: PredictionRecord, trade: TradeRecord) -> list[AttributionRecord]:
        rows = _by_sign(prediction, trade)
        return [*rows, replace(rows[0], trade_id=int(trade.id or 0) + 1)]

    with pytest.raises(ValueError, match=r"attribute must give rows of trade"):
        trades.record_feedback(_trade("req-1"), broken)
    assert (count_rows(store, Trade), count_rows(store, TradeAttribution)) == (0, 0)
    # The report can then be made for real.
    assert not trades.record_feedback(_trade("req-1"), _by_sign).duplicate


def test_attributions_by_member_and_regime(trades: TradesStore) -> None:
    for index, (side, start) in enumerate([("long", 10), ("short", 200), ("long", 400)]):
        request = f"req-{index}"
        regime = REGIME if index < 2 else "calm_ranging"
        members = [replace(m, regime=regime) for m in MEMBERS]
        trades.record_prediction(request, VERSION, members, regime=regime)
        trades.record_feedback(_trade(request, side, start), _by_sign)
    member = MEMBERS[0]
    mine = trades.attributions(run_id=member.run_id, agent_id=member.agent_id)
    assert [a.trade_id for a in mine] == sorted(a.trade_id for a in mine) and len(mine) == 3
    in_bull = trades.attributions(run_id=member.run_id, agent_id=member.agent_id, regime=REGIME)
    assert len(in_bull) == 2
    assert {t.side for t in trades.trades(symbol="BTC/USDT")} == {"long", "short"}
    assert trades.trades(exchange="kraken") == []


def test_concurrent_reports_of_one_trade_store_it_once(store: Store) -> None:
    trades = store.trades
    trades.record_prediction("req-1", VERSION, MEMBERS, regime=REGIME)
    barrier = threading.Barrier(4)
    results: list[bool] = []
    errors: list[BaseException] = []

    def report() -> None:
        barrier.wait(timeout=30)
        try:
            results.append(trades.record_feedback(_trade("req-1"), _by_sign).duplicate)
        except BaseException as error:  # reported to the test, which fails with it
            errors.append(error)

    workers = [threading.Thread(target=report) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []
    assert sorted(results) == [False, True, True, True]
    assert (count_rows(store, Trade), count_rows(store, TradeAttribution)) == (1, 3)


# -- the champions' live stage ---------------------------------------------------------------------


def test_set_champion_stage_moves_only_the_current_champion(
    trades: TradesStore, clock: Clock
) -> None:
    RunStore(trades.database).create_run(_run())
    member = MEMBERS[0]
    row = RegimeBestRecord(
        run_id=member.run_id,
        specialty=member.specialty,
        regime=REGIME,
        agent_id=member.agent_id,
        sharpe=1.4,
    )
    promotion = PromotionRecord(
        specialty=member.specialty,
        regime=REGIME,
        decision="PROMOTED",
        challenger=row.model,
        incumbent=None,
        reason="promoted: DSR 0.97 >= 0.95",
        before={},
        after={"sharpe": 1.4},
        dsr=0.97,
        n_trials=12,
        margin=0.25,
    )
    ChampionStore(trades.database).promote(row, promotion)
    clock.tick()
    assert ChampionStore(trades.database).set_stage(
        member.run_id, member.agent_id, member.specialty, REGIME, "MATURE"
    )
    champion = ChampionStore(trades.database).champion(member.specialty, REGIME)
    assert champion is not None and (champion.stage, champion.updated_at) == ("MATURE", clock.now)
    # Unchanged, or another model, or another regime: nothing moves.
    assert not ChampionStore(trades.database).set_stage(
        member.run_id, member.agent_id, member.specialty, REGIME, "MATURE"
    )
    assert not ChampionStore(trades.database).set_stage(
        member.run_id, "ta-g000-001", member.specialty, REGIME, "DECAY"
    )
    assert not ChampionStore(trades.database).set_stage(
        member.run_id, member.agent_id, member.specialty, "calm_ranging", "DECAY"
    )
    with pytest.raises(ValueError, match=r"stage must be one of DISCOVERY, .*; got 'GONE'"):
        ChampionStore(trades.database).set_stage(
            member.run_id, member.agent_id, member.specialty, REGIME, "GONE"
        )
