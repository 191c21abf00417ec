"""How a projection meets what it cannot apply, on the real broker, MongoDB server and Vault:
a forged (unencrypted) patient event is dead-lettered with its reason, MongoDB refusing our
credentials is retried rather than emptying the read model, and a forgotten patient's event is
retried until its marker is written, never dead-lettered."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.eventlog import make_envelope
from clinical_testing.kafka import publish_envelopes, read_records
from clinical_testing.waiting import eventually
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.observability.metrics import REGISTRY
from clinical_platform.projections import ProjectionRunner, dead_letter_topic, upsert_versioned
from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.security.forgetting import record_forgotten
from clinical_platform.security.keys import PatientKeyring

pytestmark = pytest.mark.integration

TopicFactory = Callable[..., Awaitable[str]]


class Notes:
    """Test projection: one document per aggregate; it can be told to fail a few times."""

    def __init__(self, topic: str, failures: Sequence[Exception] = ()) -> None:
        self.name = f"notes-{uuid.uuid4().hex[:8]}"
        self.topics: Sequence[str] = (topic,)
        self.collections: Sequence[str] = ("notes",)
        self.failures = list(failures)
        self.forgotten_failures: list[Exception] = []

    async def setup(self, db: AsyncDatabase[Any]) -> None:
        await db["notes"].create_index("patient_id")

    async def apply(self, envelope: Envelope, db: AsyncDatabase[Any]) -> None:
        if self.failures:
            raise self.failures.pop(0)
        await upsert_versioned(
            db["notes"], envelope.aggregate_id, envelope.aggregate_version,
            {"patient_id": envelope.patient_id, "payload": envelope.payload},
        )  # fmt: skip

    async def apply_forgotten(self, envelope: Envelope, db: AsyncDatabase[Any]) -> None:
        if self.forgotten_failures:
            raise self.forgotten_failures.pop(0)
        await db["notes"].replace_one(
            {"_id": envelope.aggregate_id},
            {"patient_id": envelope.patient_id, "forgotten": True},
            upsert=True,
        )


@contextlib.asynccontextmanager
async def running(runner: ProjectionRunner) -> AsyncIterator[None]:
    task = asyncio.create_task(runner.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def sealed_event(cipher: EnvelopeCipher, patient_id: str, note: str) -> Envelope:
    envelope = make_envelope(str(uuid.uuid4()), 1, str(uuid.uuid4()), note)
    envelope.patient_id = patient_id
    await cipher.encrypt(envelope)
    return envelope


async def document(db: AsyncDatabase[Any], aggregate_id: str) -> dict[str, Any]:
    for _ in range(300):
        found: dict[str, Any] | None = await db["notes"].find_one({"_id": aggregate_id})
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("the projection never wrote the document")


async def test_a_forged_unencrypted_patient_event_is_dead_lettered_with_its_reason(
    servers: ServerEndpoints, kafka_topic: TopicFactory, mongo_database: AsyncDatabase[Any],
    vault_cipher: EnvelopeCipher,
) -> None:  # fmt: skip
    topic = await kafka_topic()
    patient_id = str(uuid.uuid4())
    forged = make_envelope(str(uuid.uuid4()), 1, str(uuid.uuid4()), "forged in clear")
    forged.patient_id = patient_id
    genuine = await sealed_event(vault_cipher, patient_id, "written by our writer")
    projection = Notes(topic)
    runner = ProjectionRunner(
        projection, kafka=servers.kafka, database=mongo_database, cipher=vault_cipher
    )

    async with running(runner):
        await publish_envelopes(servers.kafka, topic, forged, genuine)
        await document(mongo_database, genuine.aggregate_id)

    assert await mongo_database["notes"].find_one({"_id": forged.aggregate_id}) is None
    [dead] = await read_records(servers.kafka, dead_letter_topic(topic))
    assert Envelope.FromString(dead.value).event_id == forged.event_id
    assert dict(dead.headers)["dlq_error"] == b"UnsealedPatientEventError"


async def test_mongodb_refusing_our_credentials_is_retried_not_dead_lettered(
    servers: ServerEndpoints, kafka_topic: TopicFactory, mongo_database: AsyncDatabase[Any],
    vault_cipher: EnvelopeCipher,
) -> None:  # fmt: skip
    topic = await kafka_topic()
    refused = [OperationFailure("Authentication failed.", code=18) for _ in range(2)]
    projection = Notes(topic, failures=refused)
    runner = ProjectionRunner(
        projection, kafka=servers.kafka, database=mongo_database, cipher=vault_cipher
    )
    event = await sealed_event(vault_cipher, str(uuid.uuid4()), "kept through a rotation")

    async with running(runner):
        await publish_envelopes(servers.kafka, topic, event)
        await document(mongo_database, event.aggregate_id)

    retried = REGISTRY.get_sample_value(
        "clinical_consumer_transient_failures_total",
        {"consumer": projection.name, "error": "OperationFailure"},
    )
    assert retried == 2
    assert await read_records(servers.kafka, dead_letter_topic(topic)) == []


async def test_a_forgotten_patients_event_is_retried_until_its_marker_is_written(
    servers: ServerEndpoints, kafka_topic: TopicFactory, mongo_database: AsyncDatabase[Any],
    vault_cipher: EnvelopeCipher, vault_keyring: PatientKeyring,
) -> None:  # fmt: skip
    topic = await kafka_topic()
    patient_id = str(uuid.uuid4())
    event = await sealed_event(vault_cipher, patient_id, "to be forgotten")
    await vault_keyring.forget(patient_id)
    projection = Notes(topic)
    projection.forgotten_failures = [ValueError("a bug, not the event's fault")]
    runner = ProjectionRunner(
        projection, kafka=servers.kafka, database=mongo_database, cipher=vault_cipher
    )

    async with running(runner):
        await publish_envelopes(servers.kafka, topic, event)
        written = await document(mongo_database, event.aggregate_id)

    assert written["forgotten"] is True
    assert await read_records(servers.kafka, dead_letter_topic(topic)) == []


class PlainNotes(Notes):
    """Notes without a marker of its own: forgetting marks its documents by ``patient_id``."""

    apply_forgotten = None  # type: ignore[assignment]  # not a ForgettingProjection


async def test_an_event_decrypted_before_its_patient_was_forgotten_is_marked_once_written(
    servers: ServerEndpoints, kafka_topic: TopicFactory, mongo_database: AsyncDatabase[Any],
    vault_cipher: EnvelopeCipher,
) -> None:  # fmt: skip
    # The live sweep ran before this projection wrote the patient's first document (nothing to
    # mark yet), and the projection still decrypts: its key was cached before the forget.
    topic = await kafka_topic()
    patient_id = str(uuid.uuid4())
    event = await sealed_event(vault_cipher, patient_id, "decrypted with a cached key")
    await record_forgotten(mongo_database, patient_id)
    runner = ProjectionRunner(
        PlainNotes(topic), kafka=servers.kafka, database=mongo_database, cipher=vault_cipher
    )

    async def marked() -> bool:
        found = await mongo_database["notes"].find_one({"_id": event.aggregate_id}) or {}
        return found.get("forgotten") is True

    async with running(runner):
        await publish_envelopes(servers.kafka, topic, event)
        assert await eventually(marked, within_s=30)

    written = await mongo_database["notes"].find_one({"_id": event.aggregate_id}) or {}
    assert "payload" not in written
