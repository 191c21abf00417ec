"""AuditEvent search over a fake AuditService: the ExportAuditEvents request a search makes,
the searchset answered, and the outcome of every refusal."""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.entrypoints.fhir.audit_event_search import audit_event_query, date_bounds
from gateway.entrypoints.fhir.outcomes import FhirError
from gateway.ports import DownstreamAnswer

from .conftest import FakeServices, fhir_client, outcome

pytestmark = pytest.mark.unit

PATIENT_ID = str(uuid.uuid4())
CLAIMS = {"sub": "auditor-1", "azp": "app-a", "realm_access": {"roles": ["auditor"]}}
TOKENS = {"auditor": {**CLAIMS, "scope": "user/AuditEvent.rs"},
          "reader": {**CLAIMS, "scope": "user/Patient.rs"}}  # fmt: skip
SUBJECT = "urn:clinical-platform:subject"


def balp_event(subject: str, action: str = "R") -> str:
    """An AuditEvent as the audit service exports it (IHE BALP shape, trimmed)."""
    event = {
        "resourceType": "AuditEvent", "id": str(uuid.uuid4()),
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                 "code": "rest"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": "read"}],
        "action": action, "recorded": "2026-12-07T10:00:00.125Z", "outcome": "0",
        "agent": [{"who": {"identifier": {"system": SUBJECT, "value": subject}},
                   "requestor": True}],
        "source": {"observer": {"display": "//clinical/patient"}},
        "entity": [{"what": {"reference": f"Patient/{PATIENT_ID}"}}],
    }  # fmt: skip
    return json.dumps(event)


def exported(*events: str, token: str = "") -> DownstreamAnswer:
    return DownstreamAnswer("OK", body={"audit_events": list(events), "next_page_token": token})


@pytest.fixture
def audit() -> FakeServices:
    return FakeServices({"ExportAuditEvents": [exported(balp_event("dr-a"), balp_event("dr-b"))]})


@pytest.fixture
async def client(audit: FakeServices) -> AsyncIterator[httpx.AsyncClient]:
    async with fhir_client(audit, TOKENS) as http:
        yield http


def bearer(name: str = "auditor", **headers: str) -> dict[str, str]:
    return {"authorization": f"Bearer {name}", **headers}


async def test_a_patients_audit_events_are_a_searchset_of_valid_audit_events(
    client: httpx.AsyncClient, audit: FakeServices
) -> None:
    answer = await client.get("/AuditEvent", params={"patient": f"Patient/{PATIENT_ID}"},
                              headers=bearer())  # fmt: skip
    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    Bundle.model_validate(bundle)
    assert bundle["total"] == 2
    for entry in bundle["entry"]:
        AuditEvent.model_validate(entry["resource"])
    [call] = audit.calls
    assert (call.service, call.method) == ("audit", "ExportAuditEvents")
    assert call.request == {"patient_id": PATIENT_ID, "page_size": 20}


async def test_date_bounds_and_pages_go_to_the_service_and_agent_filters_the_page(
    client: httpx.AsyncClient, audit: FakeServices
) -> None:
    page_token = "bmV4dA"  # noqa: S105 - a page token, not a secret
    audit.answers["ExportAuditEvents"] = [
        exported(balp_event("dr-a"), balp_event("dr-b"), token=page_token)
    ]
    params = [("patient", PATIENT_ID), ("date", "ge2026-12-01"), ("date", "lt2026-12-07T12:00:00Z"),
              ("agent", "dr-b"), ("_count", "5")]  # fmt: skip
    answer = await client.get("/AuditEvent", params=tuple(params), headers=bearer())
    assert answer.status_code == 200, answer.text
    entries = answer.json()["entry"]
    assert [e["resource"]["agent"][0]["who"]["identifier"]["value"] for e in entries] == ["dr-b"]
    assert audit.calls[0].request == {
        "patient_id": PATIENT_ID, "page_size": 5,
        "period": {"since": "2026-12-01T00:00:00Z", "until": "2026-12-07T12:00:00Z"},
    }  # fmt: skip
    links = {link["relation"]: link["url"] for link in answer.json()["link"]}
    following = parse_qs(urlsplit(links["next"]).query)
    assert following["_page_token"] == [page_token]
    assert following["date"] == ["ge2026-12-01", "lt2026-12-07T12:00:00Z"]
    assert following["agent"] == ["dr-b"]


