"""Schemathesis against the running application's ``/openapi.json`` on real Serve: every
operation, with generated valid and invalid requests, answers as its schema says: never a 5xx,
only the status codes the document lists, and bodies, content types and headers that conform
to the schema of their status (schemathesis' response-conformance checks); invalid requests
are refused.

The schema is loaded from the live application (``schemathesis.openapi.from_url``) and each
operation's strategies (``as_strategy``, positive and negative generation) drive Hypothesis
directly: ``schemathesis.pytest.from_fixture`` does not run on this pytest (9).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.serving.conftest import TOKEN, Served, run_redline

AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 30
CONFORMANCE = [not_a_server_error, status_code_conformance, content_type_conformance,
               response_headers_conformance, response_schema_conformance]  # fmt: skip


@pytest.fixture(scope="module")
def served(serve_port: int, champions_home: Path) -> Iterator[Served]:
    from ray import serve

    served = run_redline(serve_port, champions_home, "schema")
    yield served
    serve.delete(served.name)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_as_its_schema_says(served: Served, mode: GenerationMode) -> None:
    api = schemathesis.openapi.from_url(f"{served.url}/openapi.json", headers=AUTH, timeout=60)
    seen: dict[str, set[int]] = {}
    for result in api.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        if mode is GenerationMode.NEGATIVE and operation.method.upper() == "GET":
            continue  # no parameters, no body: nothing invalid to generate
        checks = [*CONFORMANCE, negative_data_rejection] if mode is GenerationMode.NEGATIVE else (
            CONFORMANCE)  # fmt: skip
        _fuzz(served.url, label, operation.as_strategy(generation_mode=mode), seen, checks)
    assert {"POST /v1/predict", "POST /v1/feedback", "POST /v1/rugpull"} <= set(seen)
    assert all(statuses for statuses in seen.values()), seen


def _fuzz(
    base_url: str, label: str, strategy: Any, seen: dict[str, set[int]], checks: list[Any]
) -> None:
    statuses = seen.setdefault(label, set())

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=strategy)
    def conforms(case: Any) -> None:
        response = case.call(base_url=base_url, headers=AUTH, timeout=60)
        statuses.add(response.status_code)
        # 413 (a generated body over max_body_bytes) refuses invalid data too; the check's
        # default list of refusals lacks it.
        run = [c for c in checks if c is not negative_data_rejection or response.status_code != 413]
        case.validate_response(response, checks=run, headers=AUTH)

    conforms()
