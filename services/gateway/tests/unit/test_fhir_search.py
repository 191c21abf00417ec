"""Search parameters to SearchPatients, ListOrders and ListResults requests, and the searchset
Bundle's pages."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from clinical_testing.strategies import FUZZ
from fhir.resources.R4B.bundle import Bundle
from hypothesis import given
from hypothesis import strategies as st

from gateway.entrypoints.fhir import result_api, service_request_api
from gateway.entrypoints.fhir.capability import capability_statement
from gateway.entrypoints.fhir.listing import MAX_COUNT
from gateway.entrypoints.fhir.order_result_search import dated_query
from gateway.entrypoints.fhir.outcomes import FhirError
from gateway.entrypoints.fhir.patient_resource import resource_from_record
from gateway.entrypoints.fhir.patient_search import (
    MAX_MATCHES,
    PARAMETERS,
    merged,
    patient_query,
    searchset,
)

pytestmark = pytest.mark.unit
BASE = "http://gateway/fhir/r4"


def records(count: int) -> list[dict[str, Any]]:
    ids = sorted(str(uuid.uuid4()) for _ in range(count))
    return [{"patient_id": i, "version": "1", "demographics": {"name": {"family": "Okafor"}}}
            for i in ids]  # fmt: skip


def page(params: list[tuple[str, str]], matches: list[dict[str, Any]]) -> dict[str, Any]:
    query = patient_query(params, strict=False)
    found = merged(query, [{"patients": matches[: query.fetch]}])
    resources = [resource_from_record(r) for r in found.window(query)]
    bundle = searchset(query, found, resources, BASE)
    Bundle.model_validate(bundle)
    return bundle


def links(bundle: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    return {link["relation"]: parse_qs(urlsplit(link["url"]).query) for link in bundle["link"]}


def test_parameters_become_the_services_criteria() -> None:
    params = [("family", "Okafor"), ("given", "Ada"), ("birthdate", "eq1990-01-02"),
              ("identifier", "urn:mrn|123"), ("_count", "5")]  # fmt: skip
    query = patient_query(params, strict=False)
    assert query.requests == ({
        "family_name": "Okafor", "given_name": "Ada", "birth_date": "1990-01-02",
        "identifier": {"system": "urn:mrn", "value": "123"}, "page_size": 6,
    },)  # fmt: skip


def test_name_searches_the_family_and_the_given_names() -> None:
    query = patient_query([("name", "Ada")], strict=False)
    assert [r.get("family_name") for r in query.requests] == ["Ada", None]
    assert [r.get("given_name") for r in query.requests] == [None, "Ada"]


def test_unknown_parameters_are_ignored_unless_the_caller_is_strict() -> None:
    assert patient_query([("family", "A"), ("colour", "b")], strict=False).applied == (
        ("family", "A"),
    )
    with pytest.raises(FhirError) as refused:
        patient_query([("family", "A"), ("colour", "b")], strict=True)
    assert refused.value.status == 400


@pytest.mark.parametrize("params", [
    [], [("_count", "5")], [("birthdate", "ge1990-01-01")], [("birthdate", "1990")],
    [("identifier", "123")], [("family", "A"), ("family", "B")], [("family", "A,B")],
    [("family", "A"), ("_count", "0")], [("family", "A"), ("_count", "x")],
    [("family", "A"), ("_count", "²")], [("family", "A"), ("_offset", "9" * 40)],
    [("family", "A"), ("_offset", "200")], [("name", "A"), ("family", "B")],
])  # fmt: skip
def test_a_search_the_service_cannot_answer_is_a_400(params: list[tuple[str, str]]) -> None:
    with pytest.raises(FhirError) as refused:
        patient_query(params, strict=False)
    assert refused.value.status == 400


def test_a_first_page_links_the_next_and_a_last_page_counts_the_total() -> None:
    matches = records(5)
    first = page([("family", "Okafor"), ("_count", "2")], matches)
    assert [e["resource"]["id"] for e in first["entry"]] == [r["patient_id"] for r in matches[:2]]
    assert links(first)["next"]["_offset"] == ["2"]
    assert "total" not in first
    last = page([("family", "Okafor"), ("_count", "2"), ("_offset", "4")], matches)
    assert [e["resource"]["id"] for e in last["entry"]] == [matches[4]["patient_id"]]
    assert "next" not in links(last)
    assert links(last)["previous"]["_offset"] == ["2"]
    assert last["total"] == 5
    assert links(last)["self"] == {"family": ["Okafor"], "_count": ["2"], "_offset": ["4"]}


def test_the_two_name_searches_merge_by_id_once_each() -> None:
    matches = records(4)
    query = patient_query([("name", "Okafor"), ("_count", "3")], strict=False)
    found = merged(query, [{"patients": matches[:2]}, {"patients": matches[1:]}])
    assert [r["patient_id"] for r in found.records] == [r["patient_id"] for r in matches]
    assert found.complete


def test_the_capability_statement_lists_exactly_the_search_parameters() -> None:
    statement = capability_statement(BASE, software_version="0.1.0", date="2026-12-07")
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    # _page_token pages the list of every patient (a search without criteria).
    assert {p["name"] for p in patient["searchParam"]} == {*PARAMETERS, "_page_token"}
    assert {i["code"] for i in patient["interaction"]} == {
        "read", "vread", "history-instance", "history-type", "search-type", "create", "update",
    }  # fmt: skip
    assert statement["fhirVersion"] == "4.0.1"


def test_the_capability_statement_lists_each_resource_with_its_interactions_and_parameters() -> (
    None
):
    statement = capability_statement(BASE, software_version="0.1.0", date="2026-12-07")
    served = {r["type"]: r for r in statement["rest"][0]["resource"]}
    interactions = {kind: {i["code"] for i in r.get("interaction", ())}
                    for kind, r in served.items()}  # fmt: skip
    assert interactions == {
        "Patient": {"read", "vread", "history-instance", "history-type", "search-type", "create",
                    "update"},
        "ServiceRequest": {"read", "vread", "history-instance", "history-type", "search-type",
                           "create", "update"},
        "DiagnosticReport": {"read", "vread", "history-instance", "history-type", "search-type"},
        "Observation": {"read", "vread", "search-type"},
        "Provenance": {"search-type"},
        "AuditEvent": {"search-type"},
        "Group": set(),  # its $export only
        "Subscription": {"read", "create", "delete"},
    }  # fmt: skip
    assert {p["name"] for p in served["ServiceRequest"]["searchParam"]} == {
        "patient", "subject", "status", "code", "authored", "_count", "_page_token"
    }  # fmt: skip
    assert {p["name"] for p in served["DiagnosticReport"]["searchParam"]} == {
        "patient", "subject", "based-on", "code", "date", "status", "_count", "_page_token"
    }  # fmt: skip
    assert {p["name"] for p in served["Observation"]["searchParam"]} == {
        "patient", "subject", "based-on", "code", "date", "status", "category", "_count",
        "_page_token",
    }  # fmt: skip
    assert [o["name"] for o in served["ServiceRequest"]["operation"]] == ["sign"]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(PARAMETERS) | st.text(max_size=8), st.text(max_size=12)),
                max_size=5), st.booleans())  # fmt: skip
def test_any_parameters_are_a_query_or_a_400(params: list[tuple[str, str]], strict: bool) -> None:
    try:
        query = patient_query(params, strict=strict)
    except FhirError as refused:
        assert refused.status == 400  # noqa: PT017 - a property: refused or not, both are fine
        return
    assert 1 <= query.fetch <= MAX_MATCHES
    assert all(0 < r["page_size"] <= MAX_MATCHES for r in query.requests)


CLINICAL_SEARCHES = {
    "ServiceRequest": (service_request_api.CRITERIA, (), "authored", service_request_api.AUTHORED),
    "DiagnosticReport": (result_api.CRITERIA[result_api.REPORT], (), "date", result_api.EFFECTIVE),
    "Observation": (result_api.CRITERIA[result_api.OBSERVATION], result_api.FILTERS, "date",
                    result_api.EFFECTIVE),
}  # fmt: skip
CLINICAL_PARAMETERS = ("patient", "subject", "status", "based-on", "code", "category", "_count",
                       "_page_token", "authored", "date")  # fmt: skip
# What a List request of these searches may hold.
LIST_FIELDS = {"page_size", "page_token", "patient_id", "status", "order_id", "test_codes",
               "codes", "report_codes", "statuses", "authored_from", "authored_to",
               "effective_from", "effective_to"}  # fmt: skip


@FUZZ
@given(st.sampled_from(sorted(CLINICAL_SEARCHES)),
       st.lists(st.tuples(st.sampled_from(CLINICAL_PARAMETERS) | st.text(max_size=8),
                          st.text(max_size=40)), max_size=5), st.booleans())  # fmt: skip
def test_any_order_or_result_search_is_a_list_request_or_a_400(
    kind: str, params: list[tuple[str, str]], strict: bool
) -> None:
    criteria, filters, dated, window = CLINICAL_SEARCHES[kind]
    try:
        query = dated_query(params, criteria, dated=dated, window=window, strict=strict,
                            filters=filters)  # fmt: skip
    except FhirError as refused:
        assert refused.status == 400  # noqa: PT017 - a property: refused or not, both are fine
        return
    assert 1 <= query.values["page_size"] <= MAX_COUNT
    assert set(query.values) <= LIST_FIELDS
