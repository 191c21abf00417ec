"""The FHIR API over a fake PatientService: the calls it makes, its headers, its outcomes."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.patient import Patient

from gateway.ports import DownstreamAnswer

from .conftest import FakeServices, fhir_client, outcome

pytestmark = pytest.mark.unit

PATIENT_ID = str(uuid.uuid4())
CLAIMS = {"sub": "u-1", "azp": "app-a", "realm_access": {"roles": ["registrar"]}}
TOKENS = {"registrar": {**CLAIMS, "scope": "user/Patient.cruds"},
          "reader": {**CLAIMS, "scope": "user/Patient.rs"}}  # fmt: skip
FHIR = {"content-type": "application/fhir+json"}


def record(version: int = 3, **extra: Any) -> dict[str, Any]:
    demographics = {"name": {"family": "Okafor", "given": ["Ada"]},
                    "sex": "ADMINISTRATIVE_SEX_FEMALE", "birth_date": "1990-01-02"}  # fmt: skip
    return {"patient_id": PATIENT_ID, "version": str(version), "demographics": demographics,
            **extra}  # fmt: skip


class FakePatientService(FakeServices):
    def __init__(self) -> None:
        super().__init__({
            "GetPatient": [DownstreamAnswer("OK", body={"patient": record()})],
            "SearchPatients": [DownstreamAnswer("OK", body={"patients": [record()]})],
            "RegisterPatient": [
                DownstreamAnswer("OK", body={"patient_id": PATIENT_ID, "version": "1"})
            ],
            "UpdateDemographics": [DownstreamAnswer("OK", body={"version": "4"})],
        })  # fmt: skip


@pytest.fixture
def service() -> FakePatientService:
    return FakePatientService()


@pytest.fixture
async def client(service: FakePatientService) -> AsyncIterator[httpx.AsyncClient]:
    async with fhir_client(service, TOKENS) as http:
        yield http


def bearer(name: str = "registrar", **headers: str) -> dict[str, str]:
    return {"authorization": f"Bearer {name}", **headers}


def resource(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": "Okafor"}], **elements}


async def test_metadata_is_a_capability_statement_without_a_token(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/metadata")
    assert answer.status_code == 200
    statement = CapabilityStatement.model_validate(answer.json())
    assert statement.fhirVersion == "4.0.1"


async def test_no_token_is_a_401_outcome_with_the_bearer_challenge(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get(f"/Patient/{PATIENT_ID}")
    assert outcome(answer, 401).issue[0].code == "login"
    assert answer.headers["www-authenticate"] == 'Bearer realm="clinical"'


async def test_a_missing_scope_is_a_403_outcome_naming_the_scope(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post("/Patient", headers=bearer("reader", **FHIR), json=resource())
    assert outcome(answer, 403).issue[0].code == "forbidden"
    assert 'scope="user/Patient.c"' in answer.headers["www-authenticate"]


async def test_read_answers_the_patient_with_its_version_as_etag(
    client: httpx.AsyncClient, service: FakePatientService
) -> None:
    answer = await client.get(f"/Patient/{PATIENT_ID}", headers=bearer())
    assert answer.status_code == 200
    assert answer.headers["etag"] == 'W/"3"'
    Patient.model_validate(answer.json())
    assert answer.json()["id"] == PATIENT_ID
    assert answer.json()["meta"] == {"versionId": "3"}
    assert service.calls[-1].request == {"patient_id": PATIENT_ID, "min_version": 0}


async def test_an_id_that_cannot_be_a_record_is_a_404_without_a_call(
    client: httpx.AsyncClient, service: FakePatientService
) -> None:
    outcome(await client.get("/Patient/not-a-record", headers=bearer()), 404)
    assert service.calls == []


async def test_a_forgotten_record_is_gone(
    client: httpx.AsyncClient, service: FakePatientService
) -> None:
    gone = {"patient_id": PATIENT_ID, "version": "5", "forgotten": True}
    service.answers["GetPatient"] = [DownstreamAnswer("OK", body={"patient": gone})]
    assert outcome(await client.get(f"/Patient/{PATIENT_ID}", headers=bearer()), 410)


async def test_vread_asks_the_service_for_that_version_and_refuses_another_answer(
    client: httpx.AsyncClient, service: FakePatientService
) -> None:
    current = await client.get(f"/Patient/{PATIENT_ID}/_history/3", headers=bearer())
    assert current.status_code == 200
    assert service.calls[-1].request == {"patient_id": PATIENT_ID, "min_version": 0, "version": 3}
    # This fake answers version 3 whatever it is asked: never shown as version 2.
    outcome(await client.get(f"/Patient/{PATIENT_ID}/_history/2", headers=bearer()), 404)
    for never in ("0", "²", "9" * 30, "x"):
        outcome(await client.get(f"/Patient/{PATIENT_ID}/_history/{never}", headers=bearer()), 404)


async def test_create_registers_and_answers_201_with_location_and_the_record(
    client: httpx.AsyncClient, service: FakePatientService
) -> None:
    service.answers["GetPatient"] = [DownstreamAnswer("OK", body={"patient": record(1)})]
    answer = await client.post("/Patient", headers=bearer(**FHIR), json=resource())
    assert answer.status_code == 201
    assert answer.headers["location"] == f"http://gateway/fhir/r4/Patient/{PATIENT_ID}/_history/1"
    assert answer.headers["etag"] == 'W/"1"'
    assert Patient.model_validate(answer.json()).id == PATIENT_ID
    register, read_back = service.calls
    assert register.request["demographics"] == {"name": {"family": "Okafor"}}
    assert read_back.request == {"patient_id": PATIENT_ID, "min_version": 1}


async def test_create_with_return_minimal_answers_no_body(
    client: httpx.AsyncClient, service: FakePatientService
) -> None:
    headers = bearer(prefer="return=minimal", **FHIR)
    answer = await client.post("/Patient", headers=headers, json=resource())
    assert answer.status_code == 201
    assert answer.content == b""
    assert [c.method for c in service.calls] == ["RegisterPatient"]


async def test_update_sends_if_match_as_the_expected_version(
    client: httpx.AsyncClient, service: FakePatientService
) -> None:
    service.answers["GetPatient"] = [DownstreamAnswer("OK", body={"patient": record(4)})]
    headers = bearer(**{"if-match": 'W/"3"'}, **FHIR)
    answer = await client.put(f"/Patient/{PATIENT_ID}", headers=headers,
                              json=resource(id=PATIENT_ID))  # fmt: skip
    assert answer.status_code == 200
    assert answer.headers["etag"] == 'W/"4"'
    update = next(c for c in service.calls if c.method == "UpdateDemographics")
    assert update.request["expected_version"] == 3


async def test_a_stale_if_match_is_a_412(
    client: httpx.AsyncClient, service: FakePatientService
) -> None:
    conflict = DownstreamAnswer("ABORTED", "the aggregate is at version 4, expected 3")
    service.answers["UpdateDemographics"] = [conflict]
    headers = bearer(**{"if-match": 'W/"3"'}, **FHIR)
    answer = await client.put(f"/Patient/{PATIENT_ID}", headers=headers,
                              json=resource(id=PATIENT_ID))  # fmt: skip
    assert outcome(answer, 412).issue[0].code == "conflict"


async def test_an_update_whose_id_differs_from_the_url_is_a_400(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.put(f"/Patient/{PATIENT_ID}", headers=bearer(**FHIR),
                              json=resource(id=str(uuid.uuid4())))  # fmt: skip
    assert outcome(answer, 400).issue[0].expression == ["Patient.id"]


async def test_the_services_field_violations_become_element_paths(
    client: httpx.AsyncClient, service: FakePatientService
) -> None:
    violation = {"field": "demographics.birth_date", "description": "must be after 1850"}
    invalid = DownstreamAnswer("INVALID_ARGUMENT", "invalid fields", violations=(violation,))
    service.answers["RegisterPatient"] = [invalid]
    answer = await client.post("/Patient", headers=bearer(**FHIR),
                               json=resource(birthDate="1700-01-01"))  # fmt: skip
    assert outcome(answer, 400).issue[0].expression == ["Patient.birthDate"]


@pytest.mark.parametrize(("headers", "body", "status"), [
    ({"content-type": "text/plain"}, b"{}", 415),
    (FHIR, b"not json", 400),
    (FHIR, b"[]", 400),
    (FHIR, b'{"resourceType": "Patient", "note": "' + b"x" * 5000 + b'"}', 413),
])  # fmt: skip
async def test_a_body_that_is_no_resource_is_refused_with_an_outcome(
    client: httpx.AsyncClient, headers: dict[str, str], body: bytes, status: int
) -> None:
    outcome(await client.post("/Patient", headers=bearer(**headers), content=body), status)


async def test_search_answers_a_searchset_bundle(client: httpx.AsyncClient) -> None:
    answer = await client.get("/Patient", params={"family": "Okafor"}, headers=bearer())
    assert answer.status_code == 200
    assert answer.json()["type"] == "searchset"
    assert answer.json()["entry"][0]["resource"]["id"] == PATIENT_ID


@pytest.mark.parametrize(("method", "path", "status"), [
    ("DELETE", f"/Patient/{PATIENT_ID}", 405),
    ("GET", "/Observation/abc", 404),
])  # fmt: skip
async def test_what_is_not_implemented_is_an_outcome_too(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    outcome(await client.request(method, path, headers=bearer()), status)


async def test_a_caller_accepting_no_json_is_a_406(client: httpx.AsyncClient) -> None:
    headers = bearer(accept="application/fhir+xml")
    outcome(await client.get(f"/Patient/{PATIENT_ID}", headers=headers), 406)


async def test_past_the_rate_limit_is_a_429_outcome_with_retry_after(
    client: httpx.AsyncClient,
) -> None:
    answers = [await client.get(f"/Patient/{PATIENT_ID}", headers=bearer()) for _ in range(21)]
    assert outcome(answers[-1], 429).issue[0].code == "throttled"
    assert int(answers[-1].headers["retry-after"]) > 0


async def test_no_request_value_reaches_the_logs_or_an_outcome(
    client: httpx.AsyncClient, service: FakePatientService, caplog: pytest.LogCaptureFixture
) -> None:
    canary = f"canary{secrets.token_hex(16)}"
    violation = {"field": "demographics.name.family", "description": "is too long"}
    invalid = DownstreamAnswer("INVALID_ARGUMENT", "invalid fields", violations=(violation,))
    service.answers["RegisterPatient"] = [invalid]
    caplog.set_level(logging.DEBUG)
    strict = bearer(prefer="handling=strict")
    refusals = [
        await client.get("/Patient", params={"family": canary, canary: "x"}, headers=strict),
        await client.get("/Patient", params={"birthdate": canary}, headers=bearer()),
        await client.post("/Patient", headers=bearer(**FHIR), json=resource(birthDate=canary)),
        await client.post(
            "/Patient", headers=bearer(**FHIR), json=resource(name=[{"family": canary}])
        ),
        await client.get(f"/Patient?name={canary}"),
    ]
    assert [answer.status_code for answer in refusals] == [400, 400, 400, 400, 401]
    assert all(canary not in answer.text for answer in refusals)
    ours = [record for record in caplog.records if record.name != "httpx"]  # the test's client
    assert all(canary not in str(record.__dict__) for record in ours)
