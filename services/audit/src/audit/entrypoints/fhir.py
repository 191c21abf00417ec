"""The audit trail as FHIR R4 AuditEvent resources, after the IHE Basic Audit Log Patterns.

A read becomes the BALP PatientRead / PatientQuery shape (type ``rest``, subtype ``read`` or
``search-type``, action R or E), an export DICOM Export (110106); a recorded change is a
``create`` (version 1) or ``update``, action C or U, with the event type as a second subtype.
Each has: the user agent (who, roles, network address, purpose of use; ``requestor``), the
client application and the serving service as further agents, the service as
``source.observer``, the patient as entity ``Patient/<id>`` with role 1 (Patient), the records
as Domain Resource entities, and the request id and trace as a BALP ``XrequestId`` entity.
Refusals have outcome 4 (minor failure) with the service's reason, failures outcome 8.

Codes of the platform itself (subjects, roles, record ids, event types, operations) use URN
systems under ``urn:clinical-platform``. The user agent string travels in an extension: R4
has no element for it.
"""

from __future__ import annotations

import json
from typing import Any

from clinical.audit.v1.access_pb2 import AccessAction, AccessOutcome, AccessRecord
from clinical.audit.v1.audit_pb2 import Change
from clinical.events.v1.provenance_pb2 import Actor, PurposeOfUse, TraceContext

JsonObject = dict[str, Any]

AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
BALP_ENTITY_TYPE = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
PLATFORM = "urn:clinical-platform"
USER_AGENT_EXTENSION = f"{PLATFORM}:fhir:user-agent"
IP_ADDRESS = "2"

_REST = {"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"}
_EXPORT = {"system": DICOM, "code": "110106", "display": "Export"}
# action name -> (interaction subtype or None, FHIR action code)
_ACTIONS: dict[str, tuple[str | None, str]] = {
    "READ": ("read", "R"),
    "SEARCH": ("search-type", "E"),
    "EXPORT": (None, "R"),
    "CREATE": ("create", "C"),
    "UPDATE": ("update", "U"),
    "DELETE": ("delete", "D"),
}
_OUTCOMES = {"SUCCESS": "0", "DENIED": "4", "FAILURE": "8"}


def audit_event_json(item: Change | AccessRecord) -> str:
    """One item of the trail as compact FHIR R4 AuditEvent JSON."""
    event = access_audit_event(item) if isinstance(item, AccessRecord) else change_audit_event(item)
    return json.dumps(event, separators=(",", ":"))


def access_audit_event(record: AccessRecord) -> JsonObject:
    """A read (or refused request) as an AuditEvent."""
    action = AccessAction.Name(record.action).removeprefix("ACCESS_ACTION_")
    interaction, action_code = _ACTIONS.get(action, (None, "E"))
    subtypes = [_coding(RESTFUL_INTERACTION, interaction)] if interaction else []
    if record.operation:
        subtypes.append(_coding(f"{PLATFORM}:operation", record.operation))
    outcome = AccessOutcome.Name(record.outcome).removeprefix("ACCESS_OUTCOME_")
    user_type = (
        _coding(PARTICIPATION_TYPE, "IRCP", "information recipient")
        if action_code in ("R", "E")
        else _coding(ROLE_CLASS, "AGNT", "agent")
    )
    event: JsonObject = {
        "resourceType": "AuditEvent",
        "id": record.record_id,
        "type": _EXPORT if action == "EXPORT" else _REST,
        "subtype": subtypes,
        "action": action_code,
        "recorded": record.occurred_at.ToJsonString(),
        "outcome": _OUTCOMES.get(outcome, "8"),
        "agent": _agents(
            record.actor,
            user_type,
            source_ip=record.source_ip,
            user_agent=record.user_agent,
            purpose=record.purpose_of_use,
            server=record.source,
        ),
        "source": _source(record.source),
        "entity": [
            *_patient(record.patient_id),
            *(
                _record(record.record_type, record_id, record.data_category)
                for record_id in record.accessed_record_ids
            ),
            *_request(record.request_id, record.trace_context),
        ],
    }
    if record.reason:
        event["outcomeDesc"] = record.reason
    return _with_purpose(event, record.purpose_of_use)


def change_audit_event(change: Change) -> JsonObject:
    """A recorded change (an event on the log) as an AuditEvent."""
    created = change.aggregate_version == 1
    event: JsonObject = {
        "resourceType": "AuditEvent",
        "id": change.event_id,
        "type": _REST,
        "subtype": [
            _coding(RESTFUL_INTERACTION, "create" if created else "update"),
            _coding(f"{PLATFORM}:event-type", f"{change.aggregate_type}.{change.event_type}"),
        ],
        "action": "C" if created else "U",
        "period": {
            "start": change.occurred_at.ToJsonString(),
            "end": change.occurred_at.ToJsonString(),
        },
        "recorded": change.recorded_at.ToJsonString(),
        "outcome": "0",
        "agent": _agents(
            change.actor,
            _coding(PARTICIPATION_TYPE, "AUT", "author"),
            source_ip=change.source_ip,
            user_agent=change.user_agent,
            purpose=change.purpose_of_use,
            server=change.source,
        ),
        "source": _source(change.source),
        "entity": [
            *_patient(change.patient_id),
            _record(
                change.aggregate_type,
                change.aggregate_id,
                "",
                [
                    _detail("version", str(change.aggregate_version)),
                    _detail("event-id", change.event_id),
                    _detail("hash", change.hash.hex()),
                ],
            ),
            *_request(change.request_id, change.trace_context),
        ],
    }
    return _with_purpose(event, change.purpose_of_use)


