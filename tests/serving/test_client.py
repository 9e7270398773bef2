"""RedlineClient against a real HTTP server on loopback that answers what the test scripts:
retries on 5xx and dropped connections with backoff, never on 4xx, typed results, the token."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from serving.client import RedlineClient, RedlineConnectionError, RedlineHTTPError
from serving.schemas import HealthResponse

HEALTHY = {"status": "ok", "store": "sqlite:////srv/redline_data/redline.db",
           "home": "/srv/redline_data", "champions": 3, "model_version": "3f9a1c2b7d4e",
           "swaps": 2}  # fmt: skip
UNHEALTHY = {**HEALTHY, "status": "unhealthy", "champions": 0,
             "reason": "the store sqlite:////srv/redline_data/redline.db has no champions"}  # fmt: skip


class Script:
    """The answers the server gives, in order (status, body, headers), and what it received."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, Any, dict[str, str]]] = []
        self.seen: list[tuple[str, str, str | None, Any]] = []
        self.drop = 0  # close this many connections without answering


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            script.seen.append((self.command, self.path, self.headers.get("Authorization"), body))
            if script.drop:
                script.drop -= 1
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            status, payload, headers = script.answers.pop(0)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()
    httpd.server_close()


def test_5xx_is_retried_with_backoff_and_the_result_is_typed(
    server: tuple[str, Script],
) -> None:
    url, script = server
    script.answers = [
        (503, {"detail": "busy"}, {"Retry-After": "1"}),
        (500, {}, {}),
        (200, HEALTHY, {}),
    ]
    slept: list[float] = []
    with RedlineClient(url, token="s3cret", backoff=0.1, sleep=slept.append) as client:
        health = client.health()
    assert health == HealthResponse(**HEALTHY)
    assert slept == [1.0, 0.2]  # Retry-After honoured, then 0.1 * 2**1
    assert [(m, p, auth) for m, p, auth, _ in script.seen] == [
        ("GET", "/healthz", "Bearer s3cret")
    ] * 3


def test_an_unhealthy_answer_is_returned_not_retried(server: tuple[str, Script]) -> None:
    """/healthz's own 503 is the service's health; Serve's 503 without it is retried."""
    url, script = server
    script.answers = [(503, {"detail": "no replica"}, {}), (503, UNHEALTHY, {})]
    slept: list[float] = []
    with RedlineClient(url, backoff=0.1, sleep=slept.append) as client:
        health = client.health()
    assert health == HealthResponse(**UNHEALTHY) and health.status == "unhealthy"
    assert slept == [0.1] and len(script.seen) == 2


def test_4xx_is_never_retried_and_names_the_field(server: tuple[str, Script]) -> None:
    url, script = server
    detail = [{"loc": ["body", "candles"], "msg": "candles[0]: high 9.5 is below low 10.0"}]
    script.answers = [(422, {"detail": detail}, {})]
    slept: list[float] = []
    with (
        RedlineClient(url, sleep=slept.append) as client,
        pytest.raises(
            RedlineHTTPError, match=r"POST /v1/predict answered 422: .*high 9.5 is below low 10.0"
        ) as caught,
    ):
        client.predict("BTC/USDT", candles=[[0, 10.0, 9.5, 10.0, 10.0, 1.0]])
    assert caught.value.status_code == 422 and caught.value.detail == detail
    assert slept == [] and len(script.seen) == 1
    assert script.seen[0][3] == {
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
        "candles": [[0, 10.0, 9.5, 10.0, 10.0, 1.0]],
    }


def test_the_last_5xx_is_raised_after_the_retries(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(502, {"detail": "bad gateway"}, {})] * 3
    slept: list[float] = []
    client = RedlineClient(url, retries=2, backoff=1.0, max_backoff=1.5, sleep=slept.append)
    with client, pytest.raises(RedlineHTTPError, match=r"GET /v1/models answered 502: bad"):
        client.models()
    assert slept == [1.0, 1.5] and len(script.seen) == 3


def test_dropped_connections_are_retried(server: tuple[str, Script]) -> None:
    url, script = server
    script.drop = 2
    script.answers = [(200, HEALTHY, {})]
    slept: list[float] = []
    with RedlineClient(url, sleep=slept.append) as client:
        assert client.health().model_version == "3f9a1c2b7d4e"
    assert len(slept) == 2 and len(script.seen) == 3


def test_no_server_is_a_connection_error_after_the_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("REDLINE_SERVE_TOKEN", "from-env")
    slept: list[float] = []
    client = RedlineClient(f"http://127.0.0.1:{port}", retries=1, sleep=slept.append)
    assert client._http.headers["Authorization"] == "Bearer from-env"
    with client, pytest.raises(RedlineConnectionError, match=r"GET /healthz: no answer after 2"):
        client.health()
    assert slept == [0.2]


def test_bad_arguments_name_themselves() -> None:
    with pytest.raises(ValueError, match=r"retries must be an integer >= 0; got -1"):
        RedlineClient(retries=-1)
    with pytest.raises(ValueError, match=r"timeout must be a number >= 0; got 'x'"):
        RedlineClient(timeout="x")  # type: ignore[arg-type]
