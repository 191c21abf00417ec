"""``_history``, Provenance and AuditEvent of a Patient through the gateway: the real patient
service writes the events and access records, the real audit service reads them back (History,
ExportAuditEvents), Keycloak's registrar writes and its auditor reads. Whatever the gateway
answers is checked with the ``fhir.resources`` R4B models.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from clinical_testing.endpoints import ServerEndpoints, isolated_service_values
from clinical_testing.kafka import delete_event_log
from clinical_testing.keycloak import Keycloak
from clinical_testing.plugin import TopicFactory, TransitKeyFactory, unique_name
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.provenance import Provenance
from pymongo.asynchronous.database import AsyncDatabase

from audit.bootstrap import running_audit
from gateway.application import GatewayApp
from gateway.domain.scopes import Interaction
from gateway.entrypoints.fhir.records import route
from orders.bootstrap import running_orders
from orders.settings import OrdersSettings
from patient.bootstrap import running_patient
from patient.settings import PatientSettings

from .conftest import GatewayFactory, internal_verifiers, serve
from .order_result_stack import audit_of

pytestmark = pytest.mark.integration

FHIR = {"content-type": "application/fhir+json"}
LINK = route("patient", "Patient", "LinkPatients", Interaction.UPDATE)


@dataclass
class Stack:
    """The gateway's FHIR base over a patient service and an audit service of this test's own."""

    client: httpx.AsyncClient
    app: GatewayApp


@pytest.fixture
async def stack(  # noqa: PLR0917 - pytest passes fixtures by parameter
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any], tmp_path: Path,
    kafka_topic: TopicFactory, transit_key: TransitKeyFactory, make_gateway: GatewayFactory,
) -> AsyncIterator[Stack]:  # fmt: skip
    keys = tmp_path / "gateway-keys.pem"
    verifier = internal_verifiers(keys)
    patient_log, orders_log = unique_name("patient-"), unique_name("orders-")
    access_topic = await kafka_topic(prefix="clinical.audit.access-test.")

    def values(log: str) -> dict[str, Any]:
        return isolated_service_values(
            servers, event_log_name=log, database=mongo_database.name,
            state_dir=tmp_path / log, access_topic=access_topic,
        )  # fmt: skip

    patient_settings = PatientSettings.model_validate(values(patient_log))
    orders_settings = OrdersSettings.model_validate(values(orders_log))
    audit_settings = await audit_of(
        servers, mongo_database, kafka_topic, transit_key, tmp_path / "audit",
        access_topic=access_topic, logs=(patient_log, orders_log),
    )  # fmt: skip
    try:
        async with AsyncExitStack() as running:
            patient = await running.enter_async_context(
                running_patient(patient_settings, verifier=verifier("clinical-patient"))
            )
            orders = await running.enter_async_context(
                running_orders(orders_settings, verifier=verifier("clinical-orders"))
            )
            audit = await running.enter_async_context(
                running_audit(audit_settings, verifier=verifier("clinical-audit"))
            )
            addresses = await serve(running, {"patient": patient.services,
                                              "orders": orders.services,
                                              "audit": audit.services})  # fmt: skip
            client, app = await make_gateway(signing_keys_file=keys, **addresses)
            client.base_url = httpx.URL("http://gateway/fhir/r4/")
            yield Stack(client, app)
    finally:
        for log in (patient_log, orders_log):
            await delete_event_log(servers.kafka_bootstrap_servers, log)


@pytest.fixture(scope="module")
def registrar_token(keycloak: Keycloak) -> str:
    return keycloak.user_token("registrar", "user/Patient.cruds")


@pytest.fixture(scope="module")
def auditor(keycloak: Keycloak) -> dict[str, str]:
    return {"authorization": f"Bearer {keycloak.user_token('auditor', 'user/*.rs')}"}


def outcome(answer: httpx.Response, status: int) -> OperationOutcome:
    assert answer.status_code == status, answer.text
    return OperationOutcome.model_validate(answer.json())


async def registered(client: httpx.AsyncClient, headers: dict[str, str], family: str) -> str:
    resource = {
        "resourceType": "Patient", "name": [{"family": family, "given": ["Chiamaka"]}],
        "identifier": [{"system": "urn:mrn:gateway-test", "value": secrets.token_hex(8)}],
        "gender": "female", "birthDate": "1979-11-23",
    }  # fmt: skip
    created = await client.post("Patient", headers={**FHIR, **headers}, json=resource)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def updated(client: httpx.AsyncClient, headers: dict[str, str], patient_id: str,
                  birth_date: str) -> None:  # fmt: skip
    current = (await client.get(f"Patient/{patient_id}", headers=headers)).json()
    changed = {**current, "birthDate": birth_date}
    answer = await client.put(f"Patient/{patient_id}", headers={**FHIR, **headers}, json=changed)
    assert answer.status_code == 200, answer.text


async def history_of(client: httpx.AsyncClient, headers: dict[str, str], record_id: str,
                     versions: int, kind: str = "Patient") -> dict[str, Any]:  # fmt: skip
    """The history Bundle once the audit service has read ``versions`` versions from the log
    (its projection is asynchronous)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        answer = await client.get(f"{kind}/{record_id}/_history", headers=headers)
        if answer.status_code == 200 and answer.json()["total"] >= versions:
            return dict(answer.json())
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(answer.text)
        await asyncio.sleep(0.3)


