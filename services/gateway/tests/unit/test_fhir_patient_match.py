"""$match's parameters and entries, and the rules of a ``Patient.link`` change: pure functions,
no service."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from gateway.entrypoints.fhir.outcomes import FhirError
from gateway.entrypoints.fhir.patient_links import LinkChange, link_change, wanted_links
from gateway.entrypoints.fhir.patient_match import (
    MATCH_EXPLANATION,
    MATCH_GRADE,
    match_bundle,
    match_parameters,
    match_search,
    score,
)

pytestmark = pytest.mark.unit

PATIENT = {"resourceType": "Patient", "name": [{"family": "Okafor"}]}
ME, OTHER, THIRD = (str(uuid.uuid4()) for _ in range(3))


def parameters(*extra: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters",
            "parameter": [{"name": "resource", "resource": PATIENT}, *extra]}  # fmt: skip


def refused(call: Any, status: int) -> list[str]:
    with pytest.raises(FhirError) as failed:
        call()
    assert failed.value.status == status
    return list(failed.value.issues[0].expression)


def test_match_parameters_read_the_patient_the_count_and_only_certain() -> None:
    body = parameters({"name": "count", "valueInteger": 3},
                      {"name": "onlyCertainMatches", "valueBoolean": True})  # fmt: skip
    assert match_parameters(body) == (PATIENT, True, 3)
    assert match_parameters(parameters()) == (PATIENT, False, 10)


@pytest.mark.parametrize("body", [
    {"resourceType": "Patient"},
    {"resourceType": "Parameters"},
    parameters({"name": "count", "valueInteger": 0}),
    parameters({"name": "count", "valueInteger": 51}),
    parameters({"name": "count", "valueInteger": True}),
    parameters({"name": "onlyCertainMatches", "valueBoolean": "yes"}),
    parameters({"name": "limit", "valueInteger": 3}),
    parameters({"name": "resource", "resource": PATIENT}),
])  # fmt: skip
def test_a_match_body_it_cannot_use_is_a_400_naming_where(body: dict[str, Any]) -> None:
    assert refused(lambda: match_parameters(body), 400)


def test_a_candidate_is_scored_graded_and_explained() -> None:
    candidate = {"patient_id": ME, "score": 14.5, "grade": "MATCH_GRADE_MATCH",
                 "rule": "same-identifier",
                 "fields": [{"field": "family", "level": "exact", "weight": 6.2}]}  # fmt: skip
    search = match_search(candidate)
    assert search["mode"] == "match"
    assert 0.99 < search["score"] <= 1
    extensions = {x["url"]: x for x in search["extension"]}
    assert extensions[MATCH_GRADE]["valueCode"] == "certain"
    parts = extensions[MATCH_EXPLANATION]["extension"]
    assert [p["url"] for p in parts] == ["weight", "rule", "field"]
    resource = {"resourceType": "Patient", "id": ME}
    Bundle.model_validate(match_bundle([(resource, search)], "http://gateway/fhir/r4"))
    assert score(0) == 0.5
    assert score(-1000) == 0.0


def test_links_wanted_are_other_patients_by_seealso() -> None:
    link = [{"other": {"reference": f"Patient/{OTHER}"}, "type": "seealso"}]
    assert wanted_links({"link": link}, ME) == {OTHER}
    assert wanted_links({}, ME) == set()
    replaced = [{"other": {"reference": f"Patient/{OTHER}"}, "type": "replaced-by"}]
    assert refused(lambda: wanted_links({"link": replaced}, ME), 422) == ["Patient.link[0].type"]
    for reference in (f"Patient/{ME}", "Patient/x", f"Group/{OTHER}"):
        self_link = [{"other": {"reference": reference}, "type": "seealso"}]
        assert refused(lambda: wanted_links({"link": self_link}, ME),  # noqa: B023 - called now
                       422) == ["Patient.link[0].other"]  # fmt: skip


def test_an_update_changes_one_link_at_most() -> None:
    assert link_change([OTHER], {OTHER}) is None
    assert link_change([], {OTHER}) == LinkChange(OTHER, linked=True)
    assert link_change([OTHER], set()) == LinkChange(OTHER, linked=False)
    assert refused(lambda: link_change([], {OTHER, THIRD}), 422) == ["Patient.link"]
    assert refused(lambda: link_change([OTHER], {THIRD}), 422) == ["Patient.link"]
