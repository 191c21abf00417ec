"""FHIR R4 ServiceRequest, DiagnosticReport and Observation through the gateway to the real
orders and results services, with Keycloak tokens.

Both services run in this process against the real servers and trust only the gateway's key,
each for its own audience; results follows the orders service's own event topic, as deployed.
Whatever the gateway answers is checked with the ``fhir.resources`` R4B models.

Orders are read by the clinician who placed them (an order they placed is in their care), results
by laboratory staff; a clinician's read of a result without a care relationship is the
service's PERMISSION_DENIED, a 403 OperationOutcome here.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from clinical_testing.endpoints import ServerEndpoints, isolated_service_values
from clinical_testing.kafka import delete_event_log
from clinical_testing.keycloak import Keycloak
from clinical_testing.plugin import TopicFactory, unique_name
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.servicerequest import ServiceRequest
from pymongo.asynchronous.database import AsyncDatabase

from clinical_platform.eventlog.topics import events_topic
from gateway.application import GatewayApp
from orders.settings import OrdersSettings
from results.bootstrap import running_results
from results.settings import ResultsSettings

from .conftest import internal_verifiers
from .order_result_stack import serve_orders_and

pytestmark = pytest.mark.integration

GatewayFactory = Callable[..., Awaitable[tuple[httpx.AsyncClient, GatewayApp]]]
FHIR = {"content-type": "application/fhir+json"}
PATIENT_ID = "5b0c7a53-7d0b-4d3e-9a40-2f3e3c1d6a01"  # the realm's patient user's record;
# registered by the fixture (only a registered patient's orders are taken).
LOINC = "http://loinc.org"
STATUS_REASON = "http://hl7.org/fhir/StructureDefinition/request-statusReason"


@pytest.fixture
async def fhir(
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any], tmp_path: Path,
    kafka_topic: TopicFactory, make_gateway: GatewayFactory,
) -> AsyncIterator[httpx.AsyncClient]:  # fmt: skip
    """The gateway's FHIR base in front of an orders and a results service of this test's own,
    results following the orders' event topic."""
    keys = tmp_path / "gateway-keys.pem"
    verifier = internal_verifiers(keys)
    access_topic = await kafka_topic(prefix="clinical.audit.access-test.")
    orders_log, results_log = unique_name("orders-"), unique_name("results-")

    def values(log: str, folder: str) -> dict[str, Any]:
        return isolated_service_values(
            servers, event_log_name=log, database=mongo_database.name,
            state_dir=tmp_path / folder, access_topic=access_topic,
        )  # fmt: skip

    orders_settings = OrdersSettings.model_validate(values(orders_log, "orders"))
    results_settings = ResultsSettings.model_validate(
        values(results_log, "results") | {"orders_events_topic": events_topic(orders_log)}
    )
    try:
        async with AsyncExitStack() as stack:
            addresses = await serve_orders_and(
                stack, orders_settings, verifier, PATIENT_ID,
                results=running_results(results_settings, verifier=verifier("clinical-results")),
            )  # fmt: skip
            client, _ = await make_gateway(
                signing_keys_file=keys, orders_audience="clinical-orders",
                results_audience="clinical-results", **addresses,
            )  # fmt: skip
            client.base_url = httpx.URL("http://gateway/fhir/r4/")
            yield client
    finally:
        await delete_event_log(servers.kafka_bootstrap_servers, orders_log)
        await delete_event_log(servers.kafka_bootstrap_servers, results_log)


def auth(token: str, **headers: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", **headers}


@pytest.fixture(scope="module")
def clinician(keycloak: Keycloak) -> str:
    """A clinician without a multi-factor login: places, reads, cancels; cannot sign."""
    return keycloak.user_token("clinician-no-otp", "user/*.cruds")


def outcome(answer: httpx.Response, status: int) -> OperationOutcome:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/fhir+json")
    return OperationOutcome.model_validate(answer.json())


def new_order(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest", "status": "draft", "intent": "order",
        "priority": "urgent", "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "code": {"coding": [{"system": LOINC, "code": "2345-7"}]},
        "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10",
                                    "code": "E11.9"}]}],
        **elements,
    }  # fmt: skip


async def place(fhir: httpx.AsyncClient, token: str) -> dict[str, Any]:
    created = await fhir.post("ServiceRequest", headers=auth(token, **FHIR), json=new_order())
    assert created.status_code == 201, created.text
    resource: dict[str, Any] = created.json()
    ServiceRequest.model_validate(resource)
    return resource