async def test_history_of_a_registered_updated_and_linked_patient_is_every_version_with_actors(
    stack: Stack, registrar_token: str, auditor: dict[str, str]
) -> None:
    registrar = {"authorization": f"Bearer {registrar_token}"}
    family = f"Eze{secrets.token_hex(6)}"
    pair = [await registered(stack.client, registrar, family),
            await registered(stack.client, registrar, f"Obi{secrets.token_hex(6)}")]  # fmt: skip
    # A link is recorded on the pair's anchor, the record with the lower id (the proto says so).
    patient_id, other_id = sorted(pair)
    await updated(stack.client, registrar, patient_id, "1979-11-24")
    await updated(stack.client, registrar, patient_id, "1979-11-25")
    caller = await stack.app.authenticate(registrar_token)
    link = {"request_id": str(uuid.uuid4()), "patient_id": patient_id,
            "other_patient_id": other_id}  # fmt: skip
    linked = await stack.app.perform(caller, LINK, link)
    assert (linked.status, linked.body.get("anchor_patient_id")) == ("OK", patient_id), linked

    # Four changes, four versions: the match assessment registering records as the aggregate's
    # version 2 shows nothing of the Patient (its Provenance is below).
    bundle = await history_of(stack.client, auditor, patient_id, versions=4)

    Bundle.model_validate(bundle)
    assert bundle["type"] == "history"
    assert bundle["total"] == 4
    assert [e["response"]["etag"] for e in bundle["entry"]] == [f'W/"{v}"' for v in (5, 4, 3, 1)]
    assert [e["request"]["method"] for e in bundle["entry"]] == ["PUT"] * 3 + ["POST"]
    modified = [e["response"]["lastModified"] for e in bundle["entry"]]
    assert modified == sorted(modified, reverse=True)
    provenances = await stack.client.get(
        "Provenance", params={"target": f"Patient/{patient_id}"}, headers=auditor
    )
    assert provenances.status_code == 200, provenances.text
    Bundle.model_validate(provenances.json())
    resources = [e["resource"] for e in provenances.json()["entry"]]
    for resource in resources:
        Provenance.model_validate(resource)
    assert [r["activity"]["text"] for r in resources] == [
        "PatientRegistered", "PatientMatchAssessed", "DemographicsUpdated",
        "DemographicsUpdated", "PatientsLinked",
    ]  # fmt: skip
    registrar_subject = caller.principal.subject
    assert {r["agent"][0]["who"]["identifier"]["value"] for r in resources} == {registrar_subject}
    assert all([c["coding"][0]["code"] for c in r["agent"][0]["role"]] == ["registrar"]
               for r in resources)  # fmt: skip
    # Why: the purpose of use each change was recorded under (treatment, unless said otherwise).
    assert {c["code"] for r in resources for c in r["reason"][0]["coding"]} == {"TREAT"}
    assert all(r["recorded"] and r["occurredDateTime"] for r in resources)
    # Metadata only: the demographics never travel through the audit service.
    assert all(family not in text for text in (provenances.text, str(bundle)))


