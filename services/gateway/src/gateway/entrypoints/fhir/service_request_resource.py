"""FHIR R4 ServiceRequest <-> clinical.orders.v1 (``Order`` and ``PlaceOrderRequest`` in
protobuf's JSON mapping).

An order is a laboratory test (a LOINC code from the catalogue) for a patient, with a priority
and reasons (ICD-10 or SNOMED CT). Its states read as FHIR request statuses: a draft is
``draft``, a signed order ``active``, a resulted one ``completed``, a cancelled one ``revoked``
(with its reason in the core ``request-statusReason`` extension). The signature (who, when,
its type the author's) is an extension of ours; the orderer is the ``requester``, named by their
platform user id. A new ServiceRequest must be a ``draft`` ``order``; the elements the service
sets (``requester``, ``authoredOn``, ``meta``, ``text``, those two extensions) are accepted and
ignored, anything else a record cannot hold is refused (422).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fhir.resources.R4B.servicerequest import ServiceRequest

from gateway.entrypoints.fhir.listing import RECORD_ID
from gateway.entrypoints.fhir.outcomes import FhirError
from gateway.entrypoints.fhir.validation import unstorable, validated

RESOURCE = "ServiceRequest"
LOINC = "http://loinc.org"
USER_SYSTEM = "urn:clinical-platform:user"  # the platform's user ids (OIDC subjects)
SIGNATURE = "urn:clinical-platform:fhir:StructureDefinition:order-signature"
STATUS_REASON = "http://hl7.org/fhir/StructureDefinition/request-statusReason"
# ASTM E1762 signature type: the author's signature.
_AUTHOR_SIGNATURE = {"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.1",
                     "display": "Author's Signature"}  # fmt: skip
STATUS_OF = {
    "ORDER_STATUS_DRAFT": "draft", "ORDER_STATUS_SIGNED": "active",
    "ORDER_STATUS_RESULTED": "completed", "ORDER_STATUS_CANCELLED": "revoked",
}  # fmt: skip
ORDER_STATUS = {status: name for name, status in STATUS_OF.items()}
_PRIORITY_OF = {"PRIORITY_ROUTINE": "routine", "PRIORITY_URGENT": "urgent",
                "PRIORITY_STAT": "stat"}  # fmt: skip
_PRIORITY = {priority: name for name, priority in _PRIORITY_OF.items()}
_SYSTEM_OF = {"CODE_SYSTEM_ICD10": "http://hl7.org/fhir/sid/icd-10",
              "CODE_SYSTEM_SNOMED_CT": "http://snomed.info/sct"}  # fmt: skip
_CODE_SYSTEM = {system: name for name, system in _SYSTEM_OF.items()}
# The required bindings the R4B model does not check.
_BOUND = {
    "status": {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error",
               "unknown"},
    "intent": {"proposal", "plan", "directive", "order", "original-order", "reflex-order",
               "filler-order", "instance-order", "option"},
}  # fmt: skip
# The service sets these extensions: sent back, they are ignored.
_OURS = {SIGNATURE, STATUS_REASON}
_ACCEPTED = {"resourceType", "id", "meta", "text", "extension", "status", "intent", "priority",
             "code", "subject", "reasonCode", "authoredOn", "requester"}  # fmt: skip
# PlaceOrderRequest's fields, as the elements they came from.
_ELEMENT_OF = {"patient_id": "subject", "test_code": "code", "priority": "priority",
               "reason_codes": "reasonCode"}  # fmt: skip
_FIELD = re.compile(r"^(\w+)(\[\d+\])?(?:\.(\w+))?$")


def order_from_resource(resource: Mapping[str, Any]) -> dict[str, Any]:
    """PlaceOrderRequest's values of a new ServiceRequest (no request id); FhirError 400 for an
    invalid resource, 422 for one a draft order cannot be."""
    request = validated(ServiceRequest, resource).model_dump(mode="json", exclude_none=True)
    unstored = [f"{RESOURCE}.{k}" for k in request if k not in _ACCEPTED]
    unstored += [f"{RESOURCE}.extension[{index}]" for index, e in
                 enumerate(request.get("extension", ())) if e["url"] not in _OURS]  # fmt: skip
    if refused := unstorable(
        unstored, "an order holds a subject, a LOINC code, a priority and reason codes"
    ):
        raise refused
    for element, codes in _BOUND.items():
        if request[element] not in codes:
            path = f"{RESOURCE}.{element}"
            raise FhirError.of(400, "code-invalid", f"{path} is not a request-{element} code",
                               expression=(path,))  # fmt: skip
    if request["status"] != "draft" or request["intent"] != "order":
        raise FhirError.of(422, "business-rule", "a new ServiceRequest is a draft order "
                           "(status draft, intent order); sign it with $sign",
                           expression=(f"{RESOURCE}.status",))  # fmt: skip
    values: dict[str, Any] = {
        "patient_id": _subject_id(request.get("subject", {})),
        "test_code": _loinc_code(request.get("code")),
        "reason_codes": [_reason(i, c) for i, c in enumerate(request.get("reasonCode", ()))],
    }
    if "priority" in request:
        if request["priority"] not in _PRIORITY:
            raise FhirError.of(422, "not-supported", "priority must be routine, urgent or stat",
                               expression=(f"{RESOURCE}.priority",))  # fmt: skip
        values["priority"] = _PRIORITY[request["priority"]]
    return values


def _subject_id(subject: Mapping[str, Any]) -> str:
    patient_id = str(subject.get("reference", "")).removeprefix("Patient/")
    if not subject.get("reference", "").startswith("Patient/") or not RECORD_ID.match(patient_id):
        raise FhirError.of(400, "required", "subject must reference a Patient (Patient/<id>)",
                           expression=(f"{RESOURCE}.subject",))  # fmt: skip
    return patient_id


def _loinc_code(code: Mapping[str, Any] | None) -> str:
    codings = [c for c in (code or {}).get("coding", ()) if c.get("system") == LOINC]
    if len(codings) != 1 or "code" not in codings[0]:
        raise FhirError.of(400, "required", "code must hold one LOINC coding (http://loinc.org)",
                           expression=(f"{RESOURCE}.code",))  # fmt: skip
    return str(codings[0]["code"])


def _reason(index: int, concept: Mapping[str, Any]) -> dict[str, str]:
    codings = concept.get("coding", ())
    path = f"{RESOURCE}.reasonCode[{index}]"
    if (
        len(codings) != 1
        or codings[0].get("system") not in _CODE_SYSTEM
        or "code" not in codings[0]
    ):
        raise FhirError.of(422, "code-invalid", f"{path} must hold one ICD-10 "
                           f"({_SYSTEM_OF['CODE_SYSTEM_ICD10']}) or SNOMED CT coding",
                           expression=(path,))  # fmt: skip
    return {"system": _CODE_SYSTEM[codings[0]["system"]], "code": codings[0]["code"]}


def expression_of(field: str) -> str:
    """The FHIRPath of a PlaceOrderRequest field the service named (``reason_codes[1].code``
    -> ``ServiceRequest.reasonCode[1].coding[0].code``); ``ServiceRequest`` when unknown."""
    match = _FIELD.match(field)
    if not match or match[1] not in _ELEMENT_OF:
        return RESOURCE
    path = f"{RESOURCE}.{_ELEMENT_OF[match[1]]}{match[2] or ''}"
    return f"{path}.coding[0].{match[3]}" if match[3] else path


def revocation_reason(resource: Mapping[str, Any]) -> str:
    """The reason of an update revoking an order (``request-statusReason``'s text); FhirError
    400 without one."""
    for extension in resource.get("extension") or ():
        if extension.get("url") == STATUS_REASON:
            text = (extension.get("valueCodeableConcept") or {}).get("text", "")
            if isinstance(text, str) and text.strip():
                return text
    raise FhirError.of(400, "required", f"revoking needs a reason: the {STATUS_REASON} "
                       "extension with valueCodeableConcept.text",
                       expression=(f"{RESOURCE}.extension",))  # fmt: skip


def resource_from_order(order: Mapping[str, Any]) -> dict[str, Any]:
    """The ServiceRequest of an order (``clinical.orders.v1.Order`` as protobuf JSON), checked
    by the R4B model."""
    code = {"system": LOINC, "code": order.get("test_code", "")}
    if order.get("test_display"):
        code["display"] = order["test_display"]
    resource: dict[str, Any] = {
        "resourceType": RESOURCE, "id": order["order_id"],
        "meta": {"versionId": str(order.get("version", "0"))},
        "status": STATUS_OF.get(order.get("status", ""), "unknown"), "intent": "order",
        "code": {"coding": [code]},
        "subject": {"reference": f"Patient/{order['patient_id']}"},
    }  # fmt: skip
    if priority := _PRIORITY_OF.get(order.get("priority", "")):
        resource["priority"] = priority
    if order.get("placed_at"):
        resource["authoredOn"] = order["placed_at"]
    if order.get("orderer"):
        resource["requester"] = _user(order["orderer"])
    if reasons := order.get("reason_codes"):
        resource["reasonCode"] = [
            {"coding": [{"system": _SYSTEM_OF[r["system"]], "code": r["code"]}]}
            for r in reasons if r.get("system") in _SYSTEM_OF and r.get("code")
        ]  # fmt: skip
    extensions = []
    signature = order.get("signature", {})
    if signature.get("signer") and signature.get("signed_at"):
        extensions.append({"url": SIGNATURE, "valueSignature": {
            "type": [_AUTHOR_SIGNATURE], "when": signature["signed_at"],
            "who": _user(signature["signer"]),
        }})  # fmt: skip
    if reason := order.get("cancellation", {}).get("reason", "").strip():
        extensions.append({"url": STATUS_REASON, "valueCodeableConcept": {"text": reason}})
    if extensions:
        resource["extension"] = extensions
    return ServiceRequest.model_validate(resource).model_dump(mode="json", exclude_none=True)


def _user(subject: str) -> dict[str, Any]:
    return {"identifier": {"system": USER_SYSTEM, "value": subject}}
