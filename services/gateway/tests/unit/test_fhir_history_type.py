"""Type-level ``_history`` and ``_since``/``_count`` on every ``_history``, over a fake
AuditService: the History calls made (by aggregate type, newest first, a page at a time), the
pages and links answered, and the refusals."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.patient import Patient

from gateway.ports import DownstreamAnswer

from .conftest import FakeServices, fhir_client, outcome
from .test_fhir_history import CLAIMS, change, history

pytestmark = pytest.mark.unit

FIRST, SECOND = str(uuid.uuid4()), str(uuid.uuid4())
TOKENS = {"auditor": {**CLAIMS, "scope": "user/*.rs"},
          "reader": {**CLAIMS, "scope": "user/Patient.r"}}  # fmt: skip
BEARER = {"authorization": "Bearer auditor"}
# Two patients' changes as History answers them newest first (the second registered later).
NEWEST_FIRST = [change(2, "DemographicsUpdated", aggregate_id=SECOND),
                change(1, "PatientRegistered", aggregate_id=SECOND),
                change(1, "PatientRegistered", aggregate_id=FIRST)]  # fmt: skip


def record(patient_id: str, version: int) -> DownstreamAnswer:
    return DownstreamAnswer("OK", body={"patient": {
        "patient_id": patient_id, "version": str(version),
        "recorded_at": "2026-12-07T10:03:01.250Z",
        "demographics": {"name": {"family": "Okafor", "given": ["Ada"]}},
    }})  # fmt: skip


@pytest.fixture
def audit() -> FakeServices:
    refused = DownstreamAnswer("PERMISSION_DENIED", "auditors read no demographics")
    return FakeServices({"History": [history(NEWEST_FIRST)], "GetPatient": [refused]})


@pytest.fixture
async def client(audit: FakeServices) -> AsyncIterator[httpx.AsyncClient]:
    async with fhir_client(audit, TOKENS) as http:
        yield http


def link(bundle: dict[str, Any], relation: str) -> dict[str, list[str]] | None:
    """The query of the bundle's ``relation`` link, None without one."""
    urls = [x["url"] for x in bundle["link"] if x["relation"] == relation]
    return parse_qs(urlsplit(urls[0]).query) if urls else None


async def test_type_history_is_every_records_versions_newest_first(
    client: httpx.AsyncClient, audit: FakeServices
) -> None:
    answer = await client.get("/Patient/_history", headers=BEARER)
    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    Bundle.model_validate(bundle)
    assert bundle["type"] == "history"
    assert [e["fullUrl"].rsplit("/", 3)[-3:] for e in bundle["entry"]] == [
        [SECOND, "_history", "2"], [SECOND, "_history", "1"], [FIRST, "_history", "1"],
    ]  # fmt: skip
    assert [e["request"] for e in bundle["entry"]] == [
        {"method": "PUT", "url": f"Patient/{SECOND}"}, {"method": "POST", "url": "Patient"},
        {"method": "POST", "url": "Patient"},
    ]  # fmt: skip
    assert bundle["total"] == 3  # the only page
    assert link(bundle, "next") is None
    # The path is no record id: History is asked by type, newest first, a page of 20.
    call = audit.calls[0]
    assert (call.service, call.method) == ("audit", "History")
    assert call.request == {"aggregate_type": "Patient", "newest_first": True, "page_size": 20}


async def test_type_history_pages_by_count_and_the_next_links_token(
    client: httpx.AsyncClient, audit: FakeServices
) -> None:
    audit.answers["History"] = [history(NEWEST_FIRST[:2], "p2"), history(NEWEST_FIRST[2:])]
    first = (await client.get("/Patient/_history", params={"_count": "2"}, headers=BEARER)).json()
    Bundle.model_validate(first)
    assert len(first["entry"]) == 2
    assert "total" not in first  # more follow: the count of every page is not known
    assert link(first, "next") == {"_count": ["2"], "_page_token": ["p2"]}
    assert audit.calls[0].request["page_size"] == 2

    second = (await client.get("/Patient/_history", params=link(first, "next"),
                               headers=BEARER)).json()  # fmt: skip
    assert [e["fullUrl"] for e in second["entry"]] == [
        f"http://gateway/fhir/r4/Patient/{FIRST}/_history/1"
    ]
    history_calls = [c for c in audit.calls if c.method == "History"]
    assert history_calls[-1].request["page_token"] == "p2"  # noqa: S105 - not a secret
    assert link(second, "next") is None


async def test_type_history_leaves_out_what_is_no_version_and_fills_the_page(
    client: httpx.AsyncClient, audit: FakeServices
) -> None:
    assessed = change(2, "PatientMatchAssessed", aggregate_id=FIRST)
    audit.answers["History"] = [history([NEWEST_FIRST[0], assessed], "p2"),
                                history(NEWEST_FIRST[1:2], "p3")]  # fmt: skip
    answer = await client.get("/Patient/_history", params={"_count": "2"}, headers=BEARER)
    bundle = answer.json()
    assert [e["response"]["etag"] for e in bundle["entry"]] == ['W/"2"', 'W/"1"']
    assert all("PatientMatchAssessed" not in str(e) for e in bundle["entry"])
    # The second call asks for what the assessment left short, after the first page's token.
    second = [c for c in audit.calls if c.method == "History"][1].request
    assert (second["page_size"], second["page_token"]) == (1, "p2")
    assert link(bundle, "next") == {"_count": ["2"], "_page_token": ["p3"]}