def _agents(
    actor: Actor,
    user_type: JsonObject,
    *,
    source_ip: str,
    user_agent: str,
    purpose: PurposeOfUse.ValueType,
    server: str,
) -> list[JsonObject]:
    user: JsonObject = {
        "type": {"coding": [user_type]},
        "who": _identified(f"{PLATFORM}:subject", actor.subject),
        "requestor": True,
    }
    if actor.roles:
        user["role"] = [{"coding": [_coding(f"{PLATFORM}:role", r)]} for r in actor.roles]
    if source_ip:
        user["network"] = {"address": source_ip, "type": IP_ADDRESS}
    if purpose_code := _purpose_code(purpose):
        user["purposeOfUse"] = [{"coding": [_coding(ACT_REASON, purpose_code)]}]
    if user_agent:
        user["extension"] = [{"url": USER_AGENT_EXTENSION, "valueString": user_agent}]
    agents = [user]
    if actor.on_behalf_of:
        agents.append({
            "type": {"coding": [_coding(PARTICIPATION_TYPE, "RESP", "responsible party")]},
            "who": _identified(f"{PLATFORM}:subject", actor.on_behalf_of),
            "requestor": False,
        })  # fmt: skip
    if actor.client_id:
        agents.append({
            "type": {"coding": [_coding(DICOM, "110150", "Application")]},
            "who": _identified(f"{PLATFORM}:client", actor.client_id),
            "requestor": False,
        })  # fmt: skip
    agents.append({
        "type": {"coding": [_coding(DICOM, "110152", "Destination Role ID")]},
        "who": {"display": server or "unknown"},
        "requestor": False,
    })  # fmt: skip
    return agents


def _source(service: str) -> JsonObject:
    return {
        "observer": {"display": service or "unknown"},
        "type": [_coding(SOURCE_TYPE, "4", "Application Server")],
    }


def _patient(patient_id: str) -> list[JsonObject]:
    if not patient_id:
        return []
    return [{
        "what": {"reference": f"Patient/{patient_id}"},
        "type": _coding(ENTITY_TYPE, "1", "Person"),
        "role": _coding(OBJECT_ROLE, "1", "Patient"),
    }]  # fmt: skip


def _record(
    record_type: str, record_id: str, category: str, details: list[JsonObject] | None = None
) -> JsonObject:
    entity: JsonObject = {
        "what": _identified(f"{PLATFORM}:{record_type or 'record'}", record_id),
        "type": _coding(ENTITY_TYPE, "2", "System Object"),
        "role": _coding(OBJECT_ROLE, "4", "Domain Resource"),
    }
    all_details = [*(details or []), *([_detail("category", category)] if category else [])]
    if all_details:
        entity["detail"] = all_details
    return entity


def _request(request_id: str, trace: TraceContext) -> list[JsonObject]:
    if not request_id and not trace.traceparent:
        return []
    entity: JsonObject = {"type": _coding(BALP_ENTITY_TYPE, "XrequestId")}
    if request_id:
        entity["what"] = {"identifier": {"value": request_id}}
    if trace.traceparent:
        entity["detail"] = [_detail("traceparent", trace.traceparent)]
    return [entity]


def _with_purpose(event: JsonObject, purpose: PurposeOfUse.ValueType) -> JsonObject:
    if code := _purpose_code(purpose):
        event["purposeOfEvent"] = [{"coding": [_coding(ACT_REASON, code)]}]
    # FHIR JSON has no empty arrays: an element without values is left out.
    return {name: value for name, value in event.items() if value != []}


def _purpose_code(purpose: PurposeOfUse.ValueType) -> str:
    # The proto's invariant: PURPOSE_OF_USE_<HL7 code>; UNSPECIFIED has no code.
    name = PurposeOfUse.Name(purpose)
    return "" if purpose == 0 else name.removeprefix("PURPOSE_OF_USE_")


def _identified(system: str, value: str) -> JsonObject:
    return {"identifier": {"system": system, "value": value}}


def _coding(system: str, code: str, display: str = "") -> JsonObject:
    coding = {"system": system, "code": code}
    return coding | {"display": display} if display else coding


def _detail(kind: str, value: str) -> JsonObject:
    return {"type": kind, "valueString": value}
