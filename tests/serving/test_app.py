"""The Serve application over real HTTP on the shared Ray session: predict on real BTC candles,
the token, 422 naming the field, 413 for a large body, /healthz and /v1/models."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from market.regimes import regime_frame
from tests.serving.conftest import TOKEN, Served, candle_rows, run_redline
from tests.serving.trained import (
    Champions,
    champions_fixture,  # noqa: F401  (the session fixture `champions`)
    window_ending_in,
)
from tests.support.waiting import wait_for

MAX_BODY = 64 * 1024
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def served(serve_port: int, champions: Champions) -> Iterator[Served]:
    from ray import serve

    app = run_redline(serve_port, champions.home, "s1app", max_body_bytes=MAX_BODY)
    yield app
    serve.delete(app.name)


def post(served: Served, path: str, body: object, **headers: str) -> httpx.Response:
    return httpx.post(f"{served.url}{path}", json=body, headers={**AUTH, **headers}, timeout=60)


def test_predict_on_real_btc_candles(served: Served, champions: Champions) -> None:
    candles = window_ending_in(champions, champions.busiest())
    answer = post(served, "/v1/predict", {"symbol": "BTC/USDT", "timeframe": "1h",
                                          "candles": candle_rows(candles)})  # fmt: skip
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = regime_frame(candles, "1h").iloc[-1]
    assert body["regime"]["name"] == expected["regime"]
    assert sorted(m["specialty"] for m in body["members"]) == sorted(
        champions.regimes[expected["regime"]]
    )
    assert all(m["vote"] in (-1, 0, 1) for m in body["members"])
    assert body["signal"]["direction"] in (-1, 0, 1) and len(body["request_id"]) == 32
    assert body["as_of"] == int(candles["ts"].iloc[-1])
    models = httpx.get(f"{served.url}/v1/models", headers=AUTH, timeout=30).json()
    assert body["model_version"] == models["model_version"]


def test_predict_without_candles_reads_the_stores_latest(served: Served) -> None:
    answer = post(served, "/v1/predict", {"symbol": "btc-usdt", "timeframe": "1h"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["symbol"] == "BTC/USDT"
    missing = post(served, "/v1/predict", {"symbol": "DOGE/USDT", "timeframe": "1h"})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "candles"]


def test_every_route_but_healthz_needs_the_token(served: Served) -> None:
    assert httpx.get(f"{served.url}/healthz", timeout=30).status_code == 200
    body = {"symbol": "BTC/USDT"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        answer = httpx.post(f"{served.url}/v1/predict", json=body, headers=headers, timeout=30)
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    for path in ("/v1/models", "/openapi.json"):
        assert httpx.get(f"{served.url}{path}", timeout=30).status_code == 401
        assert httpx.get(f"{served.url}{path}", headers=AUTH, timeout=30).status_code == 200


def test_a_candle_with_high_below_low_is_422_naming_the_field(
    served: Served, champions: Champions
) -> None:
    rows = candle_rows(champions.candles.iloc[-300:])
    rows[7][2], rows[7][3] = rows[7][3] - 1.0, rows[7][3]  # high below low
    answer = post(served, "/v1/predict", {"symbol": "BTC/USDT", "candles": rows})
    assert answer.status_code == 422
    error = answer.json()["detail"][0]
    assert error["loc"] == ["body", "candles"]
    assert "candles[7]: high" in error["msg"] and "is below low" in error["msg"]

    bad_timeframe = post(served, "/v1/predict", {"symbol": "BTC/USDT", "timeframe": "7m"})
    assert bad_timeframe.status_code == 422
    assert bad_timeframe.json()["detail"][0]["loc"] == ["body", "timeframe"]

    late = [[2**53, 10.0, 11.0, 9.0, 10.0, 1.0]]
    answer = post(served, "/v1/predict", {"symbol": "BTC/USDT", "candles": late})
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "candles", 0, 0]
    assert error["msg"] == "Input should be less than 9007199254740992"


def test_a_body_that_is_not_json_is_422_not_a_crash(served: Served) -> None:
    answer = httpx.post(f"{served.url}/v1/predict", content=b"\x80{not json",
                        headers={**AUTH, "content-type": "application/json"}, timeout=30)  # fmt: skip
    assert answer.status_code == 422
    error = answer.json()["detail"][0]
    assert error["type"] == "json_invalid" and error["loc"][0] == "body"


def test_an_oversized_body_is_refused_with_413(served: Served, champions: Champions) -> None:
    rows = candle_rows(champions.candles.iloc[-3000:])  # ~200 kB of JSON, over 64 kB
    answer = post(served, "/v1/predict", {"symbol": "BTC/USDT", "candles": rows})
    assert answer.status_code == 413
    # Without a Content-Length (chunked) the limit holds too.
    payload = httpx.Request("POST", "/", json={"symbol": "BTC/USDT", "candles": rows}).content

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(payload), 16384):
            yield payload[start : start + 16384]

    chunked = httpx.post(f"{served.url}/v1/predict", content=chunks(),
                         headers={**AUTH, "Content-Type": "application/json"}, timeout=60)  # fmt: skip
    assert chunked.status_code == 413


def test_healthz_and_models(served: Served, champions: Champions) -> None:
    health = httpx.get(f"{served.url}/healthz", timeout=30).json()
    models = httpx.get(f"{served.url}/v1/models", headers=AUTH, timeout=30).json()
    assert health["status"] == "ok" and health["model_version"] == models["model_version"]
    for regime, found in champions.regimes.items():
        live = models["regimes"][regime]["members"]
        assert sorted(m["specialty"] for m in live) == sorted(found)
    assert models["rugpull"]["agent_id"] == "rp-serving"


def test_predictions_per_regime_reach_the_ray_metrics_endpoint(
    served: Served, champions: Champions
) -> None:
    """``redline_predictions`` {regime} is counted in the replica, pushed every reload interval
    and exported by Ray's metrics agent (what the dashboard's Grafana panels read)."""
    import ray

    candles = window_ending_in(champions, champions.busiest())
    body = {"symbol": "BTC/USDT", "timeframe": "1h", "candles": candle_rows(candles)}
    regimes = {post(served, "/v1/predict", body).json()["regime"]["name"] for _ in range(3)}
    [regime] = regimes
    port = ray._private.worker.global_worker.node.metrics_export_port

    def counted() -> float | None:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith("ray_redline_predictions_total")
                  and f'regime="{regime}"' in line]  # fmt: skip
        return sum(values) if values and sum(values) >= 3 else None

    assert wait_for("redline_predictions in Ray's metrics", counted, timeout=90, every=2) >= 3