async def test_since_asks_for_the_changes_recorded_at_or_after_it(
    client: httpx.AsyncClient, audit: FakeServices
) -> None:
    since = "2026-12-07T11:02:00.5+01:00"
    answer = await client.get("/ServiceRequest/_history", params={"_since": since},
                              headers=BEARER)  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert audit.calls[0].request == {
        "aggregate_type": "Order", "newest_first": True, "page_size": 20,
        "recorded": {"since": "2026-12-07T10:02:00.500000Z"},
    }  # fmt: skip
    assert "entry" not in answer.json()  # History answered no Order's change
    assert link(answer.json(), "self") == {"_since": ["2026-12-07T10:02:00.500000Z"]}


@pytest.mark.parametrize("params", [{"_since": "2026-12-07"}, {"_since": "2026-12-07T10:00:00"},
                                    {"_since": "yesterday"}, {"_since": ""},
                                    {"_since": "9999-12-31T23:59:59-01:00"}])  # fmt: skip
async def test_a_since_that_is_not_an_instant_with_a_zone_is_a_400_naming_it(
    client: httpx.AsyncClient, audit: FakeServices, params: dict[str, str]
) -> None:
    for path in ("/Patient/_history", f"/Patient/{FIRST}/_history"):
        refused = outcome(await client.get(path, params=params, headers=BEARER), 400)
        assert refused.issue[0].expression == ["_since"]
    assert audit.calls == []


@pytest.mark.parametrize("params", [{"_count": "0"}, {"_count": "101"}, {"_count": "x"},
                                    {"_page_token": "not a token!"}])  # fmt: skip
async def test_a_count_or_page_token_out_of_reach_is_a_400(
    client: httpx.AsyncClient, audit: FakeServices, params: dict[str, str]
) -> None:
    for path in ("/DiagnosticReport/_history", f"/DiagnosticReport/{FIRST}/_history"):
        outcome(await client.get(path, params=params, headers=BEARER), 400)
    assert audit.calls == []


async def test_type_history_needs_the_types_search_scope(
    client: httpx.AsyncClient, audit: FakeServices
) -> None:
    refused = await client.get("/Patient/_history", headers={"authorization": "Bearer reader"})
    outcome(refused, 403)
    assert "user/Patient.s" in refused.headers["www-authenticate"]
    outcome(await client.get("/Patient/_history"), 401)
    assert audit.calls == []


async def test_type_history_refused_by_the_audit_service_is_403(
    client: httpx.AsyncClient, audit: FakeServices
) -> None:
    audit.answers["History"] = [DownstreamAnswer("PERMISSION_DENIED", "auditors only")]
    outcome(await client.get("/Patient/_history", headers=BEARER), 403)


async def test_contents_come_with_the_versions_of_each_record_the_caller_may_read(
    client: httpx.AsyncClient, audit: FakeServices
) -> None:
    # The second patient's newest version is read first, then the first patient's (refused);
    # only then the second patient's earlier version.
    audit.answers["GetPatient"] = [
        record(SECOND, 2), DownstreamAnswer("PERMISSION_DENIED", "not on the care team"),
        record(SECOND, 1),
    ]  # fmt: skip
    answer = await client.get("/Patient/_history", headers=BEARER)
    assert answer.status_code == 200, answer.text
    entries = answer.json()["entry"]
    assert [e.get("resource", {}).get("id") for e in entries] == [SECOND, SECOND, None]
    for entry in entries[:2]:
        Patient.model_validate(entry["resource"])
    reads = [(c.request["patient_id"], c.request["version"]) for c in audit.calls
             if c.method == "GetPatient"]  # fmt: skip
    assert reads == [(SECOND, 2), (FIRST, 1), (SECOND, 1)]


async def test_an_instance_history_pages_by_count_newest_first(
    client: httpx.AsyncClient, audit: FakeServices
) -> None:
    audit.answers["History"] = [history(NEWEST_FIRST[:2], "p2")]
    answer = await client.get(f"/Patient/{SECOND}/_history", params={"_count": "2"},
                              headers=BEARER)  # fmt: skip
    assert answer.status_code == 200, answer.text
    Bundle.model_validate(answer.json())
    assert audit.calls[0].request == {"aggregate_id": SECOND, "newest_first": True,
                                      "page_size": 2}  # fmt: skip
    assert link(answer.json(), "next") == {"_count": ["2"], "_page_token": ["p2"]}
    assert answer.json()["link"][0]["url"].startswith(
        f"http://gateway/fhir/r4/Patient/{SECOND}/_history"
    )


async def test_an_instance_history_since_a_time_without_changes_is_empty_not_404(
    client: httpx.AsyncClient, audit: FakeServices
) -> None:
    audit.answers["History"] = [history([]), history(NEWEST_FIRST[2:])]
    since = {"_since": "2030-01-01T00:00:00Z"}
    answer = await client.get(f"/Patient/{FIRST}/_history", params=since, headers=BEARER)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["total"], answer.json().get("entry")) == (0, None)
    asked, probe = audit.calls
    assert asked.request["recorded"] == {"since": "2030-01-01T00:00:00Z"}
    assert "recorded" not in probe.request  # was it ever recorded?
    audit.answers["History"] = [history([])]
    outcome(await client.get(f"/Patient/{FIRST}/_history", params=since, headers=BEARER), 404)