async def test_audit_event_search_refusals(client: httpx.AsyncClient, audit: FakeServices) -> None:
    missing = outcome(await client.get("/AuditEvent", headers=bearer()), 400)
    assert missing.issue[0].expression == ["patient"]
    for params in ([("patient", "Patient/not-an-id")],
                   [("patient", PATIENT_ID), ("date", "yesterday")],
                   [("patient", PATIENT_ID), ("date", "ge2026-12-08"), ("date", "lt2026-12-01")],
                   [("patient", PATIENT_ID), ("date", "ge2026-12-01"), ("date", "gt2026-12-02")],
                   [("patient", PATIENT_ID), *[("date", "ge2026-12-01")] * 3],
                   [("patient", PATIENT_ID), ("agent", "a b")]):  # fmt: skip
        outcome(await client.get("/AuditEvent", params=tuple(params), headers=bearer()), 400)
    scoped = await client.get(
        "/AuditEvent", params={"patient": PATIENT_ID}, headers=bearer("reader")
    )
    outcome(scoped, 403)
    assert "user/AuditEvent.s" in scoped.headers["www-authenticate"]
    assert audit.calls == []
    audit.answers["ExportAuditEvents"] = [DownstreamAnswer("PERMISSION_DENIED", "auditors only")]
    outcome(await client.get("/AuditEvent", params={"patient": PATIENT_ID}, headers=bearer()), 403)
    audit.answers["ExportAuditEvents"] = [exported('{"resourceType": "AuditEvent"}')]
    broken = await client.get("/AuditEvent", params={"patient": PATIENT_ID}, headers=bearer())
    assert outcome(broken, 502).issue[0].code == "exception"


async def test_audit_event_refusals_never_echo_the_request(
    client: httpx.AsyncClient, audit: FakeServices, caplog: pytest.LogCaptureFixture
) -> None:
    canary = f"canary{secrets.token_hex(16)}"
    caplog.set_level(logging.DEBUG)
    strict = bearer(prefer="handling=strict")
    refusals = [
        await client.get("/AuditEvent", params={"patient": canary}, headers=bearer()),
        await client.get(
            "/AuditEvent", params={"patient": PATIENT_ID, "date": canary}, headers=bearer()
        ),
        await client.get(
            "/AuditEvent", params={"patient": PATIENT_ID, "agent": f"{canary} x"}, headers=bearer()
        ),
        await client.get(
            "/AuditEvent", params={"patient": PATIENT_ID, canary: "x"}, headers=strict
        ),
        await client.get("/AuditEvent", params={"patient": canary}),
    ]
    assert [answer.status_code for answer in refusals] == [400, 400, 400, 400, 401]
    assert all(canary not in answer.text for answer in refusals)
    ours = [record for record in caplog.records if record.name != "httpx"]  # the test's client
    assert all(canary not in str(record.__dict__) for record in ours)


_days = st.dates(min_value=datetime(1970, 1, 1).date(), max_value=datetime(2200, 1, 1).date())
_instants = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1),
                         timezones=st.just(UTC))  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(_days, st.sampled_from(["", "eq", "ge", "gt", "le", "lt"]), _instants)
def test_a_day_bound_holds_exactly_the_instants_it_names(day: Any, prefix: str,
                                                         probe: datetime) -> None:  # fmt: skip
    bounds = {b.end: b.at for b in date_bounds(f"{prefix}{day.isoformat()}")}
    inside = bounds.get("since", probe) <= probe and (
        "until" not in bounds or probe < bounds["until"]
    )
    on_day = probe.date() == day
    expected = {"": on_day, "eq": on_day, "ge": probe.date() >= day, "gt": probe.date() > day,
                "le": probe.date() <= day, "lt": probe.date() < day}[prefix]  # fmt: skip
    assert inside == expected


@settings(max_examples=80, deadline=None)
@given(_instants, st.sampled_from(["ge", "gt", "le", "lt"]),
       st.integers(min_value=-2, max_value=2))  # fmt: skip
def test_an_instant_bound_holds_the_instants_it_names(at: datetime, prefix: str,
                                                      micros: int) -> None:  # fmt: skip
    probe = at + timedelta(microseconds=micros)
    [bound] = date_bounds(prefix + at.isoformat().replace("+00:00", "Z"))
    inside = bound.at <= probe if bound.end == "since" else probe < bound.at
    expected = {"ge": probe >= at, "gt": probe > at, "le": probe <= at, "lt": probe < at}[prefix]
    assert inside == expected


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["patient", "date", "agent", "_count", "_page_token"])
                          | st.text(max_size=8), st.text(max_size=30)), max_size=5),
       st.booleans())  # fmt: skip
def test_any_parameters_are_an_export_request_or_a_400(params: list[tuple[str, str]],
                                                       strict: bool) -> None:  # fmt: skip
    try:
        query = audit_event_query(params, strict=strict)
    except FhirError as refused:
        assert refused.status == 400  # noqa: PT017 - a property: refused or not, both are fine
        return
    assert set(query.values) <= {"patient_id", "page_size", "page_token", "period"}