async def eventually(read: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """The first answer that is not a 404: results learn of an order from its events."""
    for _ in range(100):
        answer = await read()
        if answer.status_code != 404:
            return answer
        await asyncio.sleep(0.1)
    return answer


async def test_an_order_is_placed_signed_resulted_and_read_as_fhir(
    fhir: httpx.AsyncClient, keycloak: Keycloak, clinician: str, clinician_otp_token: str
) -> None:
    # One clinician places, signs and reads: an order they placed is in their care.
    placed = await place(fhir, clinician_otp_token)
    order_id = placed["id"]
    assert (placed["status"], placed["priority"]) == ("draft", "urgent")
    assert placed["code"]["coding"][0]["system"] == LOINC
    drafts = {"patient": f"Patient/{PATIENT_ID}", "status": "draft"}
    found = await fhir.get("ServiceRequest", headers=auth(clinician_otp_token), params=drafts)
    assert found.status_code == 200, found.text
    Bundle.model_validate(found.json())
    assert order_id in [e["resource"]["id"] for e in found.json().get("entry", ())]

    without_mfa = await fhir.post(f"ServiceRequest/{order_id}/$sign", headers=auth(clinician))
    assert "multi-factor" in (outcome(without_mfa, 403).issue[0].diagnostics or "")
    version = placed["meta"]["versionId"]
    signed = await fhir.post(f"ServiceRequest/{order_id}/$sign", headers=auth(
        clinician_otp_token, **{"if-match": f'W/"{version}"'}))  # fmt: skip
    assert signed.status_code == 200, signed.text
    assert ServiceRequest.model_validate(signed.json()).status == "active"

    lab = keycloak.user_token("lab", "user/*.rs user/Observation.cruds")
    posted = await fhir.post("http://gateway/api/v1/results", headers=auth(lab), json={
        "request_id": str(uuid.uuid4()), "order_id": order_id,
        "order_min_version": signed.json()["meta"]["versionId"],
        "observations": [{"code": "2345-7", "quantity": {"value": "182", "unit": "mg/dL"}}],
    })  # fmt: skip
    assert posted.status_code == 200, posted.text
    result_id = posted.json()["result_id"]

    report = await eventually(lambda: fhir.get(f"DiagnosticReport/{result_id}",
                                               headers=auth(lab)))  # fmt: skip
    assert report.status_code == 200, report.text
    DiagnosticReport.model_validate(report.json())
    assert report.json()["basedOn"] == [{"reference": f"ServiceRequest/{order_id}"}]
    observation_ref = report.json()["result"][0]["reference"]
    observation = await fhir.get(observation_ref, headers=auth(lab))
    assert observation.status_code == 200, observation.text
    Observation.model_validate(observation.json())
    body = observation.json()
    assert body["code"]["coding"][0]["code"] == "2345-7"
    assert body["valueQuantity"]["system"] == "http://unitsofmeasure.org"
    assert body["interpretation"][0]["coding"][0]["code"] == "H"
    searched = await fhir.get("Observation", headers=auth(lab), params={
        "based-on": f"ServiceRequest/{order_id}", "code": f"{LOINC}|2345-7"})  # fmt: skip
    Bundle.model_validate(searched.json())
    assert [e["resource"]["id"] for e in searched.json()["entry"]] == [
        observation_ref.split("/")[1]
    ]

    # A clinician reads results of patients in their care (or by break-glass): the service's
    # PERMISSION_DENIED, when it says no, is a 403 OperationOutcome, never a 5xx.
    by_clinician = await fhir.get(observation_ref, headers=auth(clinician_otp_token))
    if by_clinician.status_code != 200:
        assert outcome(by_clinician, 403).issue[0].code == "forbidden"


async def test_a_revoked_order_keeps_its_reason_and_a_stale_if_match_is_a_412(
    fhir: httpx.AsyncClient, clinician_otp_token: str
) -> None:
    placed = await place(fhir, clinician_otp_token)
    reason = f"ordered twice {secrets.token_hex(4)}"
    status_reason = {"url": STATUS_REASON, "valueCodeableConcept": {"text": reason}}
    revoked = {**placed, "status": "revoked", "extension": [status_reason]}
    headers = auth(clinician_otp_token, **FHIR)
    answer = await fhir.put(f"ServiceRequest/{placed['id']}", headers=headers, json=revoked)
    assert answer.status_code == 200, answer.text
    assert ServiceRequest.model_validate(answer.json()).status == "revoked"
    assert status_reason in answer.json()["extension"]
    stale = f'W/"{placed["meta"]["versionId"]}"'
    refused = await fhir.post(f"ServiceRequest/{placed['id']}/$sign",
                              headers=auth(clinician_otp_token, **{"if-match": stale}))  # fmt: skip
    assert outcome(refused, 412).issue[0].code == "conflict"


async def test_a_patient_reads_their_own_orders_and_an_invalid_order_is_a_400(
    fhir: httpx.AsyncClient, keycloak: Keycloak, clinician: str
) -> None:
    placed = await place(fhir, clinician)
    patient = keycloak.user_token("patient", "patient/*.rs launch/patient")
    own = await fhir.get("ServiceRequest", headers=auth(patient))
    assert own.status_code == 200, own.text
    Bundle.model_validate(own.json())
    assert placed["id"] in [e["resource"]["id"] for e in own.json().get("entry", ())]
    refused = await fhir.post("ServiceRequest", headers=auth(patient, **FHIR), json=new_order())
    assert outcome(refused, 403).issue[0].code == "forbidden"
    canary = f"canary{secrets.token_hex(12)}"
    unknown_test = new_order(code={"coding": [{"system": LOINC, "code": "99999-9"}]},
                             authoredOn="2026-12-07", note=[{"text": canary}])  # fmt: skip
    unstored = await fhir.post("ServiceRequest", headers=auth(clinician, **FHIR),
                               json=unknown_test)  # fmt: skip
    assert outcome(unstored, 422).issue[0].expression == ["ServiceRequest.note"]
    not_catalogued = await fhir.post(
        "ServiceRequest", headers=auth(clinician, **FHIR),
        json=new_order(code={"coding": [{"system": LOINC, "code": "99999-9"}]}),
    )  # fmt: skip
    assert outcome(not_catalogued, 400).issue[0].expression == ["ServiceRequest.code"]
    assert canary not in unstored.text
