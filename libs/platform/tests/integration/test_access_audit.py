"""The access log on the real broker: its topic exists from its start, before any record; a
record written before a process is killed is published by the next process on the same outbox;
records are keyed by patient."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from clinical_testing.access import read_access_records
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.kafka import delete_topics
from clinical_testing.plugin import TopicFactory, unique_name
from clinical_testing.service_process import free_tcp_port
from clinical_testing.waiting import eventually

from clinical_platform.access.log import AccessAuditLog
from clinical_platform.access.publisher import AccessAuditConfig
from clinical_platform.clients.kafka import build_admin

pytestmark = pytest.mark.integration

# A service process that records one read and is then killed (SIGKILL: no flush, no cleanup)
# before its publisher can send: its broker address is a closed port.
RECORD_THEN_DIE = """
import asyncio, os, signal, sys
from pathlib import Path
from clinical_platform.access.log import AccessAuditLog
from clinical_platform.access.publisher import AccessAuditConfig
from clinical_platform.clients.kafka import KafkaConnection
from clinical_platform.principals import Principal, Role
from clinical_testing.access import FakeServicerContext

async def main() -> None:
    outbox, topic, patient, broker = sys.argv[1:5]
    kafka = KafkaConnection(broker)
    config = AccessAuditConfig(kafka, Path(outbox), "//clinical/orders", topic=topic)
    log = AccessAuditLog(config)
    await log.start()
    call = FakeServicerContext(metadata=(("user-agent", "ward-tablet/2.1"),))
    principal = Principal("dr-house", frozenset({Role.CLINICIAN}))
    await log.record_read(call, principal, patient_id=patient, record_type="Order")
    print("recorded", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


async def test_a_record_outlives_a_killed_process_and_the_next_one_publishes_it(
    servers: ServerEndpoints, kafka_topic: TopicFactory, tmp_path: Path
) -> None:
    topic = await kafka_topic(prefix="test.access.", partitions=3)
    outbox, patient = tmp_path / "access-outbox.sqlite", str(uuid.uuid4())
    died = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", RECORD_THEN_DIE, str(outbox), topic, patient,
         f"127.0.0.1:{free_tcp_port()}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert died.stdout == "recorded\n"

    config = AccessAuditConfig(
        servers.kafka, outbox, "//clinical/orders", topic=topic, partitions=3
    )
    successor = AccessAuditLog(config)
    await successor.start()
    try:
        await eventually(lambda: _nothing_pending(successor), within_s=10)
    finally:
        await successor.stop()
    published = await read_access_records(servers.kafka_bootstrap_servers, topic)

    [(key, record)] = published
    assert key == patient.encode()
    assert (record.patient_id, record.record_type) == (patient, "Order")
    assert record.user_agent == "ward-tablet/2.1"
    assert os.stat(outbox).st_mode & 0o077 == 0


async def _nothing_pending(log: AccessAuditLog) -> bool:
    return await log.pending() == 0


async def test_the_access_topic_exists_from_the_start_before_any_record(
    servers: ServerEndpoints, tmp_path: Path
) -> None:
    topic = unique_name("test.access.")
    config = AccessAuditConfig(
        servers.kafka, tmp_path / "access-outbox.sqlite", "//clinical/orders", topic=topic
    )
    log = AccessAuditLog(config)
    await log.start()
    admin = build_admin(servers.kafka)
    await admin.start()
    try:
        # Consumers of the topic (the audit service) find it although nobody has read anything.
        assert topic in await admin.list_topics()
    finally:
        await admin.close()
        await log.stop()
        await delete_topics(servers.kafka_bootstrap_servers, [topic])
