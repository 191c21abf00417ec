"""FHIR R4 Patient <-> clinical.patient.v1 Demographics: round trips, element paths, refusals."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import pytest
from clinical_testing.strategies import FUZZ
from fhir.resources.R4B.patient import Patient
from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st

from clinical.patient.v1 import patient_pb2 as pb
from gateway.entrypoints.fhir.outcomes import FhirError
from gateway.entrypoints.fhir.patient_resource import (
    demographics_from_resource,
    resource_from_record,
)

pytestmark = pytest.mark.unit

words = st.text(st.characters(categories=("L", "N")), min_size=1, max_size=12)
dates = st.dates().map(lambda d: d.isoformat())
sexes = st.sampled_from([
    pb.ADMINISTRATIVE_SEX_MALE, pb.ADMINISTRATIVE_SEX_FEMALE,
    pb.ADMINISTRATIVE_SEX_OTHER, pb.ADMINISTRATIVE_SEX_UNKNOWN,
])  # fmt: skip
identifiers = st.lists(
    st.builds(pb.Identifier, system=words.map(lambda w: f"urn:system:{w}"), value=words),
    max_size=3, unique_by=lambda i: i.system,
)  # fmt: skip
demographics = st.builds(
    pb.Demographics,
    name=st.builds(pb.HumanName, given=st.lists(words, max_size=3), family=words,
                   prefix=st.lists(words, max_size=2), suffix=st.lists(words, max_size=2)),
    birth_date=dates | st.just(""),
    sex=sexes,
    address=st.builds(pb.Address, lines=st.lists(words, max_size=3), city=words,
                      district=words | st.just(""), postal_code=words, country=words),
    phone=st.just("") | st.from_regex(r"\+[0-9]{6,12}", fullmatch=True),
    email=st.just("") | words.map(lambda w: f"{w}@example.org"),
    identifiers=identifiers,
)  # fmt: skip


ELEMENTS = st.sampled_from([
    "id", "meta", "name", "telecom", "address", "identifier", "gender", "birthDate", "link",
    "family", "given", "system", "value", "line", "postalCode", "use",
])  # fmt: skip


def as_json(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def record(message: pb.Demographics, version: int = 3) -> dict[str, Any]:
    patient = pb.Patient(patient_id=str(uuid.uuid4()), version=version, demographics=message)
    return as_json(patient)


@FUZZ
@given(demographics)
def test_a_record_read_as_fhir_and_written_back_keeps_its_demographics(
    message: pb.Demographics,
) -> None:
    resource = resource_from_record(record(message))
    Patient.model_validate(resource)  # what clients receive is valid R4(B)
    back = json_format.ParseDict(demographics_from_resource(resource).values, pb.Demographics())
    assert back == message


# What the service holds: its rules check dates, phones, emails and identifiers; any text else.
anything = st.text(max_size=10)
held = st.builds(
    pb.Demographics,
    name=st.builds(pb.HumanName, given=st.lists(anything, max_size=3), family=anything,
                   prefix=st.lists(anything, max_size=2), suffix=st.lists(anything, max_size=2)),
    birth_date=dates | st.just(""),
    address=st.builds(pb.Address, lines=st.lists(anything, max_size=3), city=anything,
                      district=anything, postal_code=anything, country=anything),
    identifiers=st.lists(st.builds(pb.Identifier, system=anything.filter(str.strip),
                                   value=anything.filter(str.strip)), max_size=3),
)  # fmt: skip


@FUZZ
@given(held)
def test_any_record_the_service_holds_reads_as_a_valid_patient(message: pb.Demographics) -> None:
    Patient.model_validate(resource_from_record(record(message)))


@FUZZ
@given(st.dictionaries(ELEMENTS | st.text(max_size=12), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ELEMENTS, inner, max_size=3),
    max_leaves=8)).map(lambda d: {**d, "resourceType": "Patient"}))  # fmt: skip
def test_any_json_is_read_or_refused_with_a_400_or_422(resource: dict[str, Any]) -> None:
    refused = refusal_of(resource)
    if refused is not None:
        assert refused.status in {400, 422}
        assert all(i.expression and i.expression[0].startswith("Patient") for i in refused.issues)


def refusal_of(resource: dict[str, Any]) -> FhirError | None:
    try:
        demographics_from_resource(resource)
    except FhirError as refused:
        return refused
    return None


def test_the_resource_carries_id_version_links_and_a_known_sex() -> None:
    linked = str(uuid.uuid4())
    name = pb.Demographics(name=pb.HumanName(family="Okafor"))
    patient = pb.Patient(patient_id=str(uuid.uuid4()), version=7, linked_patient_ids=[linked],
                         demographics=name)  # fmt: skip
    resource = resource_from_record(as_json(patient))
    assert resource["id"] == patient.patient_id
    assert resource["meta"] == {"versionId": "7"}
    assert resource["gender"] == "unknown"
    assert resource["link"] == [{"other": {"reference": f"Patient/{linked}"}, "type": "seealso"}]
    assert "telecom" not in resource
    assert "address" not in resource


def test_phone_and_email_become_telecom_and_back() -> None:
    resource = {"resourceType": "Patient", "telecom": [
        {"system": "email", "value": "a@example.org", "use": "home"},
        {"system": "phone", "value": "+4420000000"},
    ]}  # fmt: skip
    incoming = demographics_from_resource(resource)
    assert incoming.values["email"] == "a@example.org"
    assert incoming.values["phone"] == "+4420000000"
    assert incoming.expression_of("demographics.phone") == "Patient.telecom[1].value"
    assert incoming.expression_of("demographics.email") == "Patient.telecom[0].value"


@pytest.mark.parametrize(("field", "expression"), [
    ("demographics.name.given[1]", "Patient.name[0].given[1]"),
    ("demographics.name", "Patient.name[0]"),
    ("demographics.birth_date", "Patient.birthDate"),
    ("demographics.address.lines[0]", "Patient.address[0].line[0]"),
    ("demographics.address.postal_code", "Patient.address[0].postalCode"),
    ("demographics.identifiers[1]", "Patient.identifier[1]"),
    ("demographics.sex", "Patient.gender"),
    ("request_id", "Patient"),
])  # fmt: skip
def test_a_service_field_violation_names_the_fhir_element(field: str, expression: str) -> None:
    incoming = demographics_from_resource({
        "resourceType": "Patient", "name": [{"family": "Okafor", "given": ["A", "B"]}],
        "address": [{"line": ["1 Main St"], "postalCode": "N1"}],
    })  # fmt: skip
    assert incoming.expression_of(field) == expression


def test_an_element_without_source_names_the_element_list() -> None:
    incoming = demographics_from_resource({"resourceType": "Patient", "birthDate": "2000-01-02"})
    assert incoming.expression_of("demographics.name") == "Patient.name"


@pytest.mark.parametrize(("resource", "expression"), [
    ({"birthDate": "1999-13-40"}, "Patient.birthDate"),
    ({"name": [{"family": 7}]}, "Patient.name[0].family"),
    ({"colour": "blue"}, "Patient.colour"),
    ({"gender": "bogus"}, "Patient.gender"),
    ({"telecom": [{"system": "fax", "value": "1"}]}, "Patient.telecom[0].system"),
    ({"resourceType": "Observation"}, "Patient.resourceType"),
])  # fmt: skip
def test_an_invalid_resource_is_a_400_naming_the_element(
    resource: dict[str, Any], expression: str
) -> None:
    status, expressions = refused_at(resource)
    assert status == 400
    assert expression in expressions


@pytest.mark.parametrize(("resource", "expression"), [
    ({"name": [{"family": "A"}, {"family": "B"}]}, "Patient.name[1]"),
    ({"address": [{"state": "CA"}]}, "Patient.address[0].state"),
    ({"telecom": [{"system": "phone", "value": "+1"}, {"system": "phone", "value": "+2"}]},
     "Patient.telecom[1]"),
    ({"contact": [{"gender": "male"}]}, "Patient.contact"),
    ({"name": [{"text": "A B"}]}, "Patient.name[0].text"),
    ({"identifier": [{"system": "urn:a", "value": "1", "type": {"text": "MRN"}}]},
     "Patient.identifier[0].type"),
])  # fmt: skip
def test_an_element_the_record_cannot_hold_is_a_422_not_dropped(
    resource: dict[str, Any], expression: str
) -> None:
    assert refused_at(resource) == (422, [expression])


def refused_at(elements: dict[str, Any]) -> tuple[int, list[str]]:
    """The status and the expressions of the refusal of a Patient with ``elements``."""
    with pytest.raises(FhirError) as refused:
        demographics_from_resource({"resourceType": "Patient", **elements})
    return refused.value.status, [e for issue in refused.value.issues for e in issue.expression]


def test_a_refusal_never_quotes_the_value_it_refused() -> None:
    canary = f"canary-{secrets.token_hex(16)}"
    for resource in ({"birthDate": canary}, {"id": f"{canary}!"}, {"gender": canary}):
        with pytest.raises(FhirError) as refused:
            demographics_from_resource({"resourceType": "Patient", **resource})
        assert canary not in str([i.diagnostics for i in refused.value.issues])
