"""Every AuditService RPC: no token UNAUTHENTICATED, no auditor role PERMISSION_DENIED (and the
refusal is itself an access record), malformed requests INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status  # type: ignore[import-untyped]

from clinical.audit.v1 import access_pb2, audit_pb2_grpc
from clinical.audit.v1 import audit_pb2 as pb

pytestmark = pytest.mark.integration

Metadata = tuple[tuple[str, str], ...]
Stub = audit_pb2_grpc.AuditServiceStub
PATIENT = str(uuid.uuid4())
EVENT_TOPIC = "clinical.orders.events.v1"


def _range(since: int, until: int) -> pb.TimeRange:
    window = pb.TimeRange()
    window.since.FromSeconds(since)
    window.until.FromSeconds(until)
    return window


VALID: dict[str, Callable[[Stub], Callable[..., Awaitable[Any]]]] = {
    "History": lambda stub: stub.History,
    "AccessLog": lambda stub: stub.AccessLog,
    "Verify": lambda stub: stub.Verify,
    "ExportAuditEvents": lambda stub: stub.ExportAuditEvents,
}
REQUESTS: dict[str, Message] = {
    "History": pb.HistoryRequest(patient_id=PATIENT),
    "AccessLog": pb.AccessLogRequest(patient_id=PATIENT),
    "Verify": pb.VerifyRequest(topic=EVENT_TOPIC),
    "ExportAuditEvents": pb.ExportAuditEventsRequest(patient_id=PATIENT),
}
INVALID: list[tuple[str, Message, str]] = [
    ("History", pb.HistoryRequest(), "subject"),
    ("History", pb.HistoryRequest(patient_id="Jane Doe"), "patient_id"),
    ("History", pb.HistoryRequest(aggregate_id=PATIENT, recorded=_range(200, 100)),
     "recorded.until"),
    ("History", pb.HistoryRequest(patient_id=PATIENT, page_token="forged"),  # noqa: S106
     "page_token"),
    ("AccessLog", pb.AccessLogRequest(), "patient_id"),
    ("AccessLog", pb.AccessLogRequest(patient_id=PATIENT, occurred=_range(5, 5)),
     "occurred.until"),
    ("ExportAuditEvents", pb.ExportAuditEventsRequest(), "patient_id"),
    ("ExportAuditEvents", pb.ExportAuditEventsRequest(patient_id=PATIENT,
                                                      period=_range(9, 1)), "period.until"),
    ("Verify", pb.VerifyRequest(), "topic"),
    ("Verify", pb.VerifyRequest(topic="clinical.audit.access.v1"), "topic"),
]  # fmt: skip


@pytest.fixture
async def stub(audit_service: Any) -> Stub:
    audit = await audit_service()
    result: Stub = audit.stub
    return result


async def _failure(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await call
    return failed.value


@pytest.mark.parametrize("rpc", list(REQUESTS))
async def test_a_call_without_a_token_is_unauthenticated(stub: Stub, rpc: str) -> None:
    failure = await _failure(VALID[rpc](stub)(REQUESTS[rpc]))

    assert failure.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("rpc", list(REQUESTS))
async def test_a_caller_who_is_not_an_auditor_is_refused(
    stub: Stub, rpc: str, clinician: Metadata
) -> None:
    failure = await _failure(VALID[rpc](stub)(REQUESTS[rpc], metadata=clinician))

    assert failure.code() == grpc.StatusCode.PERMISSION_DENIED
    assert PATIENT not in (failure.details() or "")


@pytest.mark.parametrize(("rpc", "request_message", "field"), INVALID)
async def test_a_malformed_request_names_the_field_and_never_the_value(
    stub: Stub, auditor: Metadata, rpc: str, request_message: Message, field: str
) -> None:
    failure = await _failure(VALID[rpc](stub)(request_message, metadata=auditor))

    assert failure.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(failure)
    bad_request = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == [field]
    assert "Jane" not in (failure.details() or "")


async def test_a_refused_look_at_a_patients_trail_is_itself_in_the_access_log(
    audit_service: Any, clinician: Metadata, auditor: Metadata
) -> None:
    audit = await audit_service()
    patient = str(uuid.uuid4())
    await _failure(audit.stub.History(pb.HistoryRequest(patient_id=patient), metadata=clinician))

    answer = await audit.eventually(
        lambda: audit.stub.AccessLog(pb.AccessLogRequest(patient_id=patient), metadata=auditor),
        lambda response: any(r.operation == "History" for r in response.records),
    )

    [refusal] = [r for r in answer.records if r.operation == "History"]
    assert refusal.outcome == access_pb2.ACCESS_OUTCOME_DENIED
    assert refusal.actor.subject == "dr-house"
    assert refusal.user_agent.startswith("audit-console/1.0 grpc-python")
    assert refusal.source_ip == "127.0.0.1"
    assert refusal.source == "//clinical/audit"
    assert refusal.data_category == "audit-trail"
