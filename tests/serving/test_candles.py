"""``/v1/predict``'s candles get ``data import``'s validation (``market.validation``): the grid, the
order and the ``validation.*`` plausibility limits, each refusal a 422 naming ``candles[i]``, the
field and the value. Real BTC candles pass; the rows import would refuse are refused here too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from pydantic import ValidationError

from market.series import CANDLE_COLUMNS
from market.validation import CandleValidationError, validate_candles
from serving.schemas import PredictRequest
from tests.serving.conftest import TOKEN, Served, candle_rows, run_redline
from tests.serving.trained import (
    Champions,
    champions_fixture,  # noqa: F401  (the session fixture `champions`)
    window_ending_in,
)

HOUR = 3_600_000
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def real_rows(shared_data: Path) -> list[list[float]]:
    """The last 500 real BTC/USDT 1h candles (to 2024-03-31 23:00 UTC), as a bot sends them."""
    frame = pd.read_csv(shared_data / "binance_BTC-USDT_1h.csv.gz").tail(500)
    return [[int(row[0]), *map(float, row[1:])] for row in frame.itertuples(index=False)]


def _refusal(candles: list[list[float]], timeframe: str = "1h") -> str:
    with pytest.raises(ValidationError) as caught:
        PredictRequest.model_validate(
            {"symbol": "BTC/USDT", "timeframe": timeframe, "candles": candles}
        )
    (error,) = caught.value.errors()
    assert error["loc"] == ("candles",)
    return str(error["msg"])


def _alternating(rows: list[list[float]]) -> list[list[float]]:
    return [[row[0], *([1e308 if k % 2 else 1e-300] * 4), row[5]] for k, row in enumerate(rows)]


def _one_ms_apart(rows: list[list[float]]) -> list[list[float]]:
    return [[rows[0][0] + k, *row[1:]] for k, row in enumerate(rows)]


def test_real_candles_pass(real_rows: list[list[float]], shared_data: Path) -> None:
    request = PredictRequest.model_validate({"symbol": "BTC/USDT", "candles": real_rows})
    assert len(request.candles or []) == 500
    quarter = pd.read_csv(shared_data / "binance_BTC-USDT_15m.csv.gz").tail(400)
    rows = [[int(r[0]), *map(float, r[1:])] for r in quarter.itertuples(index=False)]
    assert PredictRequest.model_validate(
        {"symbol": "BTC/USDT", "timeframe": "15m", "candles": rows}
    ).candles


def test_prices_alternating_1e308_and_1e_300_are_refused(real_rows: list[list[float]]) -> None:
    message = _refusal(_alternating(real_rows[:6]))
    assert message == (
        "Value error, candles[0]: open 1e-300 is outside the plausible price range [1e-12, 1e+12] "
        "(validation.min_price, validation.max_price); candles[0]: high 1e-300 is outside the "
        "plausible price range [1e-12, 1e+12] (validation.min_price, validation.max_price); "
        "candles[0]: low 1e-300 is outside the plausible price range [1e-12, 1e+12] "
        "(validation.min_price, validation.max_price) (and 21 more problems)"
    )


def test_candles_1_ms_apart_are_refused(real_rows: list[list[float]]) -> None:
    message = _refusal(_one_ms_apart(real_rows[:3]))
    assert message == (
        "Value error, candles[1]: ts 1710129600001 (2024-03-11 04:00:00.001 UTC) is not on the 1h "
        "grid (1710129600001 % 3600000 = 1); candles[2]: ts 1710129600002 (2024-03-11 "
        "04:00:00.002 UTC) is not on the 1h grid (1710129600002 % 3600000 = 2)"
    )


def test_candles_off_the_timeframes_grid_are_refused(real_rows: list[list[float]]) -> None:
    shifted = [[row[0] + 15 * 60_000, *row[1:]] for row in real_rows[:2]]
    assert _refusal(shifted).startswith(
        "Value error, candles[0]: ts 1710130500000 (2024-03-11 04:15:00 UTC) is not on the 1h "
        "grid (1710130500000 % 3600000 = 900000); candles[1]: "
    )
    # Hourly candles sent as 4h: every other one is off the 4h grid.
    assert "is not on the 4h grid" in _refusal(real_rows[:8], timeframe="4h")


def test_a_spike_names_the_candle_and_the_one_it_is_judged_against(
    real_rows: list[list[float]],
) -> None:
    rows = [list(row) for row in real_rows[:30]]
    rows[17][1:5] = [price * 40 for price in rows[17][1:5]]
    message = _refusal(rows)
    assert message.startswith("Value error, candles[17]: close ")
    assert "candles[16]'s close" in message and "validation.max_bar_move 10" in message


def test_the_api_says_what_import_says(real_rows: list[list[float]]) -> None:
    """Same rules, same words: import's messages with ``row N`` read as ``candles[N]``."""
    for bad in (_alternating(real_rows[:2]), _one_ms_apart(real_rows[:4])):
        frame = pd.DataFrame(bad, columns=list(CANDLE_COLUMNS))
        with pytest.raises(CandleValidationError) as imported:
            validate_candles(frame, "1h")
        first = imported.value.problems[0]
        assert f"candles[{first.row}]: {first.detail}" in _refusal(bad)


# -- over real HTTP ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(serve_port: int, champions: Champions) -> Iterator[Served]:
    from ray import serve

    app = run_redline(serve_port, champions.home, "candles")
    yield app
    serve.delete(app.name)


def test_predict_answers_422_for_what_import_refuses(served: Served, champions: Champions) -> None:
    good = candle_rows(window_ending_in(champions, champions.busiest()))

    def predict(candles: list[list[float]]) -> httpx.Response:
        body = {"symbol": "BTC/USDT", "timeframe": "1h", "candles": candles}
        return httpx.post(f"{served.url}/v1/predict", json=body, headers=AUTH, timeout=60)

    assert predict(good).status_code == 200
    cases = [
        (_alternating(good), "candles[0]: open 1e-300 is outside the plausible price range"),
        (_one_ms_apart(good), "candles[1]: ts "),
        ([[row[0] + 1800_000, *row[1:]] for row in good], "is not on the 1h grid"),
    ]
    for candles, expected in cases:
        answer = predict(candles)
        assert answer.status_code == 422, answer.text
        (error,) = answer.json()["detail"]
        assert error["loc"] == ["body", "candles"]
        assert expected in error["msg"]