async def test_history_is_for_auditors_and_unknown_records_are_404(
    stack: Stack, registrar_token: str, auditor: dict[str, str]
) -> None:
    registrar = {"authorization": f"Bearer {registrar_token}"}
    patient_id = await registered(stack.client, registrar, f"Nwosu{secrets.token_hex(6)}")
    await history_of(stack.client, auditor, patient_id, versions=1)
    refused = await stack.client.get(f"Patient/{patient_id}/_history", headers=registrar)
    assert outcome(refused, 403).issue[0].code == "forbidden"
    outcome(await stack.client.get(f"Patient/{uuid.uuid4()}/_history", headers=auditor), 404)
    missing = await stack.client.get("Provenance", headers=auditor)
    assert outcome(missing, 400).issue[0].expression == ["target"]


async def test_a_patients_audit_events_name_their_changes_and_reads_for_auditors_only(
    stack: Stack, registrar_token: str, auditor: dict[str, str]
) -> None:
    registrar = {"authorization": f"Bearer {registrar_token}"}
    patient_id = await registered(stack.client, registrar, f"Okoro{secrets.token_hex(6)}")
    read = await stack.client.get(f"Patient/{patient_id}", headers=registrar)
    assert read.status_code == 200, read.text
    subject = (await stack.app.authenticate(registrar_token)).principal.subject
    search = {"patient": f"Patient/{patient_id}", "agent": subject, "date": "ge2026-01-01"}
    deadline = asyncio.get_running_loop().time() + 30
    while True:  # the audit service reads the event log and the access trail asynchronously
        answer = await stack.client.get("AuditEvent", params=search, headers=auditor)
        assert answer.status_code == 200, answer.text
        actions = {e["resource"]["action"] for e in answer.json().get("entry", [])}
        if {"C", "R"} <= actions or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.3)
    assert {"C", "R"} <= actions
    Bundle.model_validate(answer.json())
    for entry in answer.json()["entry"]:
        event = AuditEvent.model_validate(entry["resource"])
        assert event.agent[0].who is not None
        assert event.agent[0].who.identifier is not None
        assert event.agent[0].who.identifier.value == subject
    later = await stack.client.get(
        "AuditEvent", params={"patient": patient_id, "date": "ge2100-01-01"}, headers=auditor
    )
    assert later.status_code == 200, later.text
    assert later.json().get("entry", []) == []
    refused = await stack.client.get(
        "AuditEvent", params={"patient": patient_id}, headers=registrar
    )
    outcome(refused, 403)


