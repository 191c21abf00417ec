"""The CapabilityStatement at ``/fhir/r4/metadata``: exactly what the FHIR API implements."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from clinical_platform.fhir_notifications import TOPICS

FHIR_VERSION = "4.0.1"
_PATIENT_PARAMETERS = {
    "name": ("string", "Family or a given name, whole, ignoring case and accents"),
    "family": ("string", "The family name, whole, ignoring case and accents"),
    "given": ("string", "Given names, whole, ignoring case and accents; nicknames count"),
    "birthdate": ("date", "A whole date (YYYY-MM-DD), equality only"),
    "identifier": ("token", "system|value"),
    "_at": ("date", "An instant with its zone: the records as they stood then"),
    "_count": ("number", "Page size, 1 to 100 (20 by default)"),
    "_offset": ("number", "Where the page starts, within the first 200 matches"),
    "_page_token": ("string", "No criterion: every patient by id (registrars); follow next"),
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
_RESULT_STATUS = {"status": ("token", "final | amended | corrected")}
_DATE_RANGE = ("ge, gt, le, lt (or eq for a whole day) a date (UTC) or an instant; at most a "
               "lower and an upper bound")  # fmt: skip
_RESOURCES: dict[str, tuple[tuple[str, ...], dict[str, tuple[str, str]]]] = {
    "Patient": (
        ("read", "vread", "history-instance", "history-type", "search-type", "create", "update"),
        _PATIENT_PARAMETERS,
    ),
    "ServiceRequest": (
        ("read", "vread", "history-instance", "history-type", "search-type", "create", "update"),
        {**_PATIENT_OF, "status": ("token", "draft | active | completed | revoked"),
         "code": ("token", "The test's LOINC code (code, http://loinc.org|code)"),
         "authored": ("date", "When it was placed: " + _DATE_RANGE), **_PAGES},
    ),
    "DiagnosticReport": (("read", "vread", "history-instance", "history-type", "search-type"), {
        **_PATIENT_OF, **_BASED_ON, **_RESULT_STATUS,
        "code": ("token", "The report's LOINC code: its one test's, or 11502-2 for several"),
        "date": ("date", "The effective time: " + _DATE_RANGE), **_PAGES,
    }),
    "Observation": (("read", "vread", "search-type"), {
        **_PATIENT_OF, **_BASED_ON, **_RESULT_STATUS,
        "code": ("token", "A LOINC code (code or http://loinc.org|code)"),
        "date": ("date", "The effective time: " + _DATE_RANGE),
        "category": ("token", "laboratory (every result's); filters each page"),
        **_PAGES,
    }),
    "Provenance": (("search-type",), {
        "target": ("reference", "Patient/<id>, ServiceRequest/<id> or DiagnosticReport/<id> "
                   "(required): one Provenance per version recorded"),
    }),
    "AuditEvent": (("search-type",), {
        "patient": ("reference", "Patient/<id> (required): the patient's changes and accesses"),
        "date": ("date", "ge, gt, le, lt (or eq for a whole day) a date or an instant; at most "
                 "a lower and an upper bound"),
        "agent": ("token", "A user's subject (sub); filters each page"),
        **_PAGES,
    }),
    "Subscription": (("read", "create", "delete"), {}),
}  # fmt: skip
# history-instance and history-type list versions from the event log (auditors), with their
# contents when the caller may also read the record.
_SINCE = "_since (an instant with its zone): the changes recorded at or after it"
_HISTORY = {"Patient": (
    "every version of the resource (the event log's, through the audit service: auditors "
    "only), newest first, each with who and why in meta and its contents when the caller may "
    "also read the record; the match assessment and care-team changes are no versions (their "
    "Provenance stays searchable); read takes _at (an instant: the version current then)"
)}  # fmt: skip
_HISTORY["ServiceRequest"] = _HISTORY["DiagnosticReport"] = (
    "every version recorded (the event log's, through the audit service: auditors only), "
    "newest first, with its contents when the caller may also read the record; who, when and "
    "why in Provenance?target=<type>/<id>; read takes _at (an instant: the version current then)"
)
for _kind in _HISTORY:
    _HISTORY[_kind] += f"; {_SINCE}; _count (1 to 100) pages it (follow next)"
_HISTORY_TYPE = dict.fromkeys(
    ("Patient", "ServiceRequest", "DiagnosticReport"),
    "the versions of every record of the type, each as history-instance gives it (auditors "
    "only; the type's search scope), newest first, a page of _count (1 to 100, 20 by default) "
    f"at a time (follow next); {_SINCE}",
)
# vread serves every version of these (an Observation's are its result's).
_READ_HISTORY = {"Patient", "ServiceRequest", "DiagnosticReport", "Observation"}
MATCH_OPERATION = {
    "name": "match", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match",
    "documentation": "POST Parameters: resource (a Patient), onlyCertainMatches, count (1 to "
                     "50); a searchset with search.score, match-grade and the field-by-field "
                     "explanation (urn:clinical-platform:fhir:StructureDefinition:"
                     "match-explanation)",
}  # fmt: skip
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
# Bulk Data $export (gateway/entrypoints/fhir/export_api.py, docs/fhir-bulk-export.md).
_BULK_DATA = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/"
_EXPORT_DOC = ("GET with Prefer: respond-async (202, then poll Content-Location); _type (Patient, "
               "ServiceRequest, DiagnosticReport, Observation), _since, _outputFormat "
               "application/fhir+ndjson; a backend service token with system/*.rs")  # fmt: skip
_EXPORTS = {"Patient": ("patient-export", "every patient's records"),
            "Group": ("group-export", "Group/<id>: the patients whose care team holds the "
                                      "user <id> (a clinician's panel)")}  # fmt: skip
SMART_SECURITY = "http://terminology.hl7.org/CodeSystem/restful-security-service"
# Subscriptions R5 Backport IG (gateway/entrypoints/fhir/subscription_api.py,
# docs/fhir-subscriptions.md): its operations and the topics served.
_BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport"
_SUBSCRIPTION_OPERATIONS = (
    ("status", "backport-subscription-status", "GET: the SubscriptionStatus (query-status)"),
    ("events", "backport-subscription-events", "GET: eventsSinceNumber, eventsUntilNumber "
     "(inclusive, at most 1000 events), content id-only | full-resource"),
    ("get-ws-binding-token", "backport-subscription-get-ws-binding-token",
     "GET or POST: a single-use token (60 s) for bind-with-token at websocket-url"),
)  # fmt: skip


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
            "resource": [*resources, _resource("Group", (), {})],
            "operation": [{"name": "export", "definition": f"{_BULK_DATA}export",
                           "documentation": f"every patient's records. {_EXPORT_DOC}"}],
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
        "readHistory": kind in _READ_HISTORY,
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
    if kind == "Subscription":
        resource["supportedProfile"] = [f"{_BACKPORT}/StructureDefinition/backport-subscription"]
        resource["extension"] = [
            {"url": f"{_BACKPORT}/StructureDefinition/capabilitystatement-subscriptiontopic-"
                    "canonical", "valueCanonical": topic.url}
            for topic in TOPICS
        ]  # fmt: skip
        resource["operation"] = [
            {"name": name, "definition": f"{_BACKPORT}/OperationDefinition/{definition}",
             "documentation": text}
            for name, definition, text in _SUBSCRIPTION_OPERATIONS
        ]  # fmt: skip
    if kind in _EXPORTS:
        name, scope = _EXPORTS[kind]
        resource["operation"] = [{"name": "export", "definition": f"{_BULK_DATA}{name}",
                                  "documentation": f"{scope}. {_EXPORT_DOC}"}]  # fmt: skip
    if kind == "Patient":
        resource.setdefault("operation", []).append(MATCH_OPERATION)
    return resource


def _interaction(kind: str, code: str) -> dict[str, str]:
    documentation = {"update": _UPDATES, "history-instance": _HISTORY,
                     "history-type": _HISTORY_TYPE}.get(code, {}).get(kind)  # fmt: skip
    return {"code": code, "documentation": documentation} if documentation else {"code": code}
