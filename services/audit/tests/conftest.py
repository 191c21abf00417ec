"""Fixtures of the audit tests: an audit service per test, over its own topics and database.

Each test gets its own access topic, checkpoints topic, Transit signing key, read-model database
and consumer groups; History reads only the event topics the test names (its own EventStore
topics), so other tests' events never show up. The servicer listens on 127.0.0.1 on a free port.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import string
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.plugin import TopicFactory, TransitKeyFactory, unique_name
from clinical_testing.security import patient_envelope
from clinical_testing.tokens import TokenMint
from pymongo.asynchronous.database import AsyncDatabase

from audit.bootstrap import RunningAudit, running_audit
from audit.settings import AuditSettings
from clinical.audit.v1 import audit_pb2_grpc
from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.access.log import AccessAuditLog
from clinical_platform.access.publisher import AccessAuditConfig
from clinical_platform.clients.kafka import KafkaConnection, build_admin
from clinical_platform.eventlog.store import EventStore
from clinical_platform.grpc_server import start_grpc_server
from clinical_platform.principals import Role
from clinical_platform.projections import dead_letter_topic

Metadata = tuple[tuple[str, str], ...]
T = TypeVar("T")
TIMEOUT_S = 30.0
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
# What the test client says it is (gRPC puts its own name after it).
USER_AGENT = "audit-console/1.0"


@dataclass
class AuditUnderTest:
    stub: audit_pb2_grpc.AuditServiceStub
    running: RunningAudit
    settings: AuditSettings

    async def eventually(
        self,
        probe: Callable[[], Awaitable[T]],
        done: Callable[[T], bool],
        timeout_s: float = TIMEOUT_S,
    ) -> T:
        """Call ``probe`` until ``done`` holds for its answer (the projections are
        asynchronous), or time is up: then the last answer, for the test to fail on."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            answer = await probe()
            if done(answer) or asyncio.get_running_loop().time() > deadline:
                return answer
            await asyncio.sleep(0.2)


AuditFactory = Callable[..., Awaitable[AuditUnderTest]]


@pytest.fixture
async def audit_service(  # noqa: PLR0917 - pytest passes fixtures by parameter
    servers: ServerEndpoints,
    mongo_database: AsyncDatabase[Any],
    kafka_topic: TopicFactory,
    transit_key: TransitKeyFactory,
    token_mint: TokenMint,
    tmp_path: Path,
) -> AsyncIterator[AuditFactory]:
    """``await audit_service(*event_topics)``: a running audit service reading those topics."""
    access_topic = await kafka_topic(prefix="test.access.", partitions=3)
    checkpoints_topic = await kafka_topic(prefix="test.checkpoints.")
    signing_key = transit_key(key_type="ed25519")
    read_topics: list[str] = [access_topic]
    async with AsyncExitStack() as stack:

        async def start(*event_topics: str) -> AuditUnderTest:
            read_topics.extend(event_topics)
            escaped = "|".join(re.escape(topic) for topic in event_topics) or "(?!)"
            settings = AuditSettings.model_validate({
                "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap_servers,
                "MONGODB_URL": servers.mongodb_url,
                "VAULT_ADDR": servers.vault_addr,
                "VAULT_TOKEN": servers.vault_token,
                "VAULT_AUDIT_SIGNING_KEY": signing_key,
                "ACCESS_AUDIT_TOPIC": access_topic,
                "ACCESS_AUDIT_PARTITIONS": 3,
                "grpc_port": 0,
                "mongodb_database": mongo_database.name,
                "read_model_name": unique_name("audit-"),
                "event_topic_pattern": f"^({escaped})$",
                "checkpoints_topic": checkpoints_topic,
                "state_dir": tmp_path / "audit-state",
            })  # fmt: skip
            running = await stack.enter_async_context(
                running_audit(settings, verifier=token_mint.verifier_for("audit"))
            )
            server = await start_grpc_server(host="127.0.0.1", port=0, services=running.services)
            stack.push_async_callback(server.stop, 0)
            channel = grpc.aio.insecure_channel(
                f"127.0.0.1:{server.port}", options=[("grpc.primary_user_agent", USER_AGENT)]
            )
            stack.push_async_callback(channel.close)
            return AuditUnderTest(audit_pb2_grpc.AuditServiceStub(channel), running, settings)

        yield start
    await _delete_dead_letter_topics(servers.kafka_bootstrap_servers, read_topics)


@pytest.fixture
def auditor(token_mint: TokenMint) -> Metadata:
    return token_mint.metadata("privacy-officer", Role.AUDITOR)


@pytest.fixture
def clinician(token_mint: TokenMint) -> Metadata:
    return token_mint.metadata("dr-house", Role.CLINICIAN)


@pytest.fixture
def access_log_of(
    servers: ServerEndpoints, tmp_path: Path
) -> Callable[[AuditUnderTest, str], AccessAuditLog]:
    """An access log as another service has it: same access topic, its own outbox file."""

    def build(audit: AuditUnderTest, outbox: str) -> AccessAuditLog:
        config = AccessAuditConfig(
            kafka=KafkaConnection(servers.kafka_bootstrap_servers),
            outbox_path=tmp_path / outbox / "access-outbox.sqlite",
            source="//clinical/orders",
            topic=audit.settings.access_audit_topic,
            partitions=3,
            poll_interval_s=0.1,
        )
        return AccessAuditLog(config)

    return build


AppendEvent = Callable[[EventStore, str, str, int], Awaitable[Envelope]]


@pytest.fixture
def phi_canary() -> str:
    """Patient data in every appended event's payload: a random token no id, hash or clock
    reading can hold by chance, so finding it anywhere means the payload leaked."""
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(20))


@pytest.fixture
def append_event(phi_canary: str) -> AppendEvent:
    """``await append_event(store, patient_id, aggregate_id, version)``."""

    async def append(
        store: EventStore, patient_id: str, aggregate_id: str, version: int
    ) -> Envelope:
        return await _append_event(store, patient_id, aggregate_id, version, phi_canary)

    return append


async def _append_event(
    store: EventStore, patient_id: str, aggregate_id: str, version: int, phi_canary: str
) -> Envelope:
    """One event about the patient, as a clinician's request from a ward tablet records it."""
    envelope = patient_envelope(
        patient_id, aggregate_id, version, note=f"Jane Q. Doe, 1970-01-01, {phi_canary}",
        request_id=f"req-{aggregate_id[:8]}-{version}",
    )  # fmt: skip
    envelope.actor.roles.append("clinician")
    envelope.source_ip = "10.20.30.40"
    envelope.user_agent = "ward-tablet/2.1"
    envelope.trace_context.traceparent = TRACEPARENT
    await store.append(aggregate_id, version - 1, [envelope])
    return envelope


async def _delete_dead_letter_topics(bootstrap: str, topics: list[str]) -> None:
    admin = build_admin(KafkaConnection(bootstrap))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [dead_letter_topic(t) for t in topics if dead_letter_topic(t) in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()
