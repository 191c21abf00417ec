"""The read model: a replay from offset 0 rebuilds it document for document; poison is set aside."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.plugin import unique_name
from pymongo.asynchronous.database import AsyncDatabase

from clinical.events.v1.envelope_pb2 import Envelope
from clinical.patient.v1 import patient_pb2 as pb
from clinical.patient.v1 import patient_pb2_grpc
from clinical_platform.clients.kafka import KafkaConnection, build_consumer, build_producer
from clinical_platform.projections import dead_letter_topic, rebuild_projection
from patient.bootstrap import patient_projection

pytestmark = pytest.mark.integration

Metadata = tuple[tuple[str, str]]
Register = Callable[..., Awaitable[pb.RegisterPatientResponse]]
Stub = patient_pb2_grpc.PatientServiceStub
TIMEOUT_S = 20.0


async def _documents(db: AsyncDatabase[Any], collections: list[str]) -> dict[str, list[Any]]:
    return {name: [doc async for doc in db[name].find({}).sort("_id", 1)] for name in collections}


def _rid() -> str:
    return str(uuid.uuid4())


async def _read(stub: Stub, metadata: Metadata, patient_id: str, version: int) -> pb.Patient:
    response = await stub.GetPatient(
        pb.GetPatientRequest(patient_id=patient_id, min_version=version),
        metadata=metadata, timeout=TIMEOUT_S,
    )  # fmt: skip
    patient: pb.Patient = response.patient
    return patient


async def test_replaying_the_topic_from_scratch_rebuilds_the_same_read_model(
    *,
    patient_service: Any, register: Register, stub: Stub, registrar: Metadata,
    margaret_pb: Callable[..., pb.Demographics], stranger: pb.Demographics,
    servers: ServerEndpoints, second_database: AsyncDatabase[Any],
) -> None:  # fmt: skip
    first = await register()
    duplicate = await register(margaret_pb(phone="", identifiers=[]))
    daughter = await register(
        margaret_pb(name=pb.HumanName(given=["Chloe"], family="Thornton"), birth_date="1990-08-30",
                 identifiers=[], phone="")
    )  # fmt: skip
    other = await register(stranger)
    await stub.UpdateDemographics(
        pb.UpdateDemographicsRequest(request_id=_rid(), patient_id=first.patient_id,
                                     demographics=margaret_pb(email="peggy@example.org")),
        metadata=registrar, timeout=TIMEOUT_S,
    )  # fmt: skip
    link = await stub.LinkPatients(
        pb.LinkPatientsRequest(request_id=_rid(), patient_id=other.patient_id,
                               other_patient_id=daughter.patient_id),
        metadata=registrar, timeout=TIMEOUT_S,
    )  # fmt: skip
    unlink = await stub.UnlinkPatients(
        pb.UnlinkPatientsRequest(request_id=_rid(), patient_id=other.patient_id,
                                 other_patient_id=daughter.patient_id, reason="wrong"),
        metadata=registrar, timeout=TIMEOUT_S,
    )  # fmt: skip
    forgotten = await stub.ForgetPatient(
        pb.ForgetPatientRequest(request_id=_rid(), patient_id=duplicate.patient_id),
        metadata=registrar, timeout=TIMEOUT_S,
    )  # fmt: skip
    assert link.version < unlink.version
    await _read(stub, registrar, unlink.anchor_patient_id, unlink.version)
    await _read(stub, registrar, duplicate.patient_id, forgotten.version)
    await _read(stub, registrar, first.patient_id, 3)
    await asyncio.sleep(1.0)  # let the runner finish golden records of the last batch

    projection = patient_projection(unique_name("replay-"), patient_service.topic)
    collections = list(projection.collections)
    replayed = await rebuild_projection(
        projection, kafka=KafkaConnection(servers.kafka_bootstrap_servers),
        database=second_database, progress=False, cipher=patient_service.running.cipher,
    )  # fmt: skip
    assert replayed >= 12
    live = await _documents(patient_service.database, collections)
    rebuilt = await _documents(second_database, collections)
    for name in collections:
        assert rebuilt[name] == live[name], name
    queued = [item for item in live["review_queue"] if item.get("queued")]
    # The daughter: a household-only possible match, with her mother's two records.
    assert {item["patient_id"] for item in queued} == {daughter.patient_id}


async def test_a_poison_event_goes_to_the_dead_letter_topic_and_projection_goes_on(
    patient_service: Any, register: Register, servers: ServerEndpoints
) -> None:
    poison = Envelope(
        event_id=str(uuid.uuid4()), event_type="PatientRegistered", aggregate_type="Patient",
        aggregate_id=str(uuid.uuid4()), aggregate_version=1, payload=b"\xff\xff\xff",
    )  # fmt: skip
    poison.occurred_at.FromDatetime(datetime.now(UTC))
    producer = build_producer(KafkaConnection(servers.kafka_bootstrap_servers))
    await producer.start()
    try:
        await producer.send_and_wait(
            patient_service.topic, poison.SerializeToString(), key=poison.aggregate_id.encode()
        )
    finally:
        await producer.stop()
    after = await register()  # read back: the projection went past the poison
    assert after.version == 2
    consumer = build_consumer(
        KafkaConnection(servers.kafka_bootstrap_servers), dead_letter_topic(patient_service.topic)
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=TIMEOUT_S)
    finally:
        await consumer.stop()
    assert Envelope.FromString(record.value).event_id == poison.event_id
