"""The trail as FHIR R4 AuditEvents (IHE BALP shapes), validated with fhir.resources.

fhir.resources ships R5 at its top level and R4B (4.3) as a subpackage; R4B's AuditEvent is
R4's unchanged, so R4B's model is the R4 validator here.
"""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from audit.entrypoints.fhir import (
    ACT_REASON,
    DICOM,
    OBJECT_ROLE,
    access_audit_event,
    change_audit_event,
)
from clinical.audit.v1 import access_pb2
from clinical.audit.v1.audit_pb2 import Change
from clinical.events.v1.provenance_pb2 import PURPOSE_OF_USE_ETREAT, PURPOSE_OF_USE_UNSPECIFIED

pytestmark = pytest.mark.unit

PATIENT, ORDER = str(uuid.uuid4()), str(uuid.uuid4())
AT = datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


def _access(**fields: object) -> access_pb2.AccessRecord:
    record = access_pb2.AccessRecord(
        record_id=str(uuid.uuid4()), patient_id=PATIENT, record_type="Order",
        accessed_record_ids=[ORDER], data_category="orders",
        action=access_pb2.ACCESS_ACTION_READ, purpose_of_use=PURPOSE_OF_USE_ETREAT,
        source_ip="2001:db8::7", user_agent="ward-tablet/2.1",
        outcome=access_pb2.ACCESS_OUTCOME_SUCCESS, request_id="req-1",
        source="//clinical/orders", operation="GetOrder",
    )  # fmt: skip
    record.occurred_at.FromDatetime(AT)
    record.actor.subject = "dr-house"
    record.actor.roles.append("clinician")
    record.actor.client_id = "ward-tablet"
    record.trace_context.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    for name, value in fields.items():
        setattr(record, name, value)
    return record


def _change(version: int) -> Change:
    change = Change(
        event_id=str(uuid.uuid4()), event_type="OrderSigned", aggregate_type="Order",
        aggregate_id=ORDER, aggregate_version=version, patient_id=PATIENT,
        source="//clinical/orders", source_ip="10.0.0.7", request_id="req-2",
        purpose_of_use=PURPOSE_OF_USE_ETREAT, hash=bytes(range(32)),
    )  # fmt: skip
    change.occurred_at.FromDatetime(AT)
    change.recorded_at.FromDatetime(AT)
    change.actor.subject = "dr-house"
    return change


def _valid(event: dict[str, Any]) -> dict[str, Any]:
    """The event, after checking that it parses into the R4 AuditEvent model."""
    text = json.dumps(event)
    AuditEvent.model_validate_json(text)
    resource: dict[str, Any] = json.loads(text)
    return resource


def test_a_read_is_a_balp_patient_read() -> None:
    event = _valid(access_audit_event(_access()))

    assert (event["type"]["code"], event["subtype"][0]["code"], event["action"]) == (
        "rest", "read", "R"
    )  # fmt: skip
    assert event["outcome"] == "0"
    assert event["recorded"] == "2025-03-01T09:30:15.123456Z"
    patient, record, request = event["entity"]
    assert patient["what"] == {"reference": f"Patient/{PATIENT}"}
    assert (patient["role"]["system"], patient["role"]["code"]) == (OBJECT_ROLE, "1")
    assert (record["what"]["identifier"]["value"], record["role"]["code"]) == (ORDER, "4")
    assert (request["type"]["code"], request["what"]["identifier"]["value"]) == (
        "XrequestId", "req-1"
    )  # fmt: skip
    user, application, server = event["agent"]
    assert [agent["requestor"] for agent in event["agent"]] == [True, False, False]
    assert user["who"]["identifier"]["value"] == "dr-house"
    assert user["role"][0]["coding"][0]["code"] == "clinician"
    assert user["network"] == {"address": "2001:db8::7", "type": "2"}
    assert user["purposeOfUse"][0]["coding"][0]["code"] == "ETREAT"
    assert user["extension"][0]["valueString"] == "ward-tablet/2.1"
    assert application["type"]["coding"][0]["code"] == "110150"
    assert server["who"]["display"] == "//clinical/orders"
    assert event["source"]["observer"]["display"] == "//clinical/orders"
    assert event["purposeOfEvent"][0]["coding"][0]["system"] == ACT_REASON


def test_a_refused_search_is_a_minor_failure_with_the_reason() -> None:
    record = _access(
        action=access_pb2.ACCESS_ACTION_SEARCH, outcome=access_pb2.ACCESS_OUTCOME_DENIED,
        reason="not in care team",
    )  # fmt: skip

    event = _valid(access_audit_event(record))

    assert (event["subtype"][0]["code"], event["action"]) == ("search-type", "E")
    assert (event["outcome"], event["outcomeDesc"]) == ("4", "not in care team")


def test_an_export_is_a_dicom_export_event() -> None:
    event = _valid(access_audit_event(_access(action=access_pb2.ACCESS_ACTION_EXPORT)))

    assert (event["type"]["system"], event["type"]["code"], event["action"]) == (
        DICOM, "110106", "R"
    )  # fmt: skip


def test_an_access_about_no_patient_without_purpose_leaves_those_elements_out() -> None:
    record = _access(patient_id="", purpose_of_use=PURPOSE_OF_USE_UNSPECIFIED, request_id="")
    record.ClearField("accessed_record_ids")
    record.ClearField("trace_context")

    event = _valid(access_audit_event(record))

    assert "entity" not in event
    assert "purposeOfEvent" not in event
    assert "purposeOfUse" not in event["agent"][0]


@pytest.mark.parametrize(("version", "action", "subtype"), [(1, "C", "create"), (4, "U", "update")])
def test_a_change_is_a_create_or_an_update_by_its_author(
    version: int, action: str, subtype: str
) -> None:
    event = _valid(change_audit_event(_change(version)))

    assert (event["action"], event["subtype"][0]["code"]) == (action, subtype)
    assert event["subtype"][1]["code"] == "Order.OrderSigned"
    assert event["agent"][0]["type"]["coding"][0]["code"] == "AUT"
    details = {d["type"]: d["valueString"] for d in event["entity"][1]["detail"]}
    assert details["version"] == str(version)
    assert details["hash"] == bytes(range(32)).hex()
