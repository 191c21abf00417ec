"""ExportAuditEvents over gRPC: a patient's changes and accesses as FHIR R4 AuditEvents that
fhir.resources accepts, in the IHE Basic Audit Log Patterns' shape."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from clinical_testing.access import FakeServicerContext
from clinical_testing.eventlog import EventStoreFactory
from fhir.resources.R4B.auditevent import AuditEvent
from google.protobuf.timestamp_pb2 import Timestamp

from clinical.audit.v1 import audit_pb2 as pb
from clinical_platform.access.log import AccessAuditLog
from clinical_platform.access.records import AccessAction
from clinical_platform.principals import Principal, Role

pytestmark = pytest.mark.integration

# fhir.resources ships R4B (4.3), whose AuditEvent is R4's unchanged, and R5 at the top level.
Metadata = tuple[tuple[str, str], ...]
CLINICIAN = Principal("dr-house", frozenset({Role.CLINICIAN}), client_id="ward-tablet")
FROM_THE_WARD = FakeServicerContext(
    metadata=(("user-agent", "ward-tablet/2.1"), ("x-purpose-of-use", "TREAT")),
    peer_address="ipv4:10.20.30.40:51515",
)


async def test_a_patients_trail_exports_as_valid_r4_audit_events(
    event_store: EventStoreFactory, audit_service: Any, append_event: Any,
    access_log_of: Callable[[Any, str], AccessAuditLog], auditor: Metadata, *, phi_canary: str,
) -> None:  # fmt: skip
    store = await event_store(partitions=1)
    patient, order = str(uuid.uuid4()), str(uuid.uuid4())
    await append_event(store, patient, order, 1)
    await append_event(store, patient, order, 2)
    audit = await audit_service(store.topic)
    orders_log = access_log_of(audit, "orders")
    await orders_log.start()
    await orders_log.record_read(FROM_THE_WARD, CLINICIAN, patient_id=patient,
                                 record_type="Order", record_ids=[order], category="orders",
                                 action=AccessAction.READ, operation="GetOrder")  # fmt: skip
    await orders_log.record_denial(FROM_THE_WARD, CLINICIAN, reason="no consent",
                                   patient_id=patient, record_type="LabResult",
                                   action=AccessAction.SEARCH, operation="ListResults")  # fmt: skip
    await orders_log.stop()
    request = pb.ExportAuditEventsRequest(patient_id=patient)

    answer = await audit.eventually(
        lambda: audit.stub.ExportAuditEvents(request, metadata=auditor),
        lambda response: len(response.audit_events) >= 4,
    )

    for text in answer.audit_events:
        AuditEvent.model_validate_json(text)  # raises unless it is a valid R4 AuditEvent
    events = [json.loads(text) for text in answer.audit_events]
    read, refused = events[2:4]
    assert [(e["action"], e["outcome"]) for e in events[:4]] == [
        ("C", "0"), ("U", "0"), ("R", "0"), ("E", "4")
    ]  # fmt: skip
    assert [e["subtype"][0]["code"] for e in events[:4]] == [
        "create", "update", "read", "search-type"
    ]  # fmt: skip
    for event in events[:4]:
        assert event["type"]["code"] == "rest"
        [patient_entity] = [e for e in event["entity"] if e.get("role", {}).get("code") == "1"]
        assert patient_entity["what"]["reference"] == f"Patient/{patient}"
        [user] = [agent for agent in event["agent"] if agent["requestor"]]
        assert user["network"]["address"] == "10.20.30.40"
        assert user["purposeOfUse"][0]["coding"][0]["code"] == "TREAT"
    assert read["source"]["observer"]["display"] == "//clinical/orders"
    assert read["agent"][0]["who"]["identifier"]["value"] == "dr-house"
    assert read["agent"][0]["extension"][0]["valueString"] == "ward-tablet/2.1"
    assert refused["outcomeDesc"] == "no consent"
    recorded = [Timestamp(), *(Timestamp() for _ in events[1:])]
    for stamp, event in zip(recorded, events, strict=True):
        stamp.FromJsonString(event["recorded"])
    assert [s.ToNanoseconds() for s in recorded] == sorted(s.ToNanoseconds() for s in recorded)
    assert "Jane" not in json.dumps(list(answer.audit_events))
    assert phi_canary not in json.dumps(list(answer.audit_events))
