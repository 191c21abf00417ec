"""`make infra-*` against an isolated set of servers (own data folder, own free ports).

The session's shared servers are left alone; the download and build cache is shared, so
nothing is rebuilt.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from clinical_testing.isolated import IsolatedInfra

from localinfra import postgresql
from localinfra.config import InfraConfig

if TYPE_CHECKING:
    from clinical_platform.clients.kafka import KafkaConnection

pytestmark = pytest.mark.integration

SERVERS = ("kafka", "postgresql", "ferretdb", "openbao", "keycloak")


@pytest.fixture(scope="module")
def infra(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IsolatedInfra]:
    isolated = IsolatedInfra(pytestconfig.rootpath, tmp_path_factory.mktemp("infra"))
    first = isolated.make("infra-up")
    assert first.returncode == 0, first.stderr
    try:
        yield isolated
    finally:
        isolated.make("infra-reset")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_second_infra_up_is_a_no_op(infra: IsolatedInfra) -> None:
    pids = {server: infra.pid(server) for server in SERVERS}

    again = infra.make("infra-up")

    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already running") == len(SERVERS)
    assert {server: infra.pid(server) for server in pids} == pids


def test_infra_env_exports_work_for_plain_client_scripts(infra: IsolatedInfra) -> None:
    script = textwrap.dedent(
        """
        import asyncio, base64, os
        import hvac
        from pymongo import AsyncMongoClient
        from clinical_platform.clients.kafka import KafkaConnection, build_admin

        async def main():
            admin = build_admin(KafkaConnection(os.environ["KAFKA_BOOTSTRAP_SERVERS"]))
            await admin.start()
            await admin.list_topics()
            await admin.close()
            mongo = AsyncMongoClient(os.environ["MONGODB_URL"])
            await mongo.plain.things.insert_one({"ok": 1})
            assert await mongo.plain.things.count_documents({}) == 1
            await mongo.close()
            vault = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"])
            vault.secrets.transit.create_key(name="plain-script")
            secret = base64.b64encode(b"hello").decode()
            sealed = vault.secrets.transit.encrypt_data(name="plain-script", plaintext=secret)
            opened = vault.secrets.transit.decrypt_data(
                name="plain-script", ciphertext=sealed["data"]["ciphertext"])
            assert opened["data"]["plaintext"] == secret
            print("plain clients ok")

        asyncio.run(main())
        """
    )
    completed = subprocess.run(
        ["bash", "-c", f'eval "$(make -s infra-env)" && {sys.executable} -c "$SCRIPT"'],
        cwd=infra.repo_root, env={**infra.env, "SCRIPT": script},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip

    assert completed.returncode == 0, completed.stderr
    assert "plain clients ok" in completed.stdout


def test_killed_kafka_comes_back_with_its_data(infra: IsolatedInfra) -> None:
    kafka = infra.kafka
    asyncio.run(_produce(kafka, "survivor", b"still here"))

    os.kill(infra.pid("kafka"), signal.SIGKILL)
    restarted = infra.make("infra-up")

    assert restarted.returncode == 0, restarted.stderr
    assert "kafka      started" in restarted.stdout
    assert asyncio.run(_consume_one(kafka, "survivor")) == b"still here"


def test_postgresql_starts_over_a_stale_lock_naming_a_live_process(infra: IsolatedInfra) -> None:
    # As after a reboot: the cluster's lock names a pid that is now some other process of the
    # server's user (another cluster's backend, say), which PostgreSQL alone takes for a server.
    cluster = postgresql.cluster_dir(InfraConfig.from_env(infra.env))
    server = infra.pid("postgresql")
    os.killpg(server, signal.SIGKILL)
    while _alive(server):
        time.sleep(0.05)
    squatter = subprocess.Popen([*postgresql.as_server_user(), "sleep", "300"])
    try:
        for lock in [cluster / "postmaster.pid", *cluster.glob(".s.PGSQL.*.lock")]:
            lines = lock.read_text().split("\n")
            lock.write_text("\n".join([str(squatter.pid), *lines[1:]]))

        restarted = infra.make("infra-up")

        assert restarted.returncode == 0, restarted.stderr
        assert "postgresql started" in restarted.stdout
        assert _alive(infra.pid("postgresql"))
    finally:
        squatter.kill()
        squatter.wait()


def test_missing_java_fails_with_one_line_naming_java(infra: IsolatedInfra) -> None:
    no_java = {**infra.env, "PATH": str(Path(sys.executable).parent) + ":/usr/bin/nonexistent"}
    completed = subprocess.run(
        [sys.executable, "-m", "localinfra", "up"], cwd=infra.repo_root, env=no_java,
        capture_output=True, text=True, check=False,
    )  # fmt: skip

    assert completed.returncode == 1
    assert completed.stderr.count("\n") == 1
    assert "java" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_infra_down_leaves_none_of_our_processes_running(infra: IsolatedInfra) -> None:
    pids = [infra.pid(server) for server in SERVERS]

    down = infra.make("infra-down")
    status = infra.make("infra-status")

    assert down.returncode == 0, down.stderr
    assert not [pid for pid in pids if _alive(pid)]
    assert status.returncode != 0
    assert status.stdout.count("stopped") == len(SERVERS)


def test_infra_reset_deletes_every_server_data_including_the_database_cluster(
    infra: IsolatedInfra,
) -> None:
    cluster = postgresql.cluster_dir(InfraConfig.from_env(infra.env))
    assert (cluster / "PG_VERSION").exists()

    reset = infra.make("infra-reset")

    assert reset.returncode == 0, reset.stderr
    assert not cluster.exists()
    assert not Path(infra.env["CLINICAL_INFRA_DIR"]).exists()
    again = infra.make("infra-up")
    assert again.returncode == 0, again.stderr
    assert (cluster / "PG_VERSION").exists()


async def _produce(kafka: KafkaConnection, topic: str, value: bytes) -> None:
    from aiokafka.admin import NewTopic  # noqa: PLC0415

    from clinical_platform.clients.kafka import build_admin, build_producer  # noqa: PLC0415

    admin = build_admin(kafka)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    producer = build_producer(kafka)
    await producer.start()
    await producer.send_and_wait(topic, value)
    await producer.stop()


async def _consume_one(kafka: KafkaConnection, topic: str) -> bytes | None:
    from clinical_platform.clients.kafka import build_consumer  # noqa: PLC0415

    consumer = build_consumer(kafka, topic)
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=60)
        value: bytes | None = record.value
        return value
    finally:
        await consumer.stop()
