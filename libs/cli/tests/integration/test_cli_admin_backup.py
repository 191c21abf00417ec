"""clinical admin backup|restore: topics copied from the session's Kafka land in a private,
empty Kafka record for record at the same offsets (transactions interleaved and aborted ones
included), the key store's wrapped keys in a new mount; a second restore and a tampered backup
are refused with exit 7 before anything is written."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import NewTopic
from clinical_testing.endpoints import ServerEndpoints, parse_exports
from clinical_testing.isolated import IsolatedInfra
from clinical_testing.plugin import TopicFactory, unique_name
from typer.testing import CliRunner, Result

from clinical_cli.app import app
from clinical_cli.errors import ExitCode
from clinical_platform.backup.key_store import export_key_store
from clinical_platform.clients.kafka import (
    KafkaConnection,
    KafkaSecurity,
    build_admin,
    build_consumer,
    build_producer,
)
from clinical_platform.eventlog.layout import layout_topic
from clinical_platform.eventlog.topics import ensure_topics, events_topic
from clinical_platform.security.checkpoint_log import checkpoints_topic_spec
from clinical_platform.security.checkpoints import CHECKPOINTS_TOPIC

pytestmark = pytest.mark.integration

Seen = list[tuple[int, bytes | None, bytes | None, tuple[tuple[str, bytes], ...], int]]


@pytest.fixture(scope="module")
def private_kafka(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """An empty Kafka of this module's own (free ports, its own folder): the restore's target.
    Its environment as the operator, KAFKA_* only."""
    infra = IsolatedInfra(pytestconfig.rootpath, tmp_path_factory.mktemp("restore-target"))
    started = infra.localinfra("up", "kafka")
    assert started.returncode == 0, started.stderr
    try:
        exports = parse_exports(infra.localinfra("env").stdout)
        yield {name: value for name, value in exports.items() if name.startswith("KAFKA_")}
    finally:
        infra.localinfra("down", "kafka")


async def test_restore_lands_every_record_at_its_offset_and_refuses_a_second_time(  # noqa: PLR0917
    servers: ServerEndpoints, private_kafka: dict[str, str], kafka_topic: TopicFactory,
    key_store_mount: str, vault: hvac.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    log = unique_name("backup-")
    access = await kafka_topic(prefix="clinical.audit.access-test.")
    restored_mount = unique_name("test-keys-restored-")
    monkeypatch.setenv("CLINICAL_CONFIG_DIR", str(tmp_path / "cli"))
    folder = tmp_path / "backup"
    try:
        # Inside the try: its topics match the services' event-topic pattern, and records that
        # are no envelopes must not outlive the test where a later stack's projections read.
        await _record_history(servers.kafka, log, access)
        _store_keys(vault, key_store_mount)
        copied = await _clinical(servers.as_env(), "-o", "json", "admin", "backup", str(folder),
                                 "--event-log", log, "--access-topic", access,
                                 "--key-store-mount", key_store_mount)  # fmt: skip
        assert copied.exit_code == 0, copied.output
        summary = json.loads(copied.stdout)
        assert summary["topics"] == {events_topic(log): 5, layout_topic(events_topic(log)): 1,
                                     access: 3, CHECKPOINTS_TOPIC: 1}  # fmt: skip
        assert (summary["wrapped_keys"], summary["forgotten"]) == (2, 1)

        target = private_kafka | {"VAULT_ADDR": servers.vault_addr,
                                  "VAULT_TOKEN": servers.vault_token}  # fmt: skip
        restore = ("-o", "json", "admin", "restore", str(folder),
                   "--key-store-mount", restored_mount)  # fmt: skip
        restored = await _clinical(target, *restore)

        assert restored.exit_code == 0, restored.output
        assert json.loads(restored.stdout)["records"] == 10
        assert re_bars(restored.stderr) == sorted(summary["topics"])
        private = KafkaConnection(private_kafka["KAFKA_BOOTSTRAP_SERVERS"],
                                  KafkaSecurity.from_env(private_kafka))  # fmt: skip
        for topic, partitions in ((events_topic(log), 2), (layout_topic(events_topic(log)), 1),
                                  (access, 1)):  # fmt: skip
            for partition in range(partitions):
                assert await _seen(private, topic, partition) == await _seen(
                    servers.kafka, topic, partition
                ), f"{topic}/{partition}"
        checkpoints = await _seen(private, CHECKPOINTS_TOPIC, 0)
        assert [r[1] for r in checkpoints] == [f"{events_topic(log)}/0".encode(), None]
        assert _entries(vault, restored_mount) == _entries(vault, key_store_mount)

        again = await _clinical(target, *restore)
        assert again.exit_code == ExitCode.CONFLICT, again.output
        assert "already holds" in again.stderr

        tampered = tmp_path / "tampered"
        shutil.copytree(folder, tampered)
        file = tampered / "topics" / access / "0.jsonl"
        file.write_text(file.read_text().replace('"offset":1', '"offset":5'))
        refused = await _clinical(target, "admin", "restore", str(tampered))
        assert refused.exit_code == ExitCode.CONFLICT, refused.output
        assert "does not match its SHA-256" in refused.stderr
    finally:
        admin = build_admin(servers.kafka)
        await admin.start()
        await admin.delete_topics([events_topic(log), layout_topic(events_topic(log))])
        await admin.close()
        if f"{restored_mount}/" in vault.sys.list_mounted_secrets_engines()["data"]:
            vault.sys.disable_secrets_engine(path=restored_mount)


def re_bars(stderr: str) -> list[str]:
    """The topics whose restore bar reached its end."""
    return sorted(line.split()[1] for line in stderr.splitlines() if line.startswith("restore "))


async def _clinical(env: dict[str, str], *args: str) -> Result:
    return await asyncio.to_thread(CliRunner(env={"COLUMNS": "200", **env}).invoke, app,
                                   list(args))  # fmt: skip


async def _record_history(kafka: KafkaConnection, log: str, access: str) -> None:
    """Partition 0: a transaction of two, an aborted one, a transaction of one. Partition 1:
    two producers' transactions interleaved (record, record, marker, marker). A plain layout
    record, three plain access records, and a checkpoint keyed to partition 0."""
    topic = events_topic(log)
    # The audit service makes the checkpoints topic; this test may run before any has started.
    await ensure_topics(kafka, [checkpoints_topic_spec()])
    admin = build_admin(kafka)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 2, 1), NewTopic(layout_topic(topic), 1, 1)])
    await admin.close()
    first = build_producer(kafka, transactional_id=unique_name("backup-test-a-"))
    second = build_producer(kafka, transactional_id=unique_name("backup-test-b-"))
    plain = build_producer(kafka)
    for producer in (first, second, plain):
        await producer.start()
    try:
        await _transaction(first, topic, 0, [b"a1", b"a2"], commit=True)
        await _transaction(first, topic, 0, [b"aborted"], commit=False)
        await _transaction(first, topic, 0, [b"a3"], commit=True)
        await first.begin_transaction()
        await second.begin_transaction()
        await _send(first, topic, 1, b"b1")
        await _send(second, topic, 1, b"c1")
        await first.commit_transaction()
        await second.commit_transaction()
        await plain.send_and_wait(layout_topic(topic), b'{"partitions": 2, "writer_replicas": 1}',
                                  key=topic.encode(), partition=0)  # fmt: skip
        for index in range(3):
            await _send(plain, access, 0, f"access-{index}".encode())
        await plain.send_and_wait(CHECKPOINTS_TOPIC, secrets.token_bytes(16),
                                  key=f"{topic}/0".encode())  # fmt: skip
    finally:
        for producer in (first, second, plain):
            await producer.stop()


async def _transaction(
    producer: AIOKafkaProducer, topic: str, partition: int, values: list[bytes], *, commit: bool
) -> None:
    await producer.begin_transaction()
    for value in values:
        await _send(producer, topic, partition, value)
    await (producer.commit_transaction() if commit else producer.abort_transaction())


async def _send(producer: AIOKafkaProducer, topic: str, partition: int, value: bytes) -> None:
    headers = [("ce_id", secrets.token_hex(4).encode()), ("empty", b"")]
    await producer.send_and_wait(topic, value, key=b"k-" + value, partition=partition,
                                 headers=headers)  # fmt: skip


async def _seen(kafka: KafkaConnection, topic: str, partition: int) -> Seen:
    """Every committed record (offset, key, value, headers, timestamp), then the end offset."""
    source = TopicPartition(topic, partition)
    consumer = build_consumer(kafka)
    await consumer.start()
    try:
        consumer.assign([source])
        end = (await consumer.end_offsets([source]))[source]
        seen: Seen = []
        while await consumer.position(source) < end:
            seen += [
                (r.offset, r.key, r.value, tuple((n, bytes(v)) for n, v in r.headers), r.timestamp)
                for r in (await consumer.getmany(source, timeout_ms=1000)).get(source, [])
            ]
        return [*seen, (end, None, None, (), 0)]
    finally:
        await consumer.stop()


def _store_keys(vault: hvac.Client, mount: str) -> None:
    for _ in range(2):
        vault.secrets.kv.v2.create_or_update_secret(
            path=f"patients/{unique_name('')}", mount_point=mount, cas=0,
            secret={"key_id": secrets.token_hex(8), "key_version": 1,
                    "wrapped_key": "vault:v1:" + secrets.token_hex(24),
                    "created_at": "2026-12-07T00:00:00+00:00"},
        )  # fmt: skip
    vault.secrets.kv.v2.create_or_update_secret(
        path=f"forgotten/{unique_name('')}", mount_point=mount, cas=0,
        secret={"forgotten_at": "2026-12-07T00:00:00+00:00"},
    )  # fmt: skip


def _entries(vault: hvac.Client, mount: str) -> dict[str, Any]:
    return export_key_store(vault, mount).entries
