"""AccessLog over gRPC: reads and refusals recorded by other services, with the caller's
address and user agent; survived crashes; deduplicated redeliveries."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from clinical_testing.access import (
    AbortedError,
    FakeServicerContext,
    InMemoryAccessTopic,
    read_access_records,
)
from clinical_testing.endpoints import ServerEndpoints
from pymongo.asynchronous.database import AsyncDatabase

from audit.adapters.documents import ACCESS_COLLECTION
from clinical.audit.v1 import access_pb2
from clinical.audit.v1 import audit_pb2 as pb
from clinical_platform.access.log import AccessAuditLog
from clinical_platform.access.publisher import AccessAuditConfig
from clinical_platform.access.records import AccessAction
from clinical_platform.clients.kafka import KafkaConnection, build_producer
from clinical_platform.grpc_auth import deny
from clinical_platform.principals import Principal, Role

pytestmark = pytest.mark.integration

Metadata = tuple[tuple[str, str], ...]
CLINICIAN = Principal("dr-house", frozenset({Role.CLINICIAN}))
REASON = "arrest in the corridor, no team assigned"
FROM_THE_WARD = FakeServicerContext(
    metadata=(("user-agent", "ward-tablet/2.1"), ("x-request-id", "req-77")),
    peer_address="ipv4:10.20.30.40:51515",
)
LogOf = Callable[[Any, str], AccessAuditLog]


async def test_reads_and_refusals_show_with_address_user_agent_and_outcome(
    audit_service: Any, access_log_of: LogOf, auditor: Metadata
) -> None:
    audit = await audit_service()
    patient, order = str(uuid.uuid4()), str(uuid.uuid4())
    orders_log = access_log_of(audit, "orders")
    await orders_log.start()
    await orders_log.record_read(
        FROM_THE_WARD, CLINICIAN, patient_id=patient, record_type="Order", record_ids=[order],
        category="orders", action=AccessAction.READ, operation="GetOrder",
    )  # fmt: skip
    with pytest.raises(AbortedError):
        await deny(FROM_THE_WARD, CLINICIAN, "not this patient's care team",
                   access_log=orders_log, patient_id=patient, record_type="Order",
                   record_ids=[order], operation="CancelOrder",
                   action=AccessAction.UPDATE)  # fmt: skip
    await orders_log.stop()

    answer = await audit.eventually(
        lambda: audit.stub.AccessLog(pb.AccessLogRequest(patient_id=patient), metadata=auditor),
        lambda response: len(_served_by_orders(response)) >= 2,
    )

    read, refused = _served_by_orders(answer)
    assert read.outcome == access_pb2.ACCESS_OUTCOME_SUCCESS
    assert (read.operation, read.action) == ("GetOrder", access_pb2.ACCESS_ACTION_READ)
    assert list(read.accessed_record_ids) == [order]
    assert refused.outcome == access_pb2.ACCESS_OUTCOME_DENIED
    assert refused.reason == "not this patient's care team"
    for record in (read, refused):
        assert (record.source_ip, record.user_agent) == ("10.20.30.40", "ward-tablet/2.1")
        assert (record.actor.subject, record.request_id) == ("dr-house", "req-77")
        assert record.source == "//clinical/orders"
    assert read.occurred_at.ToNanoseconds() <= refused.occurred_at.ToNanoseconds()


async def test_a_record_left_by_a_crash_is_published_on_restart_and_recorded_once(
    audit_service: Any, access_log_of: LogOf, auditor: Metadata,
    servers: ServerEndpoints,
) -> None:  # fmt: skip
    audit = await audit_service()
    patient = str(uuid.uuid4())
    crashed = access_log_of(audit, "orders-0")
    # The process dies before its publisher sends anything: no broker reachable, no flush.
    unreachable = InMemoryAccessTopic()
    unreachable.available = False
    before_crash = AccessAuditLog(crashed.config, sink_factory=unreachable.factory)
    await before_crash.start()
    await before_crash.record_read(FROM_THE_WARD, CLINICIAN, patient_id=patient,
                                   record_type="LabResult", category="laboratory")  # fmt: skip
    await before_crash.stop(flush=False)

    restarted = AccessAuditLog(crashed.config)  # the same outbox file, real Kafka
    await restarted.start()
    on_topic = await audit.eventually(
        lambda: read_access_records(servers.kafka_bootstrap_servers, crashed.config.topic),
        lambda found: any(record.patient_id == patient for _, record in found),
    )
    await restarted.stop()
    [(key, record)] = [(k, r) for k, r in on_topic if r.patient_id == patient]
    # The same record delivered a second time (at-least-once delivery): recorded once.
    await _publish_again(servers.kafka_bootstrap_servers, crashed.config, key, record)

    answer = await audit.eventually(
        lambda: audit.stub.AccessLog(pb.AccessLogRequest(patient_id=patient), metadata=auditor),
        lambda response: len(_served_by_orders(response)) >= 1,
    )
    assert key == patient.encode()
    assert [r.record_id for r in _served_by_orders(answer)] == [record.record_id]
    delivered = await read_access_records(servers.kafka_bootstrap_servers, crashed.config.topic)
    # At least the publisher's copy and ours; the publisher itself may have sent it twice
    # (at-least-once: a send whose acknowledgement came late is sent again).
    assert [r.record_id for _, r in delivered].count(record.record_id) >= 2


async def test_access_log_of_one_user_lists_their_accesses_across_patients(
    audit_service: Any, access_log_of: LogOf, auditor: Metadata
) -> None:
    audit = await audit_service()
    nosy = Principal(f"nosy-{uuid.uuid4().hex[:8]}", frozenset({Role.CLINICIAN}))
    patients = [str(uuid.uuid4()) for _ in range(3)]
    log = access_log_of(audit, "patient")
    await log.start()
    for patient in patients:
        await log.record_read(FROM_THE_WARD, nosy, patient_id=patient, record_type="Patient",
                              action=AccessAction.READ)  # fmt: skip
    await log.stop()

    answer = await audit.eventually(
        lambda: audit.stub.AccessLog(
            pb.AccessLogRequest(actor_subject=nosy.subject), metadata=auditor
        ),
        lambda response: len(response.records) >= 3,
    )

    assert [r.patient_id for r in answer.records] == patients


async def test_break_glass_only_lists_the_reads_served_by_break_glass_across_patients(
    audit_service: Any, access_log_of: LogOf, auditor: Metadata,
    mongo_database: AsyncDatabase[Any],
) -> None:  # fmt: skip
    audit = await audit_service()
    in_care, emergency, other_emergency = (str(uuid.uuid4()) for _ in range(3))
    log = access_log_of(audit, "orders")
    await log.start()
    await log.record_read(FROM_THE_WARD, CLINICIAN, patient_id=in_care, record_type="Order",
                          category="orders", operation="GetOrder")  # fmt: skip
    for patient in (emergency, other_emergency):
        await log.record_read(FROM_THE_WARD, CLINICIAN, patient_id=patient, record_type="Order",
                              category="orders", operation="GetOrder",
                              break_glass_reason=REASON)  # fmt: skip
    await log.stop()
    every_read = await audit.eventually(
        lambda: audit.stub.AccessLog(
            pb.AccessLogRequest(actor_subject=CLINICIAN.subject), metadata=auditor
        ),
        lambda response: len(response.records) >= 3,
    )

    review_queue = await audit.stub.AccessLog(
        pb.AccessLogRequest(break_glass_only=True), metadata=auditor
    )
    of_one_patient = await audit.stub.AccessLog(
        pb.AccessLogRequest(patient_id=emergency, break_glass_only=True), metadata=auditor
    )
    in_their_care = await audit.stub.AccessLog(
        pb.AccessLogRequest(patient_id=in_care, break_glass_only=True), metadata=auditor
    )

    assert len(every_read.records) == 3
    assert [(r.patient_id, r.break_glass, r.break_glass_reason) for r in review_queue.records] == [
        (emergency, True, REASON), (other_emergency, True, REASON),
    ]  # fmt: skip
    assert [r.patient_id for r in of_one_patient.records] == [emergency]
    assert list(in_their_care.records) == []
    indexes = await mongo_database[ACCESS_COLLECTION].index_information()
    assert any(index["key"][0][0] == "break_glass" for index in indexes.values())


async def test_an_access_log_without_any_filter_is_refused(
    audit_service: Any, auditor: Metadata
) -> None:
    audit = await audit_service()

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await audit.stub.AccessLog(pb.AccessLogRequest(break_glass_only=False), metadata=auditor)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _served_by_orders(response: pb.AccessLogResponse) -> list[access_pb2.AccessRecord]:
    """Leave out the auditor's own look at the patient's trail: that is an access record too."""
    return [record for record in response.records if record.source == "//clinical/orders"]


async def _publish_again(
    bootstrap: str, config: AccessAuditConfig, key: bytes, record: access_pb2.AccessRecord
) -> None:
    producer = build_producer(KafkaConnection(bootstrap))
    await producer.start()
    try:
        await producer.send_and_wait(config.topic, record.SerializeToString(), key=key)
    finally:
        await producer.stop()
