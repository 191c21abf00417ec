"""schemathesis against the running gateway's own OpenAPI document (``GET /openapi.json``).

The gateway and the patient, orders, results and audit services run as real processes against
the session's servers, trusting the real Keycloak (`running_gateway_platform`). Every operation
of the live document is called with generated requests, valid ones and ones that break the
schema, once with a clinician's Keycloak token and once without a token. The contract:

- no answer is a 5xx (``not_a_server_error``);
- every answer's status is one the document lists, its content type is the documented one and
  its body fits the documented schema (``status_code_conformance``,
  ``content_type_conformance``, ``response_schema_conformance``);
- a request that breaks the schema is refused with a 4xx (``negative_data_rejection``).

Bounded for CI: a few examples per operation and mode, derandomized (the same requests each run).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.gateway_platform import GatewayPlatform, keycloak_gateway_platform
from clinical_testing.keycloak import Keycloak
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.schemas import APIOperation

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]  # fmt: skip
EXAMPLES = {GenerationMode.POSITIVE: 6, GenerationMode.NEGATIVE: 4}
UNAUTHENTICATED_EXAMPLES = 2
CALL_TIMEOUT_S = 30


@pytest.fixture(scope="module")
async def stack(
    servers: ServerEndpoints, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[GatewayPlatform, Keycloak]]:
    async with keycloak_gateway_platform(
        servers, tmp_path_factory.mktemp("openapi-platform")
    ) as up:
        yield up


def exercise(operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode, examples: int,
             headers: dict[str, str], failures: list[str]) -> None:  # fmt: skip
    """``examples`` generated calls of ``operation``; each failed check is one line."""
    checks = [*CHECKS, negative_data_rejection] if mode is GenerationMode.NEGATIVE else CHECKS

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def call(case: Case[Any]) -> None:
        try:
            response = case.call(headers=headers, timeout=CALL_TIMEOUT_S)
            case.validate_response(response, checks=checks, headers=headers)
        except Exception as failed:
            who = "token" if headers else "no token"
            failures.append(f"{operation.label} [{mode.value}, {who}]: {_first_lines(failed)}")

    try:
        call()
    except Unsatisfiable:
        # Negative mode on an operation that takes nothing: there is nothing to break.
        assert mode is GenerationMode.NEGATIVE, operation.label


def _first_lines(failed: Exception, lines: int = 6) -> str:
    return " | ".join(str(failed).strip().splitlines()[:lines])


async def test_every_operation_conforms_and_no_answer_is_a_server_error(
    stack: tuple[GatewayPlatform, Keycloak], tmp_path: Path
) -> None:
    gateway, keycloak = stack
    schema = schemathesis.openapi.from_url(f"{gateway.base_url}/openapi.json")
    token = keycloak.user_token("clinician-no-otp", "user/*.cruds")
    bearer = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) > 30  # the JSON API's and the FHIR API's, all described
    for operation in operations:
        for mode, examples in EXAMPLES.items():
            exercise(operation, mode, examples, bearer, failures)
        exercise(operation, GenerationMode.POSITIVE, UNAUTHENTICATED_EXAMPLES, {}, failures)
    report = tmp_path / "failures.txt"
    report.write_text("\n".join(failures))
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:40])
