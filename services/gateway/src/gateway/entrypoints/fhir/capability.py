"""The CapabilityStatement at ``/fhir/r4/metadata``: exactly what the FHIR API implements."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

FHIR_VERSION = "4.0.1"
_SEARCH_PARAMETERS = {
    "name": ("string", "Family or a given name, whole, ignoring case and accents"),
    "family": ("string", "The family name, whole, ignoring case and accents"),
    "given": ("string", "Given names, whole, ignoring case and accents; nicknames count"),
    "birthdate": ("date", "A whole date (YYYY-MM-DD), equality only"),
    "identifier": ("token", "system|value"),
}
_RESULT_PARAMETERS = {
    "_count": ("number", "Page size, 1 to 100 (20 by default)"),
    "_offset": ("number", "Where the page starts, within the first 200 matches"),
}
SMART_SECURITY = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def capability_statement(base: str, *, software_version: str, date: str) -> dict[str, Any]:
    """The statement of this gateway, served at ``base``; checked by the R4B model."""
    parameters = [
        {"name": name, "type": kind, "documentation": text}
        for name, (kind, text) in {**_SEARCH_PARAMETERS, **_RESULT_PARAMETERS}.items()
    ]
    patient = {
        "type": "Patient",
        "profile": "http://hl7.org/fhir/StructureDefinition/Patient",
        "interaction": [
            {"code": code} for code in ("read", "vread", "search-type", "create", "update")
        ],
        "versioning": "versioned-update",
        "readHistory": False,
        "updateCreate": False,
        "conditionalCreate": False,
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchParam": parameters,
    }
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "kind": "instance",
        "software": {"name": "clinical-gateway", "version": software_version},
        "implementation": {"description": "Clinical record platform gateway", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "security": {
                "service": [{"coding": [{"system": SMART_SECURITY, "code": "SMART-on-FHIR"}]}],
                "description": "OpenID Connect bearer tokens with SMART v2 scopes",
            },
            "resource": [patient],
        }],
    }  # fmt: skip
    return CapabilityStatement.model_validate(statement).model_dump(mode="json", exclude_none=True)
