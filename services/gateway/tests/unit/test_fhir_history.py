"""``_history`` and Provenance over a fake AuditService: the History calls made, the bundles
and resources answered, and the outcomes of every refusal."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.provenance import Provenance
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.entrypoints.fhir.capability import capability_statement
from gateway.entrypoints.fhir.provenance import (
    ACT_REASON,
    SUBJECT_SYSTEM,
    history_bundle,
    newest_first,
    operation,
    provenance,
)
from gateway.ports import DownstreamAnswer

from .conftest import FakeServices, fhir_client, outcome

pytestmark = pytest.mark.unit

PATIENT_ID = str(uuid.uuid4())
ORDER_ID = str(uuid.uuid4())
CLAIMS = {"sub": "auditor-1", "azp": "app-a", "realm_access": {"roles": ["auditor"]}}
TOKENS = {"auditor": {**CLAIMS, "scope": "user/*.rs"},
          "patient-reader": {**CLAIMS, "scope": "user/Patient.rs"},
          "orders-only": {**CLAIMS, "scope": "user/ServiceRequest.rs"}}  # fmt: skip
BASE = "http://gateway/fhir/r4"
EVENTS = ("PatientRegistered", "DemographicsUpdated", "DemographicsUpdated", "PatientsLinked")


def change(version: int, event_type: str, *, aggregate_id: str = PATIENT_ID,
           aggregate_type: str = "Patient", **extra: Any) -> dict[str, Any]:  # fmt: skip
    """A Change as History answers it (protobuf JSON, proto field names)."""
    return {
        "event_id": str(uuid.uuid4()), "event_type": event_type, "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id, "aggregate_version": str(version),
        "occurred_at": f"2026-12-07T10:0{version}:00Z",
        "recorded_at": f"2026-12-07T10:0{version}:01.250Z",
        "actor": {"subject": f"clinician-{version}", "roles": ["clinician"],
                  "client_id": "ward-tablet"},
        "purpose_of_use": "PURPOSE_OF_USE_TREAT", **extra,
    }  # fmt: skip


def patient_changes() -> list[dict[str, Any]]:
    return [change(v, e) for v, e in enumerate(EVENTS, start=1)]


def history(changes: list[dict[str, Any]], token: str = "") -> DownstreamAnswer:
    return DownstreamAnswer("OK", body={"changes": changes, "next_page_token": token})


@pytest.fixture
def audit() -> FakeServices:
    # An auditor reads trails, never the records themselves: versions without contents.
    refused = DownstreamAnswer("PERMISSION_DENIED", "auditors read no demographics")
    return FakeServices({"History": [history(patient_changes())], "GetPatient": [refused]})


@pytest.fixture
async def client(audit: FakeServices) -> AsyncIterator[httpx.AsyncClient]:
    async with fhir_client(audit, TOKENS) as http:
        yield http


def bearer(name: str = "auditor") -> dict[str, str]:
    return {"authorization": f"Bearer {name}"}


async def test_history_is_every_version_newest_first_with_its_time(
    client: httpx.AsyncClient, audit: FakeServices
) -> None:
    answer = await client.get(f"/Patient/{PATIENT_ID}/_history", headers=bearer())
    assert answer.status_code == 200, answer.text
    bundle = Bundle.model_validate(answer.json())
    assert bundle.type == "history"
    assert bundle.total == 4
    entries = answer.json()["entry"]
    assert [e["response"]["etag"] for e in entries] == ['W/"4"', 'W/"3"', 'W/"2"', 'W/"1"']
    assert [e["request"]["method"] for e in entries] == ["PUT", "PUT", "PUT", "POST"]
    assert entries[0]["fullUrl"] == f"{BASE}/Patient/{PATIENT_ID}/_history/4"
    assert entries[3]["response"]["lastModified"].startswith("2026-12-07T10:01:01.25")
    assert all("resource" not in e for e in entries)
    call, contents = audit.calls
    assert (call.service, call.method) == ("audit", "History")
    assert (contents.method, contents.request["version"]) == ("GetPatient", 4)
    assert call.request == {"aggregate_id": PATIENT_ID, "page_size": 1000}


async def test_history_follows_every_page_of_history(
    client: httpx.AsyncClient, audit: FakeServices
) -> None:
    first, second = patient_changes()[:2], patient_changes()[2:]
    audit.answers["History"] = [history(first, "next-page"), history(second)]
    answer = await client.get(f"/Patient/{PATIENT_ID}/_history", headers=bearer())
    assert answer.json()["total"] == 4
    assert audit.calls[1].request["page_token"] == "next-page"  # noqa: S105 - not a secret


async def test_history_of_a_service_request_keeps_only_the_orders_events(
    client: httpx.AsyncClient, audit: FakeServices
) -> None:
    orders = [change(1, "OrderPlaced", aggregate_id=ORDER_ID, aggregate_type="Order"),
              change(2, "OrderSigned", aggregate_id=ORDER_ID, aggregate_type="Order"),
              change(1, "PatientRegistered", aggregate_id=ORDER_ID)]  # fmt: skip
    audit.answers["History"] = [history(orders)]
    # The orders service refuses an auditor its records: versions without contents.
    audit.answers["GetOrder"] = [DownstreamAnswer("PERMISSION_DENIED", "not an order reader")]
    answer = await client.get(f"/ServiceRequest/{ORDER_ID}/_history", headers=bearer())
    assert answer.status_code == 200, answer.text
    assert [e["fullUrl"].rsplit("/", 3)[-3:] for e in answer.json()["entry"]] == [
        [ORDER_ID, "_history", "2"], [ORDER_ID, "_history", "1"],
    ]  # fmt: skip


async def test_history_of_a_record_never_recorded_is_404(
    client: httpx.AsyncClient, audit: FakeServices
) -> None:
    audit.answers["History"] = [history([])]
    outcome(await client.get(f"/Patient/{PATIENT_ID}/_history", headers=bearer()), 404)
    outcome(await client.get("/Patient/not-an-id/_history", headers=bearer()), 404)
    assert len(audit.calls) == 1  # the malformed id was never asked about


async def test_history_refused_by_the_audit_service_is_403(
    client: httpx.AsyncClient, audit: FakeServices
) -> None:
    audit.answers["History"] = [DownstreamAnswer("PERMISSION_DENIED", "auditors only")]
    refused = outcome(await client.get(f"/Patient/{PATIENT_ID}/_history", headers=bearer()), 403)
    assert refused.issue[0].code == "forbidden"


async def test_history_needs_the_resource_types_read_scope(
    client: httpx.AsyncClient, audit: FakeServices
) -> None:
    answer = await client.get(f"/Patient/{PATIENT_ID}/_history", headers=bearer("orders-only"))
    outcome(answer, 403)
    assert "user/Patient.r" in answer.headers["www-authenticate"]
    outcome(await client.get(f"/Patient/{PATIENT_ID}/_history"), 401)
    assert audit.calls == []


async def test_provenance_search_is_one_provenance_per_version(
    client: httpx.AsyncClient, audit: FakeServices
) -> None:
    answer = await client.get("/Provenance", params={"target": f"Patient/{PATIENT_ID}"},
                              headers=bearer())  # fmt: skip
    assert answer.status_code == 200, answer.text
    bundle = Bundle.model_validate(answer.json())
    assert bundle.type == "searchset"
    assert bundle.total == 4
    resources = [e["resource"] for e in answer.json()["entry"]]
    for resource in resources:
        Provenance.model_validate(resource)
    assert [p["target"][0]["reference"] for p in resources] == [
        f"Patient/{PATIENT_ID}/_history/{v}" for v in (1, 2, 3, 4)
    ]
    assert [p["agent"][0]["who"]["identifier"]["value"] for p in resources] == [
        f"clinician-{v}" for v in (1, 2, 3, 4)
    ]
    assert audit.calls[0].request["aggregate_id"] == PATIENT_ID


async def test_provenance_search_needs_a_target_it_serves(
    client: httpx.AsyncClient, audit: FakeServices
) -> None:
    missing = outcome(await client.get("/Provenance", headers=bearer()), 400)
    assert missing.issue[0].expression == ["target"]
    for target in ("Observation/" + PATIENT_ID, "Patient/not-an-id", "Patient"):
        outcome(await client.get("/Provenance", params={"target": target}, headers=bearer()), 400)
    twice = f"/Provenance?target=Patient/{PATIENT_ID}&target=Patient/{PATIENT_ID}"
    outcome(await client.get(twice, headers=bearer()), 400)
    denied = await client.get("/Provenance", params={"target": f"Patient/{PATIENT_ID}"},
                              headers=bearer("patient-reader"))  # fmt: skip
    outcome(denied, 403)
    assert audit.calls == []


async def test_history_and_provenance_refusals_never_echo_the_request(
    client: httpx.AsyncClient, audit: FakeServices, caplog: pytest.LogCaptureFixture
) -> None:
    canary = f"canary{secrets.token_hex(16)}"
    caplog.set_level(logging.DEBUG)
    strict = {**bearer(), "prefer": "handling=strict"}
    refusals = [
        await client.get(f"/Patient/{canary}/_history", headers=bearer()),
        await client.get(f"/ServiceRequest/{canary}/_history", headers=bearer()),
        await client.get("/Provenance", params={"target": f"Patient/{canary}"}, headers=bearer()),
        await client.get("/Provenance", params={"target": canary}, headers=bearer()),
        await client.get("/Provenance", params={canary: "x"}, headers=strict),
        await client.get(f"/Patient/{canary}/_history"),
    ]
    assert [answer.status_code for answer in refusals] == [404, 404, 400, 400, 400, 401]
    assert all(canary not in answer.text for answer in refusals)
    ours = [record for record in caplog.records if record.name != "httpx"]  # the test's client
    assert all(canary not in str(record.__dict__) for record in ours)


def test_the_capability_statement_lists_history_and_provenance() -> None:
    statement = capability_statement(BASE, software_version="0.1.0", date="2026-12-07")
    served = {r["type"]: r for r in statement["rest"][0]["resource"]}
    for kind in ("Patient", "ServiceRequest", "DiagnosticReport"):
        codes = {i["code"] for i in served[kind]["interaction"]}
        assert {"history-instance", "history-type"} <= codes
    assert [i["code"] for i in served["Provenance"]["interaction"]] == ["search-type"]
    assert [p["name"] for p in served["Provenance"]["searchParam"]] == ["target"]


_subjects = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                    min_size=1, max_size=40).filter(str.strip)  # fmt: skip
_purposes = st.sampled_from([f"PURPOSE_OF_USE_{code}" for code in
                             ("TREAT", "ETREAT", "UNSPECIFIED", "PATRQT")] + [""])  # fmt: skip
_actors = st.fixed_dictionaries(
    {"subject": _subjects},
    optional={"roles": st.lists(st.from_regex(r"[a-z][a-z-]{0,15}", fullmatch=True), max_size=3),
              "client_id": st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
              "on_behalf_of": _subjects},
)  # fmt: skip
_changes = st.builds(
    lambda version, event_type, actor, purpose: change(version % 9 + 1, event_type, actor=actor,
                                                       purpose_of_use=purpose),
    st.integers(min_value=0, max_value=10**6), st.sampled_from([*EVENTS, "PatientForgotten"]),
    _actors, _purposes,
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_changes)
def test_every_change_is_a_valid_provenance_of_its_version(recorded: dict[str, Any]) -> None:
    resource = provenance("Patient", recorded)
    Provenance.model_validate(resource)
    version = int(recorded["aggregate_version"])
    assert resource["target"] == [{"reference": f"Patient/{PATIENT_ID}/_history/{version}"}]
    author = resource["agent"][0]
    assert author["who"]["identifier"] == {"system": SUBJECT_SYSTEM,
                                           "value": recorded["actor"]["subject"]}  # fmt: skip
    assert resource["activity"]["coding"][0]["code"] == operation(recorded)
    assert resource["activity"]["text"] == recorded["event_type"]
    reasons = [c["code"] for r in resource.get("reason", []) for c in r["coding"]
               if c["system"] == ACT_REASON]  # fmt: skip
    purpose = recorded["purpose_of_use"].removeprefix("PURPOSE_OF_USE_")
    assert reasons == ([purpose] if purpose not in ("", "UNSPECIFIED") else [])
    assert (len(resource["agent"]) == 2) == ("client_id" in recorded["actor"])


@settings(max_examples=40, deadline=None)
@given(st.permutations(range(1, 9)))
def test_a_history_bundle_is_newest_first_whatever_the_order_recorded(
    versions: list[int],
) -> None:
    changes = [change(v, "DemographicsUpdated" if v > 1 else "PatientRegistered")
               for v in versions]  # fmt: skip
    bundle = history_bundle("Patient", newest_first(changes), BASE, links=[], total=8)
    Bundle.model_validate(bundle)
    assert [e["response"]["etag"] for e in bundle["entry"]] == [f'W/"{v}"' for v in range(8, 0, -1)]
    assert bundle["entry"][-1]["request"] == {"method": "POST", "url": "Patient"}
