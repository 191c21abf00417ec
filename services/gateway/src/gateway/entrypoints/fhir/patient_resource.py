"""FHIR R4 Patient <-> clinical.patient.v1 (``Patient`` and ``Demographics`` in protobuf's JSON
mapping, the shape the downstream adapter speaks).

A resource coming in is checked by the R4B model first (400 with the element path), then for
what a record can hold (422 naming the element): one name, one address, at most one phone and
one email, identifiers of system and value. ``meta``, ``text`` (the narrative), ``link`` (links
change through the registrar's link operation) and each ``use`` are read-only here and ignored.
A record without a known sex reads ``gender: unknown``: the service does not tell the two apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.patient import Patient

from gateway.entrypoints.fhir.outcomes import FhirError, Issue
from gateway.entrypoints.fhir.validation import unstorable, validated

RESOURCE = "Patient"
_GENDER_TO_SEX = {
    "male": "ADMINISTRATIVE_SEX_MALE", "female": "ADMINISTRATIVE_SEX_FEMALE",
    "other": "ADMINISTRATIVE_SEX_OTHER", "unknown": "ADMINISTRATIVE_SEX_UNKNOWN",
}  # fmt: skip
_SEX_TO_GENDER = {sex: gender for gender, sex in _GENDER_TO_SEX.items()}
_TELECOM_FIELDS = {"phone": "phone", "email": "email"}
# The elements a record holds, per element; anything else is refused (422), not dropped. The
# read-only ones (meta, narrative, links, uses) are accepted and ignored.
_ACCEPTED = {
    "Patient": {"identifier", "name", "telecom", "gender", "birthDate", "address",
                "resourceType", "id", "meta", "text", "link"},
    "name": {"family", "given", "prefix", "suffix", "use"},
    "identifier": {"system", "value", "use"},
    "telecom": {"system", "value", "use"},
    "address": {"line", "city", "district", "postalCode", "country", "use"},
}  # fmt: skip
# Proto field names whose FHIR element is named otherwise, and back.
_ELEMENT_OF = {"lines": "line", "postal_code": "postalCode"}
_FIELD_OF = {element: field for field, element in _ELEMENT_OF.items()}
_INDEX = re.compile(r"^(\w+)(\[\d+\])?$")


@dataclass(frozen=True)
class IncomingDemographics:
    """Demographics (protobuf JSON) and, per proto field path, the element it came from."""

    values: dict[str, Any]
    sources: Mapping[str, str]

    def expression_of(self, field: str) -> str:
        """The FHIRPath of a proto field path the service named (``demographics.name.given[1]``
        -> ``Patient.name[0].given[1]``); ``Patient`` when it cannot tell."""
        for prefix in sorted(self.sources, key=len, reverse=True):
            if field == prefix or field.startswith((f"{prefix}.", f"{prefix}[")):
                rest = field[len(prefix) :].split(".")
                tail = [rest[0], *(_element(part) for part in rest[1:])]
                return self.sources[prefix] + ".".join(tail)
        return RESOURCE


def _element(part: str) -> str:
    match = _INDEX.match(part)
    if not match:
        return part
    return _ELEMENT_OF.get(match[1], match[1]) + (match[2] or "")


def demographics_from_resource(resource: Mapping[str, Any]) -> IncomingDemographics:
    """The demographics of a Patient resource; FhirError 400 (invalid) or 422 (not storable)."""
    # The model's own JSON from here on: nulls gone, every element of its declared type.
    resource = checked(resource).model_dump(mode="json", exclude_none=True)
    _refuse_unstored(resource)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {
        "demographics.name": "Patient.name", "demographics.address": "Patient.address",
        "demographics.birth_date": "Patient.birthDate", "demographics.sex": "Patient.gender",
        "demographics.identifiers": "Patient.identifier", "demographics.phone": "Patient.telecom",
        "demographics.email": "Patient.telecom", "patient_id": "Patient.id",
    }  # fmt: skip
    if names := resource.get("name"):
        sources["demographics.name"] = "Patient.name[0]"
        values["name"] = {k: names[0][k] for k in ("family", "given", "prefix", "suffix")
                          if k in names[0]}  # fmt: skip
    if addresses := resource.get("address"):
        sources["demographics.address"] = "Patient.address[0]"
        values["address"] = {_FIELD_OF.get(k, k): v for k, v in addresses[0].items() if k != "use"}
    if "birthDate" in resource:
        values["birth_date"] = resource["birthDate"]
    if "gender" in resource:
        values["sex"] = _GENDER_TO_SEX[resource["gender"]]
    for index, point in enumerate(resource.get("telecom", ())):
        field = _TELECOM_FIELDS[point["system"]]
        values[field] = point.get("value", "")
        sources[f"demographics.{field}"] = f"Patient.telecom[{index}].value"
    if identifiers := resource.get("identifier"):
        values["identifiers"] = [
            {"system": i.get("system", ""), "value": i.get("value", "")} for i in identifiers
        ]
    return IncomingDemographics(values, sources)


def checked(resource: Mapping[str, Any]) -> Patient:
    """The resource as the R4B model, or FhirError 400 naming each failing element."""
    patient = validated(Patient, resource)
    problems = []
    if patient.gender is not None and patient.gender not in _GENDER_TO_SEX:
        problems.append(("Patient.gender", "is not an administrative-gender code"))
    for index, point in enumerate(patient.telecom or ()):
        if point.system not in _TELECOM_FIELDS:
            problems.append((f"Patient.telecom[{index}].system", "must be phone or email"))
    if problems:
        raise FhirError(400, tuple(Issue("code-invalid", f"{p} {d}", (p,)) for p, d in problems))
    return patient


def _refuse_unstored(resource: Mapping[str, Any]) -> None:
    problems = [*_unstored(RESOURCE, "Patient", resource)]
    for element in ("identifier", "name", "telecom", "address"):
        for index, item in enumerate(resource.get(element, ())):
            problems += _unstored(element, f"Patient.{element}[{index}]", item)
    for element in ("name", "address"):
        if len(resource.get(element, ())) > 1:
            problems.append(f"Patient.{element}[1]")
    seen: set[str] = set()
    for index, point in enumerate(resource.get("telecom", ())):
        if point["system"] in seen:
            problems.append(f"Patient.telecom[{index}]")
        seen.add(point["system"])
    if refused := unstorable(problems, "a record holds one name, one address, one phone, one "
                             "email and identifiers (system, value)"):  # fmt: skip
        raise refused


def _unstored(kind: str, path: str, element: Mapping[str, Any]) -> Iterable[str]:
    return (f"{path}.{k}" for k in element if k not in _ACCEPTED[kind])


def resource_from_record(patient: Mapping[str, Any]) -> dict[str, Any]:
    """The Patient resource of a record (``clinical.patient.v1.Patient`` as protobuf JSON),
    checked by the R4B model."""
    demographics = patient.get("demographics", {})
    resource: dict[str, Any] = {
        "resourceType": RESOURCE, "id": patient["patient_id"],
        "meta": {"versionId": str(patient.get("version", "0"))},
    }  # fmt: skip
    identifiers = [_present(i) for i in demographics.get("identifiers", ())]
    if identifiers := [i for i in identifiers if i]:
        resource["identifier"] = identifiers
    if name := _present(demographics.get("name", {})):
        resource["name"] = [name]
    telecom = [{"system": f, "value": demographics[f]} for f in ("phone", "email")
               if demographics.get(f)]  # fmt: skip
    if telecom:
        resource["telecom"] = telecom
    resource["gender"] = _SEX_TO_GENDER.get(demographics.get("sex", ""), "unknown")
    if demographics.get("birth_date"):
        resource["birthDate"] = demographics["birth_date"]
    address = {
        _ELEMENT_OF.get(k, k): v for k, v in _present(demographics.get("address", {})).items()
    }
    if address:
        resource["address"] = [address]
    if linked := patient.get("linked_patient_ids"):
        resource["link"] = [
            {"other": {"reference": f"Patient/{other}"}, "type": "seealso"} for other in linked
        ]
    return Patient.model_validate(resource).model_dump(mode="json", exclude_none=True)


def _present(element: Mapping[str, Any]) -> dict[str, Any]:
    """The element without empty values: FHIR has no empty (or blank) strings or lists."""
    kept = {k: [x for x in v if _shown(x)] if isinstance(v, list) else v
            for k, v in element.items()}  # fmt: skip
    return {k: v for k, v in kept.items() if _shown(v)}


def _shown(value: Any) -> bool:
    return bool(value.strip()) if isinstance(value, str) else bool(value)
