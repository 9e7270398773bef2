"""Hardening of the Serve application over real HTTP, on real champions and real BTC candles:
non-finite numbers and out-of-range integers answer 422 naming the field (never a 500 the client
would retry), feedback is checked against its prediction, every status is in the OpenAPI
document, and ``/healthz`` says which store it reads and fails on an empty one."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving.conftest import TOKEN, Served, candle_rows, run_redline
from tests.serving.trained import (
    Champions,
    champions_fixture,  # noqa: F401  (the session fixture `champions`)
    copy_home,
    sqlite_url,
    window_ending_in,
)
from tests.support.waiting import wait_for

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def served(serve_port: int, champions: Champions) -> Iterator[Served]:
    from ray import serve

    app = run_redline(serve_port, champions.home, "hardening")
    yield app
    serve.delete(app.name)


def post_text(served: Served, path: str, text: str) -> httpx.Response:
    """POST ``text`` as it is: JSON with ``NaN``, ``Infinity`` or ``1e309`` in it (what a bot's
    lenient encoder writes; httpx's own refuses to)."""
    return httpx.post(f"{served.url}{path}", content=text.encode(), headers=AUTH, timeout=60)


def refused(answer: httpx.Response) -> dict[str, Any]:
    """The one error of a 422 answer."""
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    return dict(error)


def predict_body(champions: Champions) -> dict[str, Any]:
    candles = window_ending_in(champions, champions.busiest())
    return {"symbol": "BTC/USDT", "timeframe": "1h", "candles": candle_rows(candles)}


def predicted(served: Served, champions: Champions) -> tuple[dict[str, Any], dict[str, Any]]:
    """A real prediction and a trade a bot could make on it (entered at its last close)."""
    body = predict_body(champions)
    answer = httpx.post(f"{served.url}/v1/predict", json=body, headers=AUTH, timeout=60)
    assert answer.status_code == 200, answer.text
    prediction = answer.json()
    last = body["candles"][-1]
    trade = {
        "request_id": prediction["request_id"], "model_version": prediction["model_version"],
        "symbol": "BTC/USDT", "side": "long", "entry_ts": last[0], "exit_ts": last[0] + 3_600_000,
        "entry_price": last[4], "exit_price": last[4] * 1.01, "pnl": last[4] * 0.0001,
        "fees": last[4] * 0.000002, "qty": 0.01,
    }  # fmt: skip
    return prediction, trade


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e309"])
def test_non_finite_numbers_answer_422_naming_the_field(
    served: Served, champions: Champions, literal: str
) -> None:
    body = predict_body(champions)
    body["candles"][3][1] = "@"
    error = refused(post_text(served, "/v1/predict", json.dumps(body).replace('"@"', literal)))
    assert error["loc"] == ["body", "candles", 3, 1]
    assert error["msg"] == "Input should be a finite number"
    assert error["input"] == ("-Infinity" if literal == "-Infinity" else
                              "NaN" if literal == "NaN" else "Infinity")  # fmt: skip

    error = refused(post_text(served, "/v1/rugpull", '{"features": {"lp_avg": ' + literal + "}}"))
    assert error["loc"] == ["body", "features", "lp_avg"]
    assert error["msg"] == "Input should be a finite number"

    _, trade = predicted(served, champions)
    text = json.dumps({**trade, "pnl": "@"}).replace('"@"', literal)
    error = refused(post_text(served, "/v1/feedback", text))
    assert error["loc"] == ["body", "pnl"] and error["msg"] == "Input should be a finite number"


def test_text_utf8_cannot_encode_answers_422_naming_the_field(
    served: Served, champions: Champions
) -> None:
    """A lone surrogate escaped in the JSON (schemathesis found it in a request id) reached
    SQLite, and echoed in a 422 it made Starlette fail to encode the answer: both were 500s."""
    _, trade = predicted(served, champions)
    text = json.dumps({**trade, "request_id": "@"}).replace('"@"', '"\\ud874x"')
    error = refused(post_text(served, "/v1/feedback", text))
    assert error["loc"] == ["body", "request_id"] and error["type"] == "string_unicode"
    assert error["input"] == "\\ud874x"
    error = refused(post_text(served, "/v1/rugpull", '{"features": {"\\ud874": 1.0}}'))
    assert error["loc"][:2] == ["body", "features"] and error["loc"][3] == "[key]"
    assert error["type"] == "string_unicode"


def test_booleans_and_strings_are_not_numbers(served: Served, champions: Champions) -> None:
    """Schemathesis found ``false`` taken as 0.0 (pydantic's lax mode): the schema says number."""
    _, trade = predicted(served, champions)
    answer = httpx.post(f"{served.url}/v1/feedback", json={**trade, "pnl": False, "entry_ts":
                        str(trade["entry_ts"])}, headers=AUTH, timeout=60)  # fmt: skip
    assert answer.status_code == 422, answer.text
    assert [(e["loc"], e["type"]) for e in answer.json()["detail"]] == [
        (["body", "entry_ts"], "int_type"),
        (["body", "pnl"], "float_type"),
    ]
    error = refused(post_text(served, "/v1/rugpull", '{"features": {"lp_avg": false}}'))
    assert (error["loc"], error["type"]) == (["body", "features", "lp_avg"], "float_type")
    body = predict_body(champions)
    body["candles"][5][0] = float(body["candles"][5][0])
    error = refused(post_text(served, "/v1/predict", json.dumps(body)))
    assert (error["loc"], error["type"]) == (["body", "candles", 5, 0], "int_type")


def test_out_of_range_integers_answer_422_naming_the_field(
    served: Served, champions: Champions
) -> None:
    """A feedback entry_ts of 2**63 used to reach SQLite (OverflowError: a 500)."""
    _, trade = predicted(served, champions)
    for value in (2**63, 2**64, 2**53):
        text = json.dumps({**trade, "entry_ts": value, "exit_ts": value})
        answer = post_text(served, "/v1/feedback", text)
        assert answer.status_code == 422, answer.text
        assert [(e["loc"], e["msg"]) for e in answer.json()["detail"]] == [
            (["body", field], "Input should be less than 9007199254740992")
            for field in ("entry_ts", "exit_ts")
        ]
    error = refused(post_text(served, "/v1/feedback", json.dumps({**trade, "entry_ts": -1})))
    assert error["loc"] == ["body", "entry_ts"]
    assert error["msg"] == "Input should be greater than or equal to 0"
    body = predict_body(champions)
    body["candles"][-1][0] = 2**63
    error = refused(post_text(served, "/v1/predict", json.dumps(body)))
    assert error["loc"] == ["body", "candles", len(body["candles"]) - 1, 0]
    assert error["msg"] == "Input should be less than 9007199254740992"


def test_feedback_is_checked_against_its_prediction(served: Served, champions: Champions) -> None:
    prediction, trade = predicted(served, champions)
    request = prediction["request_id"]
    as_of = prediction["as_of"]
    wrong = {
        "symbol": ("ETH/USDT", f"symbol must be the one request '{request}' predicted "
                   "('BTC/USDT'); got 'ETH/USDT'"),
        "exchange": ("kraken", f"exchange must be the one request '{request}' predicted "
                     "('binance'); got 'kraken'"),
        "entry_ts": (0, "entry_ts must not be before the open of the last candle request "
                     f"'{request}' read (as_of {as_of}, "),
    }  # fmt: skip
    for field, (value, message) in wrong.items():
        answer = httpx.post(f"{served.url}/v1/feedback", json={**trade, field: value},
                            headers=AUTH, timeout=60)  # fmt: skip
        error = refused(answer)
        assert error["loc"] == ["body", field] and error["msg"].startswith(message), error
    assert "got 0 (1970-01-01 00:00 UTC)" in error["msg"]
    with champions.store() as store:
        assert store.trades.trade(request) is None  # nothing stored
    answer = httpx.post(f"{served.url}/v1/feedback", json=trade, headers=AUTH, timeout=60)
    assert answer.status_code == 200, answer.text


def test_amounts_that_would_overflow_are_refused_at_their_field(
    served: Served, champions: Champions
) -> None:
    """pnl -1e308 with fees 1e308 made a non-finite net that was blamed on model_version."""
    _, trade = predicted(served, champions)
    answer = httpx.post(f"{served.url}/v1/feedback", json={**trade, "pnl": -1e308, "fees": 1e308},
                        headers=AUTH, timeout=60)  # fmt: skip
    assert answer.status_code == 422
    errors = {tuple(e["loc"]): e["msg"] for e in answer.json()["detail"]}
    assert errors == {
        ("body", "pnl"): "Input should be greater than or equal to -1000000000000000000",
        ("body", "fees"): "Input should be less than or equal to 1000000000000000000",
    }
    answer = httpx.post(f"{served.url}/v1/feedback", json={**trade, "model_version": "other"},
                        headers=AUTH, timeout=60)  # fmt: skip
    assert refused(answer)["loc"] == ["body", "model_version"]


def test_the_openapi_document_names_every_status_and_the_symbol_rule(served: Served) -> None:
    document = httpx.get(f"{served.url}/openapi.json", headers=AUTH, timeout=60).json()
    statuses = {
        (method.upper(), path): sorted(operation["responses"])
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    assert statuses == {
        ("POST", "/v1/predict"): ["200", "401", "413", "422"],
        ("POST", "/v1/rugpull"): ["200", "400", "401", "413", "422"],
        ("POST", "/v1/rugpull/feedback"): ["200", "400", "401", "404", "409", "413", "422"],
        ("POST", "/v1/feedback"): ["200", "400", "401", "404", "409", "413", "422"],
        ("GET", "/v1/models"): ["200", "401"],
        ("GET", "/healthz"): ["200", "503"],
    }
    predict = document["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    pattern = predict["application/json"]["schema"]["properties"]["symbol"]["pattern"]
    assert pattern == r"^[A-Za-z0-9]{1,20}[-_/][A-Za-z0-9]{1,20}$"
    error = refused(httpx.post(f"{served.url}/v1/predict", json={"symbol": "000"}, headers=AUTH,
                               timeout=60))  # fmt: skip
    assert error["loc"] == ["body", "symbol"] and error["type"] == "string_pattern_mismatch"


def test_healthz_names_the_store_and_the_champions_loaded(
    served: Served, champions: Champions
) -> None:
    answer = httpx.get(f"{served.url}/healthz", timeout=30)
    assert answer.status_code == 200
    health = answer.json()
    models = httpx.get(f"{served.url}/v1/models", headers=AUTH, timeout=30).json()
    loaded = sum(len(r["members"]) for r in models["regimes"].values()) + 1  # + rug pull
    assert health == {
        "status": "ok", "store": sqlite_url(champions.home), "home": str(champions.home),
        "champions": loaded, "model_version": models["model_version"], "swaps": 0,
        "reason": None,
    }  # fmt: skip


def test_health_of_a_store_that_cannot_be_read_names_the_cause(
    champions: Champions, tmp_path: Path
) -> None:
    from serving.app import health
    from serving.ensemble import Ensemble
    from store.db import Store

    home = copy_home(champions, tmp_path / "redline_data")
    with Store.open(sqlite_url(home), home=home) as store:
        ensemble = Ensemble.load(store, home)
        healthy = health(store, home, ensemble)
        assert (healthy.status, healthy.reason) == ("ok", None) and healthy.champions > 0
        with sqlite3.connect(home / "redline.db") as db:  # e.g. another application's database
            db.execute("DROP TABLE regime_best_models")
        found = health(store, home, ensemble, swaps=2)
    assert (found.status, found.champions, found.swaps) == ("unhealthy", healthy.champions, 2)
    assert found.reason == (
        f"the store {sqlite_url(home)} cannot be read: OperationalError: "
        "(sqlite3.OperationalError) no such table: regime_best_models"
    )


def test_a_deployment_on_an_empty_store_fails_naming_the_store(
    serve_port: int, tmp_path: Path
) -> None:
    """A wrong REDLINE_HOME used to serve "no validated champion" forever, looking healthy."""
    from ray import serve

    from serving.app import build_app
    from store.db import Store

    home = tmp_path / "redline_data"
    Store.open(sqlite_url(home), home=home).close()  # what a wrong REDLINE_HOME creates
    app = build_app(sqlite_url(home), home, token=TOKEN,
                    deployment={"ray_actor_options": {"num_cpus": 0},
                                "max_constructor_retry_count": 1})  # fmt: skip
    try:
        with pytest.raises(RuntimeError, match=r"Deploying application emptystore failed"):
            serve.run(app, name="emptystore", route_prefix="/emptystore")
        status = serve.status().applications["emptystore"]
        deployment = status.deployments["RedlineAPI"]
        assert (status.status, deployment.status) == ("DEPLOY_FAILED", "DEPLOY_FAILED")
        assert (
            f"RuntimeError: unhealthy: the store {sqlite_url(home)} has no champions: is "
            f"REDLINE_HOME ({home}) or REDLINE_DATABASE_URL the right one?"
        ) in deployment.message
    finally:
        serve.delete("emptystore")


def test_a_store_that_empties_answers_503_and_serve_sees_it(
    serve_port: int, champions: Champions, tmp_path: Path
) -> None:
    from ray import serve

    from serving.app import build_app

    home = copy_home(champions, tmp_path / "redline_data")
    app = build_app(sqlite_url(home), home, token=TOKEN, reload_interval_s=0.2,
                    deployment={"ray_actor_options": {"num_cpus": 0},
                                "health_check_period_s": 1, "health_check_timeout_s": 5})  # fmt: skip
    serve.run(app, name="empties", route_prefix="/empties")
    url = f"http://127.0.0.1:{serve_port}/empties/healthz"
    try:
        assert httpx.get(url, timeout=30).json()["champions"] > 0
        with sqlite3.connect(home / "redline.db") as db:
            db.execute("UPDATE regime_best_models SET is_champion = 0")

        def unhealthy() -> dict[str, Any] | None:
            answer = httpx.get(url, timeout=30)  # 503 at once, 0 loaded after the hot swap
            return answer.json() if answer.status_code == 503 and not answer.json()[
                "champions"] else None  # fmt: skip

        health = wait_for("/healthz to answer 503 with no champion", unhealthy, timeout=60)
        assert health["status"] == "unhealthy"
        assert health["store"] == sqlite_url(home)
        assert health["reason"].startswith(f"the store {sqlite_url(home)} has no champions")

        def serve_unhealthy() -> bool:
            deployment = serve.status().applications["empties"].deployments["RedlineAPI"]
            return deployment.status == "UNHEALTHY"

        wait_for("Serve to mark the deployment UNHEALTHY", serve_unhealthy, timeout=90)
    finally:
        serve.delete("empties")
