"""FHIR R4 DiagnosticReport and Observation <- clinical.results.v1 ``Result`` (protobuf JSON).

A result is one laboratory report: its DiagnosticReport has the result's id and lists its
observations; each observation is an Observation whose id is the result's id and its position,
``<result id>-<n>`` (1-based; an amendment replaces the whole set, so ``n`` names the current
one). Both are ``basedOn`` the order's ServiceRequest, ``final``, ``amended`` or ``corrected``
as the result is, and carry the result's version. Codes keep their systems: LOINC tests, UCUM
units, coded values as the laboratory sent them (e.g. SNOMED CT); interpretations are HL7
ObservationInterpretation (N, L, H, LL, HH). Results are read-only through FHIR.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation

from gateway.entrypoints.fhir.service_request_resource import LOINC, USER_SYSTEM

UCUM = "http://unitsofmeasure.org"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_DIAGNOSTIC_SECTION = "http://terminology.hl7.org/CodeSystem/v2-0074"
# A report of several tests is coded as a laboratory report.
_LAB_REPORT = {"system": LOINC, "code": "11502-2", "display": "Laboratory report"}
STATUS_OF = {"RESULT_STATUS_FINAL": "final", "RESULT_STATUS_AMENDED": "amended",
             "RESULT_STATUS_CORRECTED": "corrected"}  # fmt: skip
_INTERPRETATION_OF = {
    "INTERPRETATION_NORMAL": ("N", "Normal"), "INTERPRETATION_LOW": ("L", "Low"),
    "INTERPRETATION_HIGH": ("H", "High"), "INTERPRETATION_CRITICAL_LOW": ("LL", "Critical low"),
    "INTERPRETATION_CRITICAL_HIGH": ("HH", "Critical high"),
}  # fmt: skip
OBSERVATION_ID = re.compile(
    r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})-([1-9][0-9]?)$"
)


def observation_id(result_id: str, position: int) -> str:
    """The id of a result's observation at ``position`` (1-based)."""
    return f"{result_id}-{position}"


def report_from_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """The DiagnosticReport of a result, checked by the R4B model."""
    observations = result.get("observations", ())
    code = _loinc(observations[0]) if len(observations) == 1 else _LAB_REPORT
    resource = {
        **_common(result, "DiagnosticReport"),
        "category": [{"coding": [{"system": _DIAGNOSTIC_SECTION, "code": "LAB",
                                  "display": "Laboratory"}]}],
        "code": {"coding": [code]},
        "result": [
            {"reference": f"Observation/{observation_id(result['result_id'], position)}"}
            for position in range(1, len(observations) + 1)
        ],
    }  # fmt: skip
    return DiagnosticReport.model_validate(resource).model_dump(mode="json", exclude_none=True)


def observations_from_result(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Observations of a result, in its order, each checked by the R4B model."""
    return [
        observation_from_result(result, position)
        for position in range(1, len(result.get("observations", ())) + 1)
    ]


def observation_from_result(result: Mapping[str, Any], position: int) -> dict[str, Any]:
    """The Observation at ``position`` (1-based) of a result, checked by the R4B model."""
    observation = result["observations"][position - 1]
    resource: dict[str, Any] = {
        **_common(result, "Observation"),
        "id": observation_id(result["result_id"], position),
        "category": [{"coding": [{"system": _OBSERVATION_CATEGORY, "code": "laboratory",
                                  "display": "Laboratory"}]}],
        "code": {"coding": [_loinc(observation)]},
        **_value(observation),
    }  # fmt: skip
    if interpretation := _INTERPRETATION_OF.get(observation.get("interpretation", "")):
        code, display = interpretation
        resource["interpretation"] = [
            {"coding": [{"system": INTERPRETATION, "code": code, "display": display}]}
        ]
    reference_range = _reference_range(observation)
    if reference_range:
        resource["referenceRange"] = [reference_range]
    return Observation.model_validate(resource).model_dump(mode="json", exclude_none=True)


def _common(result: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """What a result's report and observations share: identity, status, subject, times."""
    resource: dict[str, Any] = {
        "resourceType": kind, "id": result["result_id"],
        "meta": {"versionId": str(result.get("version", "0"))},
        "status": STATUS_OF.get(result.get("status", ""), "unknown"),
        "subject": {"reference": f"Patient/{result['patient_id']}"},
    }  # fmt: skip
    if result.get("order_id"):
        resource["basedOn"] = [{"reference": f"ServiceRequest/{result['order_id']}"}]
    if result.get("effective_at"):
        resource["effectiveDateTime"] = result["effective_at"]
    if result.get("issued_at"):
        resource["issued"] = result["issued_at"]
    if result.get("performer"):
        resource["performer"] = [{"identifier": {"system": USER_SYSTEM,
                                                 "value": result["performer"]}}]  # fmt: skip
    return resource


def _loinc(observation: Mapping[str, Any]) -> dict[str, str]:
    coding = {"system": LOINC, "code": observation.get("code", "")}
    if observation.get("display"):
        coding["display"] = observation["display"]
    return coding


def _value(observation: Mapping[str, Any]) -> dict[str, Any]:
    if quantity := observation.get("quantity"):
        return {"valueQuantity": _quantity(quantity["value"], quantity.get("unit", ""))}
    if coded := observation.get("coded"):
        coding = {k: coded[k] for k in ("system", "code", "display") if coded.get(k)}
        return {"valueCodeableConcept": {"coding": [coding]}}
    if text := observation.get("text"):
        return {"valueString": text}
    return {}


def _reference_range(observation: Mapping[str, Any]) -> dict[str, Any]:
    limits = observation.get("reference_range", {})
    unit = observation.get("quantity", {}).get("unit", "")
    return {side: _quantity(limits[side], unit) for side in ("low", "high") if limits.get(side)}


def _quantity(value: str, unit: str) -> dict[str, Any]:
    quantity: dict[str, Any] = {"value": Decimal(value)}
    if unit:
        quantity |= {"unit": unit, "system": UCUM, "code": unit}
    return quantity