async def test_history_of_a_placed_and_revoked_order_is_two_versions_with_the_orderer(
    stack: Stack, keycloak: Keycloak, registrar_token: str, auditor: dict[str, str]
) -> None:
    clinician = {
        "authorization": f"Bearer {keycloak.user_token('clinician-no-otp', 'user/*.cruds')}"
    }
    registrar = {"authorization": f"Bearer {registrar_token}"}
    patient_id = await registered(stack.client, registrar, f"Eze{secrets.token_hex(6)}")
    order = {
        "resourceType": "ServiceRequest", "status": "draft", "intent": "order",
        "priority": "routine", "subject": {"reference": f"Patient/{patient_id}"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
        "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11.9"}]}],
    }  # fmt: skip
    placed = await stack.client.post("ServiceRequest", headers={**FHIR, **clinician}, json=order)
    assert placed.status_code == 201, placed.text
    reason = {"url": "http://hl7.org/fhir/StructureDefinition/request-statusReason",
              "valueCodeableConcept": {"text": "ordered twice"}}  # fmt: skip
    revoked = {**placed.json(), "status": "revoked", "extension": [reason]}
    order_id = placed.json()["id"]
    answer = await stack.client.put(f"ServiceRequest/{order_id}", headers={**FHIR, **clinician},
                                    json=revoked)  # fmt: skip
    assert answer.status_code == 200, answer.text

    bundle = await history_of(stack.client, auditor, order_id, versions=2, kind="ServiceRequest")

    Bundle.model_validate(bundle)
    assert [(e["request"]["method"], e["response"]["etag"]) for e in bundle["entry"]] == [
        ("PUT", 'W/"2"'), ("POST", 'W/"1"'),
    ]  # fmt: skip
    provenances = await stack.client.get(
        "Provenance", params={"target": f"ServiceRequest/{order_id}"}, headers=auditor
    )
    assert provenances.status_code == 200, provenances.text
    resources = [e["resource"] for e in provenances.json()["entry"]]
    assert [r["activity"]["text"] for r in resources] == ["OrderPlaced", "OrderCancelled"]
    assert [r["target"][0]["reference"] for r in resources] == [
        f"ServiceRequest/{order_id}/_history/1", f"ServiceRequest/{order_id}/_history/2",
    ]  # fmt: skip


async def test_type_history_is_every_patients_versions_newest_first_by_pages_and_since(
    stack: Stack, registrar_token: str, auditor: dict[str, str]
) -> None:
    registrar = {"authorization": f"Bearer {registrar_token}"}
    first = await registered(stack.client, registrar, f"Adeyemi{secrets.token_hex(6)}")
    second = await registered(stack.client, registrar, f"Bello{secrets.token_hex(6)}")
    await updated(stack.client, registrar, first, "1979-11-24")
    expected = [(first, "PUT"), (second, "POST"), (first, "POST")]

    def versions(bundle: dict[str, Any]) -> list[tuple[str, str]]:
        return [(e["fullUrl"].rsplit("/", 3)[-3], e["request"]["method"])
                for e in bundle.get("entry", [])]  # fmt: skip

    deadline = asyncio.get_running_loop().time() + 30
    while True:  # the audit service reads the event log asynchronously
        answer = await stack.client.get("Patient/_history", headers=auditor)
        assert answer.status_code == 200, answer.text
        if versions(answer.json()) == expected or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.3)
    whole = answer.json()
    Bundle.model_validate(whole)
    # Every patient's versions, newest first; the match assessments are no versions.
    assert (whole["type"], versions(whole), whole["total"]) == ("history", expected, 3)
    modified = [e["response"]["lastModified"] for e in whole["entry"]]
    assert modified == sorted(modified, reverse=True)

    paged: list[tuple[str, str]] = []
    url: str | None = "Patient/_history?_count=1"
    while url and len(paged) < 10:
        page = await stack.client.get(url, headers=auditor)
        assert page.status_code == 200, page.text
        Bundle.model_validate(page.json())
        assert len(page.json()["entry"]) == 1
        paged += versions(page.json())
        url = next((x["url"] for x in page.json()["link"] if x["relation"] == "next"), None)
    assert paged == expected

    since = whole["entry"][1]["response"]["lastModified"]  # the second patient's registration
    recent = await stack.client.get("Patient/_history", params={"_since": since}, headers=auditor)
    assert recent.status_code == 200, recent.text
    Bundle.model_validate(recent.json())
    assert versions(recent.json()) == expected[:2]
    instance = await stack.client.get(f"Patient/{first}/_history", params={"_since": since},
                                      headers=auditor)  # fmt: skip
    assert versions(instance.json()) == expected[:1]
    refused = await stack.client.get("Patient/_history", params={"_since": "2026-12-07"},
                                     headers=auditor)  # fmt: skip
    assert outcome(refused, 400).issue[0].expression == ["_since"]
    outcome(await stack.client.get("Patient/_history", headers=registrar), 403)
