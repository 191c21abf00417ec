"""ServiceRequest, DiagnosticReport and Observation through the FHIR API over fake orders and
results services: the calls made, the SMART scopes each needs, paging, outcomes, no PHI."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.servicerequest import ServiceRequest

from gateway.entrypoints.fhir.service_request_resource import LOINC, STATUS_REASON
from gateway.ports import DownstreamAnswer

from .conftest import FakeServices, fhir_client, outcome

pytestmark = pytest.mark.unit

PATIENT_ID, ORDER_ID, RESULT_ID = (str(uuid.uuid4()) for _ in range(3))
CLINICIAN = {"sub": "u-1", "azp": "app-a", "realm_access": {"roles": ["clinician"]}}
TOKENS = {
    "clinician": {**CLINICIAN, "scope": "user/ServiceRequest.cruds user/Observation.rs "
                  "user/DiagnosticReport.rs"},
    "orders-reader": {**CLINICIAN, "scope": "user/ServiceRequest.rs"},
    "observations": {**CLINICIAN, "scope": "user/Observation.rs"},
    "patient": {"sub": "p-1", "azp": "app-b", "realm_access": {"roles": ["patient"]},
                "patient": PATIENT_ID,
                "scope": "patient/ServiceRequest.rs patient/Observation.rs launch/patient"},
}  # fmt: skip
FHIR = {"content-type": "application/fhir+json"}
NEXT_PAGE = "eyJhdCI6MX0"  # a page token as the services give them


def order(version: int = 1, status: str = "ORDER_STATUS_DRAFT", **extra: Any) -> dict[str, Any]:
    return {"order_id": ORDER_ID, "version": str(version), "patient_id": PATIENT_ID,
            "test_code": "2345-7", "test_display": "Glucose", "priority": "PRIORITY_ROUTINE",
            "reason_codes": [{"system": "CODE_SYSTEM_ICD10", "code": "E11.9"}],
            "orderer": "u-1", "placed_at": "2026-12-07T10:00:00Z", "status": status,
            **extra}  # fmt: skip


def result(version: int = 1) -> dict[str, Any]:
    glucose = {"code": "2345-7", "display": "Glucose", "quantity": {"value": "140",
               "unit": "mg/dL"}, "reference_range": {"low": "70", "high": "99"},
               "interpretation": "INTERPRETATION_HIGH"}  # fmt: skip
    culture = {"code": "600-7", "coded": {"system": "http://snomed.info/sct",
                                          "code": "112283007"}}  # fmt: skip
    return {"result_id": RESULT_ID, "version": str(version), "order_id": ORDER_ID,
            "patient_id": PATIENT_ID, "status": "RESULT_STATUS_FINAL",
            "observations": [glucose, culture], "performer": "lab-1",
            "effective_at": "2026-12-07T11:00:00Z",
            "issued_at": "2026-12-07T12:00:00Z"}  # fmt: skip


def ok(**body: Any) -> list[DownstreamAnswer]:
    return [DownstreamAnswer("OK", body=body)]


@pytest.fixture
def services() -> FakeServices:
    return FakeServices({
        "GetOrder": ok(order=order()), "ListOrders": ok(orders=[order()], total="1"),
        "PlaceOrder": ok(order_id=ORDER_ID, version="1"), "SignOrder": ok(version="2"),
        "CancelOrder": ok(version="3"), "GetResult": ok(result=result()),
        "ListResults": ok(results=[result()], total="1"),
    })  # fmt: skip


@pytest.fixture
async def client(services: FakeServices) -> AsyncIterator[httpx.AsyncClient]:
    async with fhir_client(services, TOKENS, limit="100/minute") as http:
        yield http


def bearer(name: str = "clinician", **headers: str) -> dict[str, str]:
    return {"authorization": f"Bearer {name}", **headers}


def new_request(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "ServiceRequest", "status": "draft", "intent": "order",
            "subject": {"reference": f"Patient/{PATIENT_ID}"}, "priority": "urgent",
            "code": {"coding": [{"system": LOINC, "code": "2345-7"}]},
            "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10",
                                        "code": "E11.9"}]}], **elements}  # fmt: skip


def revoked(reason: str = "ordered twice") -> dict[str, Any]:
    sent = {**new_request(id=ORDER_ID, priority="routine"), "status": "revoked"}
    sent["extension"] = [{"url": STATUS_REASON, "valueCodeableConcept": {"text": reason}}]
    return sent


async def test_read_answers_the_order_as_a_service_request(
    client: httpx.AsyncClient, services: FakeServices
) -> None:
    answer = await client.get(f"/ServiceRequest/{ORDER_ID}", headers=bearer())
    assert answer.status_code == 200, answer.text
    assert answer.headers["etag"] == 'W/"1"'
    resource = ServiceRequest.model_validate(answer.json())
    assert (resource.status, resource.intent, resource.priority) == ("draft", "order", "routine")
    assert services.calls[-1].request == {"order_id": ORDER_ID, "min_version": 0}


async def test_create_places_a_draft_and_answers_201_with_the_order(
    client: httpx.AsyncClient, services: FakeServices
) -> None:
    answer = await client.post("/ServiceRequest", headers=bearer(**FHIR), json=new_request())
    assert answer.status_code == 201, answer.text
    assert answer.headers["location"].endswith(f"/ServiceRequest/{ORDER_ID}/_history/1")
    ServiceRequest.model_validate(answer.json())
    place, read_back = services.calls
    assert {k: v for k, v in place.request.items() if k != "request_id"} == {
        "patient_id": PATIENT_ID, "test_code": "2345-7", "priority": "PRIORITY_URGENT",
        "reason_codes": [{"system": "CODE_SYSTEM_ICD10", "code": "E11.9"}],
    }  # fmt: skip
    assert read_back.request == {"order_id": ORDER_ID, "min_version": 1}


async def test_sign_is_an_operation_whose_if_match_is_the_expected_version(
    client: httpx.AsyncClient, services: FakeServices
) -> None:
    services.answers["GetOrder"] = ok(order=order(2, "ORDER_STATUS_SIGNED"))
    answer = await client.post(f"/ServiceRequest/{ORDER_ID}/$sign",
                               headers=bearer(**{"if-match": 'W/"1"'}))  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "active"
    assert answer.headers["etag"] == 'W/"2"'
    sign = services.calls[0]
    assert (sign.method, sign.request["order_id"], sign.request["expected_version"]) == (
        "SignOrder", ORDER_ID, 1)  # fmt: skip


@pytest.mark.parametrize(("refusal", "status"), [
    (DownstreamAnswer("PERMISSION_DENIED", "signing needs a multi-factor login"), 403),
    (DownstreamAnswer("FAILED_PRECONDITION", "the order is cancelled"), 422),
    (DownstreamAnswer("NOT_FOUND", "order not found"), 404),
    (DownstreamAnswer("ABORTED", "the order is at version 2"), 412),
])  # fmt: skip
async def test_a_refused_signature_is_an_outcome_with_its_status(
    client: httpx.AsyncClient, services: FakeServices, refusal: DownstreamAnswer, status: int
) -> None:
    services.answers["SignOrder"] = [refusal]
    answer = await client.post(f"/ServiceRequest/{ORDER_ID}/$sign",
                               headers=bearer(**{"if-match": 'W/"1"'}))  # fmt: skip
    outcome(answer, status)


async def test_an_update_to_revoked_cancels_with_the_status_reason(
    client: httpx.AsyncClient, services: FakeServices
) -> None:
    services.answers["GetOrder"] = [DownstreamAnswer("OK", body={"order": order()}),
                                    DownstreamAnswer("OK", body={"order": order(3,
                                    "ORDER_STATUS_CANCELLED")})]  # fmt: skip
    answer = await client.put(f"/ServiceRequest/{ORDER_ID}", headers=bearer(**FHIR),
                              json=revoked())  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "revoked"
    cancel = next(c for c in services.calls if c.method == "CancelOrder")
    assert cancel.request["reason"] == "ordered twice"


@pytest.mark.parametrize(("sent", "status", "path"), [
    ({**new_request(id=ORDER_ID), "status": "active"}, 422, "ServiceRequest.status"),
    ({**revoked(), "extension": []}, 400, "ServiceRequest.extension"),
    ({**revoked(), "code": {"coding": [{"system": LOINC, "code": "718-7"}]}}, 422,
     "ServiceRequest.code"),
    ({**revoked(), "id": str(uuid.uuid4())}, 400, "ServiceRequest.id"),
])  # fmt: skip
async def test_an_update_that_does_more_than_revoke_is_refused_naming_the_element(
    client: httpx.AsyncClient, services: FakeServices, sent: dict[str, Any], status: int,
    path: str,
) -> None:  # fmt: skip
    answer = await client.put(f"/ServiceRequest/{ORDER_ID}", headers=bearer(**FHIR), json=sent)
    assert outcome(answer, status).issue[0].expression == [path]
    assert "CancelOrder" not in [c.method for c in services.calls]


async def test_search_passes_patient_and_status_and_links_the_next_page(
    client: httpx.AsyncClient, services: FakeServices
) -> None:
    services.answers["ListOrders"] = ok(orders=[order()], next_page_token=NEXT_PAGE, total="3")
    params = {"patient": f"Patient/{PATIENT_ID}", "status": "draft", "_count": "1"}
    answer = await client.get("/ServiceRequest", params=params, headers=bearer())
    assert answer.status_code == 200, answer.text
    bundle = Bundle.model_validate(answer.json())
    assert services.calls[-1].request == {
        "patient_id": PATIENT_ID, "status": "ORDER_STATUS_DRAFT", "page_size": 1
    }  # fmt: skip
    assert bundle.total == 3  # the service's count of every page's matches
    following = next(str(link.url) for link in bundle.link or () if link.relation == "next")
    query = parse_qs(urlsplit(following).query)
    assert query["_page_token"] == [NEXT_PAGE]
    assert query["patient"] == [f"Patient/{PATIENT_ID}"]
    await client.get(following, headers=bearer())
    assert services.calls[-1].request["page_token"] == NEXT_PAGE


@pytest.mark.parametrize("params", [
    {"patient": "Group/1"}, {"status": "signed"}, {"_count": "0"}, {"_page_token": "a b"},
    {"patient": PATIENT_ID, "subject": PATIENT_ID}, {"status": "draft,active"},
])  # fmt: skip
async def test_a_search_the_service_cannot_answer_is_a_400(
    client: httpx.AsyncClient, services: FakeServices, params: dict[str, str]
) -> None:
    outcome(await client.get("/ServiceRequest", params=params, headers=bearer()), 400)
    assert services.calls == []


async def test_a_result_is_a_diagnostic_report_listing_its_observations(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get(f"/DiagnosticReport/{RESULT_ID}", headers=bearer())
    assert answer.status_code == 200, answer.text
    report = DiagnosticReport.model_validate(answer.json())
    assert [r.reference for r in report.result or ()] == [
        f"Observation/{RESULT_ID}-1", f"Observation/{RESULT_ID}-2"
    ]  # fmt: skip
    for reference in report.result or ():
        read = await client.get(f"/{reference.reference}", headers=bearer())
        assert read.status_code == 200, read.text
        Observation.model_validate(read.json())


@pytest.mark.parametrize(("rpc", "path"), [
    ("GetOrder", f"/ServiceRequest/{ORDER_ID}"), ("GetResult", f"/DiagnosticReport/{RESULT_ID}"),
    ("GetResult", f"/Observation/{RESULT_ID}-1"),
])  # fmt: skip
async def test_a_forgotten_patients_record_is_gone(
    client: httpx.AsyncClient, services: FakeServices, rpc: str, path: str
) -> None:
    refusal = DownstreamAnswer("FAILED_PRECONDITION", "it is about a patient who was forgotten")
    services.answers[rpc] = [refusal]
    assert outcome(await client.get(path, headers=bearer()), 410).issue[0].code == "deleted"


@pytest.mark.parametrize("observation_id", [f"{RESULT_ID}-3", f"{RESULT_ID}-0", RESULT_ID, "x"])
async def test_an_observation_a_result_does_not_have_is_a_404(
    client: httpx.AsyncClient, observation_id: str
) -> None:
    outcome(await client.get(f"/Observation/{observation_id}", headers=bearer()), 404)


async def test_observation_search_filters_each_page_by_code(
    client: httpx.AsyncClient, services: FakeServices
) -> None:
    params = {"patient": PATIENT_ID, "code": f"{LOINC}|2345-7"}
    answer = await client.get("/Observation", params=params, headers=bearer())
    bundle = Bundle.model_validate(answer.json())
    assert [e.resource.id for e in bundle.entry or ()] == [f"{RESULT_ID}-1"]  # type: ignore[union-attr]
    # The service lists the results with such an observation; the page keeps those alone.
    assert services.calls[-1].request == {"patient_id": PATIENT_ID, "page_size": 20,
                                          "codes": ["2345-7"]}  # fmt: skip
    by_order = {"based-on": f"ServiceRequest/{ORDER_ID}", "category": "laboratory"}
    answer = await client.get("/Observation", params=by_order, headers=bearer())
    assert len(answer.json()["entry"]) == 2
    assert services.calls[-1].request["order_id"] == ORDER_ID


async def test_report_search_answers_one_report_per_result(client: httpx.AsyncClient) -> None:
    answer = await client.get("/DiagnosticReport", params={"subject": f"Patient/{PATIENT_ID}"},
                              headers=bearer())  # fmt: skip
    bundle = answer.json()
    Bundle.model_validate(bundle)
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["DiagnosticReport"]
    assert bundle["total"] == 1


# SMART: each resource type's interactions need that type's scope (token -> allowed or not).
@pytest.mark.parametrize(("token", "method", "path", "allowed"), [
    ("orders-reader", "GET", f"/ServiceRequest/{ORDER_ID}", True),
    ("orders-reader", "GET", "/ServiceRequest?patient=" + PATIENT_ID, True),
    ("orders-reader", "POST", "/ServiceRequest", False),
    ("orders-reader", "POST", f"/ServiceRequest/{ORDER_ID}/$sign", False),
    ("orders-reader", "PUT", f"/ServiceRequest/{ORDER_ID}", False),
    ("orders-reader", "GET", f"/Observation/{RESULT_ID}-1", False),
    ("observations", "GET", f"/Observation/{RESULT_ID}-1", True),
    ("observations", "GET", "/Observation?patient=" + PATIENT_ID, True),
    ("observations", "GET", f"/DiagnosticReport/{RESULT_ID}", False),
    ("observations", "GET", "/DiagnosticReport?patient=" + PATIENT_ID, False),
    ("patient", "GET", f"/ServiceRequest/{ORDER_ID}", True),
    ("patient", "GET", "/Observation", True),
    ("patient", "POST", "/ServiceRequest", False),
    ("patient", "GET", f"/DiagnosticReport/{RESULT_ID}", False),
])  # fmt: skip
async def test_each_resource_type_needs_its_own_smart_scope(
    client: httpx.AsyncClient, token: str, method: str, path: str, allowed: bool
) -> None:
    body = revoked() if method == "PUT" else new_request()
    answer = await client.request(method, path, headers=bearer(token, **FHIR), json=body)
    if allowed:
        assert answer.status_code == 200, answer.text
    else:
        assert outcome(answer, 403).issue[0].code == "forbidden"
        kind = path.split("/")[1].split("?", maxsplit=1)[0]
        assert f"/{kind}." in answer.headers["www-authenticate"]


async def test_no_request_or_record_value_reaches_the_logs_or_an_outcome(
    client: httpx.AsyncClient, services: FakeServices, caplog: pytest.LogCaptureFixture
) -> None:
    canary = f"canary{secrets.token_hex(16)}"
    violation = {"field": "reason_codes[0].code", "description": "is not a known code"}
    services.answers["PlaceOrder"] = [
        DownstreamAnswer("INVALID_ARGUMENT", "invalid fields", violations=(violation,))
    ]
    caplog.set_level(logging.DEBUG)
    strict = bearer(prefer="handling=strict")
    reason = [{"coding": [{"system": "http://snomed.info/sct", "code": canary}]}]
    put = {**revoked(canary), "status": "active"}
    refusals = [
        await client.get("/ServiceRequest", params={"patient": canary}, headers=bearer()),
        await client.get("/Observation", params={canary: "1", "patient": PATIENT_ID},
                         headers=strict),
        await client.get("/Observation", params={"code": f"{canary}|a|b"}, headers=bearer()),
        await client.post("/ServiceRequest", headers=bearer(**FHIR),
                          json=new_request(authoredOn=canary)),
        await client.post("/ServiceRequest", headers=bearer(**FHIR),
                          json=new_request(reasonCode=reason)),
        await client.put(f"/ServiceRequest/{ORDER_ID}", headers=bearer(**FHIR), json=put),
        await client.get(f"/Observation/{canary}", headers=bearer()),
    ]  # fmt: skip
    assert [a.status_code for a in refusals] == [400, 400, 400, 400, 400, 422, 404]
    assert refusals[4].json()["issue"][0]["expression"] == [
        "ServiceRequest.reasonCode[0].coding[0].code"
    ]  # fmt: skip
    assert all(canary not in answer.text for answer in refusals)
    ours = [record for record in caplog.records if record.name != "httpx"]  # the test's client
    assert all(canary not in str(record.__dict__) for record in ours)
