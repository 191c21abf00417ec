"""The CapabilityStatement at ``/fhir/r4/metadata``: exactly what the FHIR API implements."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

FHIR_VERSION = "4.0.1"
_PATIENT_PARAMETERS = {
    "name": ("string", "Family or a given name, whole, ignoring case and accents"),
    "family": ("string", "The family name, whole, ignoring case and accents"),
    "given": ("string", "Given names, whole, ignoring case and accents; nicknames count"),
    "birthdate": ("date", "A whole date (YYYY-MM-DD), equality only"),
    "identifier": ("token", "system|value"),
    "_count": ("number", "Page size, 1 to 100 (20 by default)"),
    "_offset": ("number", "Where the page starts, within the first 200 matches"),
}
_PATIENT_OF = {
    "patient": ("reference", "Patient/<id>: the patient's (required unless a patient asks)"),
    "subject": ("reference", "Patient/<id>: the same as patient"),
}
_PAGES = {
    "_count": ("number", "Page size, 1 to 100 (20 by default), newest first"),
    "_page_token": ("string", "Where the next page starts: follow the next link"),
}
_BASED_ON = {"based-on": ("reference", "ServiceRequest/<id>: the order's results")}
_RESOURCES: dict[str, tuple[tuple[str, ...], dict[str, tuple[str, str]]]] = {
    "Patient": (
        ("read", "vread", "history-instance", "search-type", "create", "update"),
        _PATIENT_PARAMETERS,
    ),
    "ServiceRequest": (
        ("read", "vread", "history-instance", "search-type", "create", "update"),
        {**_PATIENT_OF, "status": ("token", "draft | active | completed | revoked"), **_PAGES},
    ),
    "DiagnosticReport": (("read", "vread", "search-type"), {**_PATIENT_OF, **_BASED_ON, **_PAGES}),
    "Observation": (("read", "search-type"), {
        **_PATIENT_OF, **_BASED_ON,
        "code": ("token", "A LOINC code (code or http://loinc.org|code); filters each page"),
        "category": ("token", "laboratory (every result's); filters each page"),
        **_PAGES,
    }),
    "Provenance": (("search-type",), {
        "target": ("reference", "Patient/<id> or ServiceRequest/<id> (required): one "
                   "Provenance per version recorded"),
    }),
    "AuditEvent": (("search-type",), {
        "patient": ("reference", "Patient/<id> (required): the patient's changes and accesses"),
        "date": ("date", "ge, gt, le, lt (or eq for a whole day) a date or an instant; at most "
                 "a lower and an upper bound"),
        "agent": ("token", "A user's subject (sub); filters each page"),
        **_PAGES,
    }),
}  # fmt: skip
# history-instance lists every version from the event log (auditors); vread still serves only
# the current version's content, hence readHistory false.
_HISTORY = dict.fromkeys(
    ("Patient", "ServiceRequest"),
    "every version recorded (the event log's, through the audit service: auditors only), "
    "newest first, without the versions' contents; who, when and why in "
    "Provenance?target=<type>/<id>",
)
# Versioned updates take If-Match; ServiceRequest updates revoke only (see the documentation).
_UPDATES = {"Patient": "updates the demographics",
            "ServiceRequest": "revokes the order: status revoked, with the reason in the "
                              "request-statusReason extension; nothing else changes"}  # fmt: skip
# Parameters of every read, vread, search and history (gateway/entrypoints/fhir/subsetting.py).
_ANSWER_PARAMETERS = [
    {"name": "_summary", "type": "token",
     "documentation": "true (the R4 summary elements), text, data, count (searches and "
                      "histories: the total, no entries) or false; subsets are tagged "
                      "SUBSETTED"},
    {"name": "_elements", "type": "string",
     "documentation": "a,b: only these top-level elements, with id and meta; tagged SUBSETTED"},
]  # fmt: skip
_FORMATS = ("JSON only: _format json, application/fhir+json or application/json (it wins over "
            "Accept); any other _format, or an Accept without JSON, is a 406")  # fmt: skip
SIGN_OPERATION = "urn:clinical-platform:fhir:OperationDefinition:ServiceRequest-sign"
SMART_SECURITY = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def capability_statement(base: str, *, software_version: str, date: str) -> dict[str, Any]:
    """The statement of this gateway, served at ``base``; checked by the R4B model."""
    resources = [_resource(kind, *served) for kind, served in _RESOURCES.items()]
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "kind": "instance",
        "software": {"name": "clinical-gateway", "version": software_version},
        "implementation": {"description": "Clinical record platform gateway", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "documentation": _FORMATS,
            "searchParam": _ANSWER_PARAMETERS,
            "security": {
                "service": [{"coding": [{"system": SMART_SECURITY, "code": "SMART-on-FHIR"}]}],
                "description": "OpenID Connect bearer tokens with SMART v2 scopes",
            },
            "resource": resources,
        }],
    }  # fmt: skip
    return CapabilityStatement.model_validate(statement).model_dump(mode="json", exclude_none=True)


def _resource(kind: str, interactions: tuple[str, ...],
              parameters: dict[str, tuple[str, str]]) -> dict[str, Any]:  # fmt: skip
    resource: dict[str, Any] = {
        "type": kind,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{kind}",
        "interaction": [_interaction(kind, code) for code in interactions],
        "versioning": "versioned-update" if "update" in interactions else "versioned",
        "readHistory": False,
        "updateCreate": False,
        "conditionalCreate": False,
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchParam": [
            {"name": name, "type": kind_of, "documentation": text}
            for name, (kind_of, text) in parameters.items()
        ],
    }
    if kind == "ServiceRequest":
        resource["operation"] = [{
            "name": "sign", "definition": SIGN_OPERATION,
            "documentation": "POST [base]/ServiceRequest/<id>/$sign signs a draft order "
                             "(SMART update scope; a multi-factor login); If-Match is honoured",
        }]  # fmt: skip
    return resource


def _interaction(kind: str, code: str) -> dict[str, str]:
    documentation = {"update": _UPDATES, "history-instance": _HISTORY}.get(code, {}).get(kind)
    return {"code": code, "documentation": documentation} if documentation else {"code": code}
