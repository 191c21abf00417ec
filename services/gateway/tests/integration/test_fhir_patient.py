"""FHIR R4 Patient through the gateway to the real patient service, with Keycloak tokens.

The patient service runs in this process against the real servers and trusts only the gateway's
key, for its own audience (``clinical-patient``): every call went through the token exchange.
Whatever the gateway answers is checked with the ``fhir.resources`` R4B models.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.keycloak import Keycloak
from clinical_testing.plugin import TopicFactory, unique_name
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from pymongo.asynchronous.database import AsyncDatabase

from clinical_platform.clients.kafka import KafkaConnection, build_admin
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.grpc_server import start_grpc_server
from clinical_platform.tokens import TokenVerifier
from gateway.adapters.internal_tokens import InternalTokenIssuer, rotate_key_file
from gateway.application import GatewayApp
from patient.bootstrap import running_patient
from patient.settings import PatientSettings

pytestmark = pytest.mark.integration

GatewayFactory = Callable[..., Awaitable[tuple[httpx.AsyncClient, GatewayApp]]]
FHIR = {"content-type": "application/fhir+json"}


@pytest.fixture
async def fhir(
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any], tmp_path: Path,
    kafka_topic: TopicFactory, make_gateway: GatewayFactory,
) -> AsyncIterator[httpx.AsyncClient]:  # fmt: skip
    """The gateway's FHIR base (``/fhir/r4``) in front of a patient service of this test's own."""
    keys = tmp_path / "gateway-keys.pem"
    rotate_key_file(keys)
    public_pem = InternalTokenIssuer.from_pem_file(keys, issuer="", ttl_s=60).public_pem()
    verifier = TokenVerifier.from_pem(public_pem, issuer="clinical-platform",
                                      audience="clinical-patient")  # fmt: skip
    service = unique_name("patient-")
    settings = PatientSettings.model_validate({
        **servers.as_env(), "grpc_port": 0, "event_partitions": 1,
        "mongodb_database": mongo_database.name, "state_dir": tmp_path / "patient",
        "read_wait_max_s": 10.0, "ACCESS_AUDIT_PARTITIONS": 1,
        "ACCESS_AUDIT_TOPIC": await kafka_topic(prefix="clinical.audit.access-test."),
    })  # fmt: skip
    try:
        async with AsyncExitStack() as stack:
            patient = await stack.enter_async_context(
                running_patient(settings, service=service, verifier=verifier)
            )
            server = await start_grpc_server(host="127.0.0.1", port=0, services=patient.services)
            stack.push_async_callback(server.stop, 0)
            client, _ = await make_gateway(
                signing_keys_file=keys, patient_address=f"127.0.0.1:{server.port}",
                patient_audience="clinical-patient",
            )  # fmt: skip
            client.base_url = httpx.URL("http://gateway/fhir/r4/")
            yield client
    finally:
        admin = build_admin(KafkaConnection.from_settings(settings))
        await admin.start()
        try:
            await admin.delete_topics([events_topic(service)])
        finally:
            await admin.close()


@pytest.fixture(scope="module")
def registrar(keycloak: Keycloak) -> dict[str, str]:
    return {"authorization": f"Bearer {keycloak.user_token('registrar', 'user/Patient.cruds')}"}


def new_patient(family: str, **elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:mrn:gateway-test", "value": secrets.token_hex(8)}],
        "name": [{"family": family, "given": ["Ngozi", "Ada"]}],
        "telecom": [{"system": "phone", "value": "+61 7 3000 0000"}],
        "gender": "female", "birthDate": "1984-03-09",
        "address": [{"line": ["3 Quay Street"], "city": "Brisbane", "postalCode": "4000"}],
        **elements,
    }  # fmt: skip


def outcome(answer: httpx.Response, status: int) -> OperationOutcome:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/fhir+json")
    return OperationOutcome.model_validate(answer.json())


async def create(client: httpx.AsyncClient, headers: dict[str, str], resource: dict[str, Any],
                 ) -> httpx.Response:  # fmt: skip
    prefer = {"prefer": "return=representation", **FHIR, **headers}
    answer = await client.post("Patient", headers=prefer, json=resource)
    assert answer.status_code == 201, answer.text
    return answer


async def test_a_created_patient_reads_back_the_same_and_validates(
    fhir: httpx.AsyncClient, registrar: dict[str, str]
) -> None:
    sent = new_patient(f"Okafor{secrets.token_hex(4)}")
    created = await create(fhir, registrar, sent)
    Patient.model_validate(created.json())
    patient_id, version = created.json()["id"], created.json()["meta"]["versionId"]
    assert created.headers["location"].endswith(f"/Patient/{patient_id}/_history/{version}")
    assert created.headers["etag"] == f'W/"{version}"'
    read = await fhir.get(f"Patient/{patient_id}", headers=registrar)
    assert read.status_code == 200
    assert read.headers["etag"] == f'W/"{version}"'
    Patient.model_validate(read.json())
    body = read.json()
    assert body["meta"]["versionId"] == version
    for element in ("identifier", "name", "telecom", "gender", "birthDate", "address"):
        assert body[element] == sent[element], element
    vread = await fhir.get(f"Patient/{patient_id}/_history/{version}", headers=registrar)
    assert vread.json() == body


async def test_search_answers_a_valid_searchset_bundle_with_paging_links(
    fhir: httpx.AsyncClient, registrar: dict[str, str]
) -> None:
    family = f"Adeyemi{secrets.token_hex(4)}"
    ids = [(await create(fhir, registrar, new_patient(family))).json()["id"] for _ in range(3)]
    first = await fhir.get("Patient", params={"family": family, "_count": "2"}, headers=registrar)
    assert first.status_code == 200, first.text
    bundle = first.json()
    Bundle.model_validate(bundle)
    assert bundle["type"] == "searchset"
    next_url = next(link["url"] for link in bundle["link"] if link["relation"] == "next")
    second = (await fhir.get(next_url, headers=registrar)).json()
    Bundle.model_validate(second)
    found = [entry["resource"]["id"] for entry in [*bundle["entry"], *second["entry"]]]
    assert sorted(found) == sorted(ids)
    assert second["total"] == 3


async def test_an_update_with_a_stale_if_match_is_a_412(
    fhir: httpx.AsyncClient, registrar: dict[str, str]
) -> None:
    created = (await create(fhir, registrar, new_patient(f"Mensah{secrets.token_hex(4)}"))).json()
    changed = {**created, "birthDate": "1984-03-10"}
    version = int(created["meta"]["versionId"])
    headers = {**registrar, **FHIR, "if-match": f'W/"{version}"'}
    updated = await fhir.put(f"Patient/{created['id']}", headers=headers, json=changed)
    assert updated.status_code == 200, updated.text
    assert updated.headers["etag"] == f'W/"{version + 1}"'
    Patient.model_validate(updated.json())
    assert updated.json()["birthDate"] == "1984-03-10"
    stale = await fhir.put(f"Patient/{created['id']}", headers=headers, json=changed)
    assert outcome(stale, 412).issue[0].code == "conflict"


async def test_an_invalid_patient_is_a_400_naming_the_element(
    fhir: httpx.AsyncClient, registrar: dict[str, str]
) -> None:
    canary = f"canary{secrets.token_hex(12)}"
    malformed = await fhir.post("Patient", headers={**registrar, **FHIR},
                                json=new_patient(canary, birthDate="03/09/1984"))  # fmt: skip
    assert outcome(malformed, 400).issue[0].expression == ["Patient.birthDate"]
    assert canary not in malformed.text
    # Well-formed FHIR, refused by the patient service's own rules: its field, as an element.
    too_old = await fhir.post("Patient", headers={**registrar, **FHIR},
                              json=new_patient(canary, birthDate="1700-01-01"))  # fmt: skip
    assert outcome(too_old, 400).issue[0].expression == ["Patient.birthDate"]
    assert canary not in too_old.text


async def test_an_unknown_patient_is_a_404(
    fhir: httpx.AsyncClient, registrar: dict[str, str]
) -> None:
    outcome(await fhir.get(f"Patient/{uuid.uuid4()}", headers=registrar), 404)


async def test_no_token_is_a_401_and_the_statement_needs_none(fhir: httpx.AsyncClient) -> None:
    refused = await fhir.get(f"Patient/{uuid.uuid4()}")
    assert outcome(refused, 401).issue[0].code == "login"
    assert refused.headers["www-authenticate"] == 'Bearer realm="clinical"'
    metadata = await fhir.get("metadata")
    assert metadata.json()["resourceType"] == "CapabilityStatement"
