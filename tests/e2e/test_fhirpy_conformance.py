"""A third-party FHIR client (fhirpy's AsyncFHIRClient) against the running gateway.

The gateway and the patient, orders, results and audit services run as real processes against
the session's servers, trusting the real Keycloak (`running_gateway_platform`); the client knows
only the FHIR base URL and a Keycloak token. Through fhirpy's own API (resources, references,
search sets, ``execute`` for operations and histories) it creates, reads, searches (family,
birthdate, identifier; paging), updates (If-Match), reads the history of Patients; creates a
draft ServiceRequest, reads and searches it, signs it (``$sign``, a clinician's OTP login) and
revokes another; and reads and searches the DiagnosticReport and Observation of a result.
Every resource the gateway answers is validated with the ``fhir.resources`` R4B models.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import string
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.gateway_platform import GatewayPlatform, keycloak_gateway_platform
from clinical_testing.keycloak import Keycloak
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import BaseFHIRError, MultipleResourcesFound, ResourceNotFound

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

MRN = "urn:mrn:fhirpy-conformance"
LOINC = "http://loinc.org"
STATUS_REASON = "http://hl7.org/fhir/StructureDefinition/request-statusReason"
T = TypeVar("T")


@pytest.fixture(scope="module")
async def stack(
    servers: ServerEndpoints, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[GatewayPlatform, Keycloak]]:
    async with keycloak_gateway_platform(servers, tmp_path_factory.mktemp("fhirpy-platform")) as up:
        yield up


def client(gateway: GatewayPlatform, token: str, **headers: str) -> AsyncFHIRClient:
    return AsyncFHIRClient(gateway.fhir_base, authorization=f"Bearer {token}",
                           extra_headers=headers or None)  # fmt: skip


async def eventually(attempt: Callable[[], Awaitable[T]], *, tries: int = 150) -> T:
    """``attempt``'s first success: read models and other services learn of writes from
    events, a moment later."""
    for _ in range(tries - 1):
        try:
            return await attempt()
        except (BaseFHIRError, AssertionError):
            await asyncio.sleep(0.2)
    return await attempt()


def plain(resource: Any) -> dict[str, Any]:
    """A fhirpy resource as the JSON it stands for."""
    return dict(resource.serialize())


def family_name() -> str:
    return "".join(random.choices(string.ascii_lowercase, k=10)).capitalize()  # noqa: S311


def new_patient(fhir: AsyncFHIRClient, family: str, given: str, birth_date: str) -> Any:
    return fhir.resource(
        "Patient", identifier=[{"system": MRN, "value": secrets.token_hex(8)}],
        name=[{"family": family, "given": [given]}], gender="female", birthDate=birth_date,
        address=[{"line": ["3 Quay Street"], "city": "Brisbane", "postalCode": "4000"}],
    )  # fmt: skip


def otp_login(keycloak: Keycloak) -> str:
    """The clinician's multi-factor login; a TOTP code is taken once, so a refusal (the code
    of this window was used) waits for the next window."""
    for _ in range(3):
        try:
            return keycloak.user_token("clinician", "user/*.cruds", otp=True)
        except AssertionError:
            import time  # noqa: PLC0415 - only on the rare second try

            time.sleep(31)
    return keycloak.user_token("clinician", "user/*.cruds", otp=True)


async def test_patients_are_created_read_searched_paged_updated_and_their_history_listed(
    stack: tuple[GatewayPlatform, Keycloak],
) -> None:
    gateway, keycloak = stack
    registrar = keycloak.user_token("registrar", "user/Patient.cruds")
    fhir = client(gateway, registrar)
    family = family_name()
    created = []
    for given, born in (("Ngozi", "1984-03-09"), ("Adaeze", "1990-11-23"), ("Chika", "1975-06-01")):
        patient = new_patient(fhir, family, given, born)
        await patient.create()
        Patient.model_validate(plain(patient))
        assert patient["meta"]["versionId"]
        created.append(patient)
    first = created[0]

    read = await fhir.reference("Patient", first.id).to_resource()
    assert str(Patient.model_validate(plain(read)).birthDate) == "1984-03-09"

    async def by_family() -> list[Any]:
        found = await fhir.resources("Patient").search(family=family).limit(2).fetch_all()
        assert len(found) == 3
        return list(found)

    assert {p.id for p in await eventually(by_family)} == {p.id for p in created}
    page = await fhir.resources("Patient").search(family=family).limit(2).fetch_raw()
    Bundle.model_validate(page)
    assert len(page["entry"]) == 2
    assert [link["relation"] for link in page["link"] if link["relation"] == "next"] == ["next"]
    by_birth = await fhir.resources("Patient").search(birthdate="1990-11-23", family=family).fetch()
    assert [p.id for p in by_birth] == [created[1].id]
    value = first["identifier"][0]["value"]
    by_identifier = await fhir.resources("Patient").search(identifier=f"{MRN}|{value}").fetch()
    assert [p.id for p in by_identifier] == [first.id]
    for found in (*by_birth, *by_identifier):
        Patient.model_validate(plain(found))

    # An update names the version it is based on (If-Match); a stale one is refused (412).
    version = int(read["meta"]["versionId"])
    versioned = client(gateway, registrar, **{"If-Match": f'W/"{version}"'})
    changed = versioned.resource("Patient", **plain(read))
    changed["telecom"] = [{"system": "phone", "value": "+61 7 3000 0000"}]
    await changed.save()
    Patient.model_validate(plain(changed))
    assert int(changed["meta"]["versionId"]) > version
    again = await fhir.reference("Patient", first.id).to_resource()
    assert again["telecom"][0]["value"] == "+61 7 3000 0000"
    stale = versioned.resource("Patient", **plain(again))
    with pytest.raises(MultipleResourcesFound, match="conflict"):  # fhirpy's name for a 412
        await stale.save()

    auditor = client(gateway, keycloak.user_token("auditor", "user/*.rs"))

    async def history() -> Any:
        bundle = await auditor.reference("Patient", first.id).execute("_history", method="get")
        assert len(bundle["entry"]) >= 2  # registered, then updated
        return bundle

    listed = await eventually(history)
    assert Bundle.model_validate(listed).type == "history"


async def test_an_order_is_drafted_read_searched_signed_and_another_revoked(
    stack: tuple[GatewayPlatform, Keycloak],
) -> None:
    gateway, keycloak = stack
    registrar = client(gateway, keycloak.user_token("registrar", "user/Patient.cruds"))
    patient = new_patient(registrar, family_name(), "Ngozi", "1984-03-09")
    await patient.create()
    # One clinician places, signs and reads (an order they placed is in their care).
    clinician = otp_login(keycloak)
    fhir = client(gateway, clinician)

    async def draft() -> Any:
        order = fhir.resource(
            "ServiceRequest", status="draft", intent="order", priority="urgent",
            subject={"reference": f"Patient/{patient.id}"},
            code={"coding": [{"system": LOINC, "code": "2345-7"}]},
            reasonCode=[{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10",
                                     "code": "E11.9"}]}],
        )  # fmt: skip
        await order.create()  # refused until orders has learnt of the patient
        return order

    order = await eventually(draft)
    assert ServiceRequest.model_validate(plain(order)).status == "draft"
    read = await fhir.reference("ServiceRequest", order.id).to_resource()
    ServiceRequest.model_validate(plain(read))
    drafts = await fhir.resources("ServiceRequest").search(
        patient=f"Patient/{patient.id}", status="draft"
    ).fetch()  # fmt: skip
    assert order.id in [found.id for found in drafts]

    signed = await fhir.reference("ServiceRequest", order.id).execute("$sign", method="post")
    assert ServiceRequest.model_validate(signed).status == "active"
    active = await fhir.resources("ServiceRequest").search(
        patient=f"Patient/{patient.id}", status="active"
    ).fetch()  # fmt: skip
    assert [found.id for found in active] == [order.id]

    other = await draft()
    versioned = client(gateway, clinician,
                       **{"If-Match": f'W/"{other["meta"]["versionId"]}"'})  # fmt: skip
    revoked = versioned.resource("ServiceRequest", **plain(other))
    revoked["status"] = "revoked"
    revoked["extension"] = [{"url": STATUS_REASON,
                             "valueCodeableConcept": {"text": "ordered twice"}}]  # fmt: skip
    await revoked.save()
    assert ServiceRequest.model_validate(plain(revoked)).status == "revoked"

    # A result for the signed order (posted on the JSON API: FHIR has no result create here).
    lab_token = keycloak.user_token("lab", "user/*.rs user/Observation.cruds")
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        posted = await http.post("/api/v1/results", headers={
            "authorization": f"Bearer {lab_token}"}, json={
            "request_id": str(uuid.uuid4()), "order_id": order.id,
            "order_min_version": signed["meta"]["versionId"],
            "observations": [{"code": "2345-7", "quantity": {"value": "182", "unit": "mg/dL"}}],
        })  # fmt: skip
    assert posted.status_code == 200, posted.text
    result_id = posted.json()["result_id"]
    lab = client(gateway, lab_token)

    report = await eventually(lambda: lab.reference("DiagnosticReport", result_id).to_resource())
    resource = plain(report)
    DiagnosticReport.model_validate(resource)
    assert resource["basedOn"] == [{"reference": f"ServiceRequest/{order.id}"}]
    reports = await lab.resources("DiagnosticReport").search(
        **{"based-on": f"ServiceRequest/{order.id}"}
    ).fetch()  # fmt: skip
    assert [found.id for found in reports] == [result_id]
    kind, observation_id = resource["result"][0]["reference"].split("/")
    observation = await lab.reference(kind, observation_id).to_resource()
    assert plain(observation)["code"]["coding"][0]["code"] == "2345-7"
    Observation.model_validate(plain(observation))
    observations = await lab.resources("Observation").search(
        **{"based-on": f"ServiceRequest/{order.id}", "code": f"{LOINC}|2345-7"}
    ).fetch()  # fmt: skip
    assert [found.id for found in observations] == [observation_id]
    for found in (*reports, *observations):
        (DiagnosticReport if found.resource_type == "DiagnosticReport" else Observation
         ).model_validate(plain(found))  # fmt: skip
    with pytest.raises(ResourceNotFound):
        await lab.reference("Observation", str(uuid.uuid4())).to_resource()
