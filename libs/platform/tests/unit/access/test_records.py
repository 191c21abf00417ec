"""Access records: only values that cannot be patient data, and the provenance of the call."""

import uuid
from datetime import UTC, datetime

import pytest

from clinical.audit.v1 import access_pb2
from clinical.events.v1 import provenance_pb2
from clinical_platform.access.records import (
    AccessAction,
    AccessOutcome,
    AccessTarget,
    RequestOrigin,
    access_record,
    purpose_of_use,
    record_key,
)
from clinical_platform.eventlog.context import Actor

pytestmark = pytest.mark.unit

PATIENT = str(uuid.uuid4())
ORDER = str(uuid.uuid4())
ACTOR = Actor("dr-house", ("clinician",), client_id="ward-tablet")
ORIGIN = RequestOrigin(
    source_ip="10.0.0.7",
    user_agent="ward-tablet/2.1",
    purpose_of_use="ETREAT",
    request_id="req-42",
    trace_context={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
)


def test_a_served_read_records_who_what_why_where_and_when() -> None:
    at = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    target = AccessTarget(PATIENT, "Order", [ORDER], "orders", AccessAction.READ, "GetOrder")

    record = access_record(
        actor=ACTOR, target=target, origin=ORIGIN, outcome=AccessOutcome.SUCCESS,
        source="//clinical/orders", at=at,
    )  # fmt: skip

    assert uuid.UUID(record.record_id)
    assert record.occurred_at.ToDatetime(UTC) == at
    assert (record.actor.subject, list(record.actor.roles)) == ("dr-house", ["clinician"])
    assert record.actor.client_id == "ward-tablet"
    assert (record.patient_id, record.record_type) == (PATIENT, "Order")
    assert list(record.accessed_record_ids) == [ORDER]
    assert record.data_category == "orders"
    assert record.action == access_pb2.ACCESS_ACTION_READ
    assert record.outcome == access_pb2.ACCESS_OUTCOME_SUCCESS
    assert record.purpose_of_use == provenance_pb2.PURPOSE_OF_USE_ETREAT
    assert (record.source_ip, record.user_agent) == ("10.0.0.7", "ward-tablet/2.1")
    assert record.request_id == "req-42"
    assert record.trace_context.traceparent.startswith("00-4bf92f")
    assert (record.source, record.operation, record.reason) == ("//clinical/orders", "GetOrder", "")


def test_ids_that_are_not_uuids_are_left_out_as_they_may_be_anything_a_client_typed() -> None:
    target = AccessTarget("Jane Doe 1970-01-01", "Patient", ["MRN 12345", ORDER])

    record = access_record(actor=ACTOR, target=target, origin=ORIGIN,
                           outcome=AccessOutcome.DENIED, source="//clinical/patient",
                           reason="not this patient's care team")  # fmt: skip

    assert record.patient_id == ""
    assert list(record.accessed_record_ids) == [ORDER]
    assert record.outcome == access_pb2.ACCESS_OUTCOME_DENIED
    assert record.reason == "not this patient's care team"


def test_user_agent_is_cut_at_512_characters_and_odd_request_ids_are_dropped() -> None:
    origin = RequestOrigin(user_agent="x" * 2000, request_id="bad\nid")

    record = access_record(actor=ACTOR, target=AccessTarget(), origin=origin,
                           outcome=AccessOutcome.FAILURE, source="//clinical/results")  # fmt: skip

    assert len(record.user_agent) == 512
    assert record.request_id == ""


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("TREAT", provenance_pb2.PURPOSE_OF_USE_TREAT),
        ("LEGAL", provenance_pb2.PURPOSE_OF_USE_LEGAL),
        ("curiosity", provenance_pb2.PURPOSE_OF_USE_UNSPECIFIED),
        ("", provenance_pb2.PURPOSE_OF_USE_UNSPECIFIED),
    ],
)
def test_an_unknown_purpose_is_recorded_as_unspecified_never_refused(
    code: str, expected: int
) -> None:
    assert purpose_of_use(code) == expected


@pytest.mark.parametrize("action", list(AccessAction))
def test_every_action_has_its_proto_value(action: AccessAction) -> None:
    record = access_record(actor=ACTOR, target=AccessTarget(action=action), origin=ORIGIN,
                           outcome=AccessOutcome.SUCCESS, source="//clinical/test")  # fmt: skip

    assert access_pb2.AccessAction.Name(record.action) == f"ACCESS_ACTION_{action.value}"


def test_records_are_keyed_by_patient_or_else_by_actor() -> None:
    about_patient = access_pb2.AccessRecord(patient_id=PATIENT)
    about_no_patient = access_pb2.AccessRecord()
    about_no_patient.actor.subject = "dr-house"

    assert record_key(about_patient) == PATIENT.encode()
    assert record_key(about_no_patient) == b"dr-house"
