"""schemathesis against the running gateway's own OpenAPI document (``GET /openapi.json``).

The gateway and the patient, orders, results and audit services run as real processes against
the session's servers, trusting the real Keycloak (`running_gateway_platform`). Every operation
of the live document is called with generated requests, valid ones and ones that break the
schema, once with a clinician's Keycloak token and once without a token. The contract:

- no answer is a 5xx (``not_a_server_error``);
- every answer's status is one the document lists, its content type is the documented one and
  its body fits the documented schema (``status_code_conformance``,
  ``content_type_conformance``, ``response_schema_conformance``);
- a request that breaks the schema is refused with a 4xx (``negative_data_rejection``);
- the answers about a patient and an order made through the API (reads, searches, history,
  provenance, trail, a cancel) conform as well, success answers included.

Bounded for CI: a few examples per operation and mode, derandomized (the same requests each run).
"""

from __future__ import annotations

import asyncio
import secrets
import string
import uuid
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
NOT_YET = {404, 409, 422}  # a record the services have not yet learnt of


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


async def test_the_answers_about_real_records_conform_too(
    stack: tuple[GatewayPlatform, Keycloak],
) -> None:
    """Generated ids rarely name a record: here a patient and an order are made through the
    API, and every read of them (and their history, provenance and trail) is checked against
    the document, success answers included."""
    gateway, keycloak = stack
    schema = schemathesis.openapi.from_url(f"{gateway.base_url}/openapi.json")
    registrar = keycloak.user_token("registrar", "user/Patient.cruds")
    clinician = keycloak.user_token("clinician-no-otp", "user/*.cruds")
    auditor = keycloak.user_token("auditor", "user/*.rs")
    family = "Contract" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(8))
    created = await conforming(schema, "/fhir/r4/Patient", "POST", registrar, 201, body={
        "resourceType": "Patient", "name": [{"family": family, "given": ["Ada"]}],
        "gender": "female", "birthDate": "1984-03-09",
    }, media_type="application/fhir+json")  # fmt: skip
    patient_id = created["id"]
    order = await conforming(schema, "/api/v1/orders", "POST", clinician, 200, body={
        "request_id": str(uuid.uuid4()), "patient_id": patient_id, "test_code": "2345-7",
        "priority": "PRIORITY_ROUTINE",
        "reason_codes": [{"system": "CODE_SYSTEM_ICD10", "code": "E11.9"}],
    }, media_type="application/json")  # fmt: skip
    order_id = order["order_id"]
    reads = [
        ("/api/v1/patients/{patient_id}", registrar, {"patient_id": patient_id}, {}),
        ("/api/v1/patients", registrar, {}, {"family_name": family}),
        ("/api/v1/orders/{order_id}", clinician, {"order_id": order_id}, {}),
        ("/api/v1/orders", clinician, {}, {"patient_id": patient_id}),
        ("/fhir/r4/Patient/{id}", registrar, {"id": patient_id}, {}),
        ("/fhir/r4/Patient", registrar, {}, {"family": family}),
        ("/fhir/r4/Patient/{id}/_history", auditor, {"id": patient_id}, {}),
        ("/fhir/r4/ServiceRequest/{id}", clinician, {"id": order_id}, {}),
        ("/fhir/r4/ServiceRequest", clinician, {}, {"patient": f"Patient/{patient_id}"}),
        ("/fhir/r4/Provenance", auditor, {}, {"target": f"Patient/{patient_id}"}),
        ("/fhir/r4/AuditEvent", auditor, {}, {"patient": f"Patient/{patient_id}"}),
    ]
    for path, token, path_parameters, query in reads:
        await conforming(schema, path, "GET", token, 200, path_parameters=path_parameters,
                         query=query)  # fmt: skip
    await conforming(schema, "/api/v1/orders/{order_id}/cancel", "POST", clinician, 200,
                     path_parameters={"order_id": order_id}, media_type="application/json",
                     body={"request_id": str(uuid.uuid4()), "reason": "ordered twice"})  # fmt: skip


async def conforming(schema: Any, path: str, method: str, token: str, status: int,
                     **parts: Any) -> dict[str, Any]:  # fmt: skip
    """The answer to one call, which must conform to the document and have ``status`` once
    the services have caught up (their read models follow the event log)."""
    case = schema[path][method].Case(**parts)
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(100):
        response = await asyncio.to_thread(case.call, headers=headers, timeout=CALL_TIMEOUT_S)
        case.validate_response(response, checks=CHECKS, headers=headers)
        if response.status_code == status:
            answer: dict[str, Any] = response.json()
            return answer
        if response.status_code not in NOT_YET:
            break
        await asyncio.sleep(0.2)
    raise AssertionError(f"{method} {path}: {response.status_code} {response.text[:300]}")
