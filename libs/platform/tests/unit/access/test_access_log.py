"""AccessAuditLog with an in-memory access topic: recorded before the answer, published after,
kept across a crash, and failing closed when it cannot record."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import grpc
import pytest
from clinical_testing.access import (
    AbortedError,
    FakeServicerContext,
    InMemoryAccessTopic,
)
from clinical_testing.waiting import eventually

from clinical.audit.v1 import access_pb2
from clinical_platform.access.log import AccessAuditLog
from clinical_platform.access.outbox import AccessOutbox, OutboxEntry
from clinical_platform.access.publisher import AccessAuditConfig
from clinical_platform.access.records import AccessAction
from clinical_platform.clients.kafka import KafkaConnection, KafkaSecurity
from clinical_platform.grpc_auth import deny
from clinical_platform.principals import Principal, Role
from clinical_platform.settings import BaseServiceSettings

pytestmark = pytest.mark.unit

PATIENT = str(uuid.uuid4())
ORDER = str(uuid.uuid4())
CLINICIAN = Principal("dr-house", frozenset({Role.CLINICIAN}))
CALL = FakeServicerContext(
    metadata=(("user-agent", "ward-tablet/2.1"), ("x-request-id", "req-9")),
    peer_address="ipv4:10.1.2.3:50123",
)
LogFactory = Callable[..., AccessAuditLog]


@pytest.fixture
def topic() -> InMemoryAccessTopic:
    return InMemoryAccessTopic()


@pytest.fixture
async def access_log(tmp_path: Path, topic: InMemoryAccessTopic) -> AsyncIterator[LogFactory]:
    """Access logs on one outbox file, publishing to `topic`; stopped (unflushed) after."""
    built: list[AccessAuditLog] = []

    def build() -> AccessAuditLog:
        config = AccessAuditConfig(
            kafka=KafkaConnection("unused:9092", KafkaSecurity("PLAINTEXT")),
            outbox_path=tmp_path / "access-outbox.sqlite",
            source="//clinical/orders", poll_interval_s=0.05, retry_delay_s=0.01,
            stop_timeout_s=1.0,
        )  # fmt: skip
        log = AccessAuditLog(config, sink_factory=topic.factory)
        built.append(log)
        return log

    yield build
    for log in built:
        await log.stop(flush=False)


async def _published(topic: InMemoryAccessTopic, count: int) -> list[access_pb2.AccessRecord]:
    await eventually(lambda: len(topic.records) >= count, within_s=2)
    return topic.records


async def test_a_read_is_recorded_with_the_calls_provenance_and_published(
    access_log: LogFactory, topic: InMemoryAccessTopic
) -> None:
    log = access_log()
    await log.start()

    await log.record_read(CALL, CLINICIAN, patient_id=PATIENT, record_type="Order",
                          record_ids=[ORDER], category="orders", operation="GetOrder")  # fmt: skip

    [record] = await _published(topic, 1)
    assert topic.sent[0][0] == PATIENT.encode()
    assert record.outcome == access_pb2.ACCESS_OUTCOME_SUCCESS
    assert (record.source_ip, record.user_agent, record.request_id) == (
        "10.1.2.3", "ward-tablet/2.1", "req-9"
    )  # fmt: skip
    assert record.source == "//clinical/orders"
    assert list(record.accessed_record_ids) == [ORDER]
    assert await log.pending() == 0


async def test_a_record_left_by_a_crashed_process_is_published_by_the_next(
    access_log: LogFactory, topic: InMemoryAccessTopic
) -> None:
    topic.available = False  # Kafka is away: the record can only wait in the outbox
    crashed = access_log()
    await crashed.start()
    await crashed.record_read(CALL, CLINICIAN, patient_id=PATIENT, record_type="Order")
    await crashed.stop(flush=False)  # as a kill would: nothing flushed

    topic.available = True
    restarted = access_log()
    await restarted.start()

    [record] = await _published(topic, 1)
    assert record.patient_id == PATIENT
    assert await restarted.pending() == 0


async def test_records_wait_while_kafka_is_away_and_go_out_when_it_returns(
    access_log: LogFactory, topic: InMemoryAccessTopic
) -> None:
    topic.available = False
    log = access_log()
    await log.start()
    for _ in range(3):
        await log.record_read(CALL, CLINICIAN, patient_id=PATIENT, record_type="Result",
                              action=AccessAction.SEARCH)  # fmt: skip
    await eventually(lambda: topic.starts > 1, within_s=2)  # the publisher tried, and failed
    assert await log.pending() == 3

    topic.available = True

    assert len(await _published(topic, 3)) == 3
    assert topic.starts > 1  # the publisher started over after the failures


async def test_stop_publishes_what_is_pending(
    access_log: LogFactory, topic: InMemoryAccessTopic
) -> None:
    log = access_log()
    await log.start()
    await log.record_read(CALL, CLINICIAN, patient_id=PATIENT, record_type="Order")

    await log.stop()

    assert len(topic.records) == 1


class AcknowledgedLate(InMemoryAccessTopic):
    """Kafka has the records, but the acknowledgement reaches us only once ``ack`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.sending = asyncio.Event()
        self.ack = asyncio.Event()

    async def send(self, entries: Sequence[OutboxEntry]) -> None:
        await super().send(entries)
        self.sending.set()
        await self.ack.wait()


async def test_a_batch_in_flight_when_the_log_stops_is_published_once(tmp_path: Path) -> None:
    topic = AcknowledgedLate()
    config = AccessAuditConfig(
        kafka=KafkaConnection("unused:9092", KafkaSecurity("PLAINTEXT")),
        outbox_path=tmp_path / "access-outbox.sqlite", source="//clinical/orders",
        poll_interval_s=0.05, retry_delay_s=0.01, stop_timeout_s=5.0,
    )  # fmt: skip
    log = AccessAuditLog(config, sink_factory=topic.factory)
    await log.start()
    await log.record_read(CALL, CLINICIAN, patient_id=PATIENT, record_type="Order")
    await topic.sending.wait()

    # The publisher's round is cancelled between Kafka's acknowledgement and the removal.
    stopping = asyncio.create_task(log.stop())
    await asyncio.sleep(0.05)
    topic.ack.set()
    await stopping

    assert len(topic.records) == 1


async def test_a_read_that_cannot_be_recorded_is_not_served(
    access_log: LogFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_disk(self: AccessOutbox, entries: list[OutboxEntry]) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(AccessOutbox, "add", broken_disk)
    log = access_log()
    await log.start()
    call = FakeServicerContext()

    with pytest.raises(AbortedError) as aborted:
        await log.record_read(call, CLINICIAN, patient_id=PATIENT, record_type="Order")

    assert aborted.value.code == grpc.StatusCode.UNAVAILABLE
    assert PATIENT not in aborted.value.details


async def test_deny_with_an_access_log_records_the_refusal_then_refuses(
    access_log: LogFactory, topic: InMemoryAccessTopic
) -> None:
    log = access_log()
    await log.start()
    call = FakeServicerContext(peer_address="ipv6:[2001:db8::7]:443")

    with pytest.raises(AbortedError) as aborted:
        await deny(call, CLINICIAN, "not this patient's care team", access_log=log,
                   patient_id=PATIENT, record_type="Order", record_ids=[ORDER],
                   action=AccessAction.UPDATE, operation="SignOrder")  # fmt: skip

    assert aborted.value.code == grpc.StatusCode.PERMISSION_DENIED
    [record] = await _published(topic, 1)
    assert record.outcome == access_pb2.ACCESS_OUTCOME_DENIED
    assert record.action == access_pb2.ACCESS_ACTION_UPDATE
    assert record.reason == "not this patient's care team"
    assert (record.patient_id, record.source_ip) == (PATIENT, "2001:db8::7")


async def test_a_refusal_stands_even_when_it_cannot_be_recorded(
    access_log: LogFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_disk(self: AccessOutbox, entries: list[OutboxEntry]) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(AccessOutbox, "add", broken_disk)
    log = access_log()
    await log.start()

    with pytest.raises(AbortedError) as aborted:
        await deny(FakeServicerContext(), CLINICIAN, "no", access_log=log, patient_id=PATIENT)

    assert aborted.value.code == grpc.StatusCode.PERMISSION_DENIED


async def test_deny_without_an_access_log_only_refuses() -> None:
    with pytest.raises(AbortedError) as aborted:
        await deny(FakeServicerContext(), CLINICIAN, "no")

    assert aborted.value.code == grpc.StatusCode.PERMISSION_DENIED


def test_config_from_settings_puts_the_outbox_in_the_replicas_state_dir(tmp_path: Path) -> None:
    settings = BaseServiceSettings.model_validate({
        "grpc_port": 0, "state_dir": tmp_path / "orders-1",
        "ACCESS_AUDIT_TOPIC": "clinical.audit.access.v1-test", "ACCESS_AUDIT_PARTITIONS": 12,
        "KAFKA_SASL_USERNAME": "orders", "KAFKA_SASL_PASSWORD": "unused",
    })  # fmt: skip

    config = AccessAuditConfig.from_settings(settings, service="orders")

    assert config.outbox_path == tmp_path / "orders-1" / "access-outbox.sqlite"
    assert (config.topic, config.partitions) == ("clinical.audit.access.v1-test", 12)
    assert config.source == "//clinical/orders"
