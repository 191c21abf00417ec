"""``_summary``, ``_elements`` and ``_format``: the subsets themselves, then the FHIR API over a
fake patient service (what reaches the service, what comes back)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.patient import Patient
from hypothesis import given
from hypothesis import strategies as st

from gateway.entrypoints.fhir.formats import check_format
from gateway.entrypoints.fhir.outcomes import FhirError
from gateway.entrypoints.fhir.subsetting import (
    SUBSETTED,
    Subset,
    requested_subset,
    subset_answer,
    summary_elements,
)

from . import test_fhir_api as api
from .conftest import outcome
from .test_fhir_api import PATIENT_ID, FakePatientService, bearer

pytestmark = pytest.mark.unit

# test_fhir_api's fake patient service and the FHIR client over it, used here by name.
service, client = api.service, api.client

PATIENT: dict[str, Any] = {
    "resourceType": "Patient", "id": PATIENT_ID, "meta": {"versionId": "3"},
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">A</div>'},
    "identifier": [{"system": "urn:mrn:test", "value": "1"}],
    "name": [{"family": "Okafor", "given": ["Ada"]}], "gender": "female",
    "birthDate": "1990-01-02", "maritalStatus": {"text": "married"},
    "communication": [{"language": {"text": "Igbo"}}],
    "contact": [{"name": {"family": "Okafor"}}],
}  # fmt: skip
ORDER: dict[str, Any] = {
    "resourceType": "ServiceRequest", "id": str(uuid.uuid4()), "meta": {"versionId": "1"},
    "text": PATIENT["text"], "status": "active", "intent": "order", "priority": "urgent",
    "subject": {"reference": f"Patient/{PATIENT_ID}"},
    "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
    "note": [{"text": "fasting"}],
}  # fmt: skip


def searchset(*resources: dict[str, Any], total: int | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle", "type": "searchset",
        "link": [{"relation": "self", "url": "http://x/Patient?family=a"},
                 {"relation": "next", "url": "http://x/Patient?family=a&_offset=1"}],
        "entry": [{"fullUrl": f"http://x/Patient/{r['id']}", "resource": r,
                   "search": {"mode": "match"}} for r in resources],
    }  # fmt: skip
    if total is not None:
        bundle["total"] = total
    return bundle


def subset(**params: str) -> Subset:
    return requested_subset(list(params.items()), bundle=True)


def test_summary_true_keeps_the_r4_summary_elements_tagged_subsetted() -> None:
    summary = subset_answer(PATIENT, subset(_summary="true"))
    assert set(summary) == {"resourceType", "id", "meta", "identifier", "name", "gender",
                            "birthDate"}  # fmt: skip
    assert summary["meta"] == {"versionId": "3", "tag": [SUBSETTED]}
    Patient.model_validate(summary)


def test_the_summary_flags_are_r4s() -> None:
    patient = summary_elements("Patient")
    assert {"identifier", "active", "name", "telecom", "gender", "birthDate", "address",
            "link", "deceasedBoolean", "managingOrganization"} <= patient  # fmt: skip
    assert not {"text", "photo", "contact", "communication", "maritalStatus"} & patient
    observation = summary_elements("Observation")
    assert {"status", "code", "subject", "valueQuantity", "effectiveDateTime"} <= observation
    assert not {"note", "referenceRange", "specimen", "interpretation"} & observation


def test_summary_text_keeps_the_text_and_the_mandatory_elements() -> None:
    text = subset_answer(ORDER, subset(_summary="text"))
    assert set(text) == {"resourceType", "id", "meta", "text", "status", "intent", "subject"}
    assert text["meta"]["tag"] == [SUBSETTED]


def test_summary_data_leaves_out_only_the_text() -> None:
    data = subset_answer(ORDER, subset(_summary="data"))
    assert set(data) == set(ORDER) - {"text"}
    assert data["meta"] == {"versionId": "1", "tag": [SUBSETTED]}


def test_summary_false_and_no_parameter_answer_the_whole_resource_untagged() -> None:
    assert subset_answer(PATIENT, subset(_summary="false")) == PATIENT
    assert subset_answer(PATIENT, subset()) == PATIENT


def test_elements_keep_the_named_ones_with_id_and_meta() -> None:
    kept = subset_answer(PATIENT, subset(_elements="name, gender"))
    assert set(kept) == {"resourceType", "id", "meta", "name", "gender"}
    assert kept["meta"]["tag"] == [SUBSETTED]


def test_elements_name_a_choice_by_its_stem() -> None:
    observation = {"resourceType": "Observation", "id": "o-1", "status": "final",
                   "code": {"text": "glucose"}, "valueQuantity": {"value": 5.4},
                   "effectiveDateTime": "2026-12-01"}  # fmt: skip
    kept = subset_answer(observation, subset(_elements="value"))
    assert set(kept) == {"resourceType", "id", "meta", "valueQuantity"}


def test_a_bundle_subsets_its_entries_never_itself() -> None:
    bundle = subset_answer(searchset(PATIENT, total=1), subset(_elements="gender"))
    assert bundle["total"] == 1
    assert [link["relation"] for link in bundle["link"]] == ["self", "next"]
    [entry] = bundle["entry"]
    assert set(entry["resource"]) == {"resourceType", "id", "meta", "gender"}
    assert entry["fullUrl"].endswith(PATIENT_ID)
    Bundle.model_validate(bundle)


def test_count_answers_the_total_without_entries() -> None:
    counted = subset_answer(searchset(PATIENT, PATIENT, total=2), subset(_summary="count"))
    assert counted["total"] == 2
    assert "entry" not in counted
    assert [link["relation"] for link in counted["link"]] == ["self"]
    Bundle.model_validate(counted)


def test_count_of_more_matches_than_a_page_is_a_422() -> None:
    with pytest.raises(FhirError) as refused:
        subset_answer(searchset(PATIENT), subset(_summary="count"))
    assert refused.value.status == 422
    assert refused.value.issues[0].expression == ("_summary",)


@pytest.mark.parametrize(("params", "parameter"), [
    ([("_summary", "maybe")], "_summary"),
    ([("_summary", "TRUE")], "_summary"),
    ([("_summary", "true"), ("_summary", "false")], "_summary"),
    ([("_summary", "true"), ("_elements", "name")], "_elements"),
    ([("_elements", "")], "_elements"),
    ([("_elements", "name.family")], "_elements"),
    ([("_elements", "<script>")], "_elements"),
])  # fmt: skip
def test_a_subset_it_cannot_make_is_a_400_naming_the_parameter(
    params: list[tuple[str, str]], parameter: str
) -> None:
    with pytest.raises(FhirError) as refused:
        requested_subset(params, bundle=True)
    assert refused.value.status == 400
    assert refused.value.issues[0].expression == (parameter,)
    assert parameter in refused.value.issues[0].diagnostics


def test_count_of_a_single_resource_is_a_400() -> None:
    with pytest.raises(FhirError) as refused:
        requested_subset([("_summary", "count")], bundle=False)
    assert refused.value.status == 400


@given(st.sets(st.sampled_from(sorted(set(PATIENT) - {"resourceType", "id", "meta"}))))
def test_any_elements_subset_keeps_exactly_those_and_stays_a_valid_patient(
    names: set[str],
) -> None:
    params = [("_elements", ",".join(sorted(names)))] if names else []
    kept = subset_answer(PATIENT, requested_subset(params, bundle=False))
    assert set(kept) == (names | {"resourceType", "id", "meta"} if names else set(PATIENT))
    assert all(kept[name] == PATIENT[name] for name in names)
    Patient.model_validate(kept)


@pytest.mark.parametrize(("params", "accept"), [
    ([], ""), ([], "application/fhir+json"), ([], "application/json; q=0.9"), ([], "*/*"),
    ([("_format", "json")], ""), ([("_format", "application/fhir+json")], ""),
    ([("_format", "application/fhir json")], ""), ([("_format", "application/json")], ""),
    ([("_format", "json")], "application/fhir+xml"),
])  # fmt: skip
def test_json_formats_are_served(params: list[tuple[str, str]], accept: str) -> None:
    check_format(params, accept)


@pytest.mark.parametrize(("params", "accept"), [
    ([("_format", "xml")], ""), ([("_format", "application/fhir+xml")], "application/json"),
    ([("_format", "ttl")], ""), ([("_format", "html")], ""),
    ([], "application/fhir+xml"), ([], "text/html, application/xml"),
])  # fmt: skip
def test_any_other_format_is_a_406(params: list[tuple[str, str]], accept: str) -> None:
    with pytest.raises(FhirError) as refused:
        check_format(params, accept)
    assert refused.value.status == 406


async def test_a_read_with_summary_true_answers_the_summary(client: httpx.AsyncClient) -> None:
    answer = await client.get(f"/Patient/{PATIENT_ID}?_summary=true", headers=bearer())
    assert answer.status_code == 200, answer.text
    assert answer.headers["etag"] == 'W/"3"'
    assert answer.headers["content-type"].startswith("application/fhir+json")
    Patient.model_validate(answer.json())
    assert SUBSETTED in answer.json()["meta"]["tag"]


async def test_a_search_with_summary_count_answers_the_total(client: httpx.AsyncClient) -> None:
    answer = await client.get("/Patient?family=Okafor&_summary=count", headers=bearer())
    assert answer.status_code == 200, answer.text
    assert answer.json()["total"] == 1
    assert "entry" not in answer.json()


async def test_answer_parameters_are_no_unknown_search_parameters(
    client: httpx.AsyncClient,
) -> None:
    strict = bearer(prefer="handling=strict")
    answer = await client.get("/Patient?family=Okafor&_elements=name&_format=json",
                              headers=strict)  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert set(answer.json()["entry"][0]["resource"]) == {"resourceType", "id", "meta", "name"}
    assert "_elements" not in answer.json()["link"][0]["url"]


async def test_refused_formats_and_subsets_call_no_service(
    client: httpx.AsyncClient, service: FakePatientService
) -> None:
    path = f"/Patient/{PATIENT_ID}"
    xml = outcome(await client.get(f"{path}?_format=xml", headers=bearer()), 406)
    assert xml.issue[0].expression == ["_format"]
    accept = bearer(accept="application/fhir+xml")
    assert outcome(await client.get(path, headers=accept), 406).issue[0].code == "not-supported"
    unknown = outcome(await client.get(f"{path}?_summary=maybe", headers=bearer()), 400)
    assert unknown.issue[0].expression == ["_summary"]
    outcome(await client.get(f"{path}?_summary=count", headers=bearer()), 400)
    assert service.calls == []


async def test_format_json_wins_over_an_accept_without_json(client: httpx.AsyncClient) -> None:
    answer = await client.get(f"/Patient/{PATIENT_ID}", params={"_format": "application/fhir+json"},
                              headers=bearer(accept="application/fhir+xml"))  # fmt: skip
    assert answer.status_code == 200, answer.text


async def test_the_statement_says_json_and_the_answer_parameters(
    client: httpx.AsyncClient,
) -> None:
    statement = (await client.get("/metadata")).json()
    assert statement["format"] == ["json"]
    served = {p["name"] for p in statement["rest"][0]["searchParam"]}
    assert served == {"_summary", "_elements"}
    assert "_format" in statement["rest"][0]["documentation"]
    assert (await client.get("/metadata?_format=xml")).status_code == 406
