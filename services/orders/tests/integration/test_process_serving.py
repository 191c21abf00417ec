"""The orders service as a process on the real servers: serves health, stops on SIGTERM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.plugin import unique_name
from clinical_testing.service_process import ServiceProcess
from pymongo import MongoClient

from clinical_platform.clients.kafka import KafkaConnection, build_admin
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.projections import dead_letter_topic

pytestmark = pytest.mark.integration

GRACE_SECONDS = 5


@pytest.fixture
def isolated_env(servers: ServerEndpoints, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The servers, plus topics, a database and a state folder of this test's own."""
    log_name, database = unique_name("orders-"), unique_name("test_")
    yield servers.as_env() | {
        "ORDERS_EVENT_LOG_NAME": log_name,
        "ORDERS_RESULTS_EVENTS_TOPIC": events_topic(unique_name("results-")),
        "ORDERS_MONGODB_DATABASE": database,
        "ORDERS_STATE_DIR": str(tmp_path / "state"),
        "ORDERS_GRPC_GRACE_SECONDS": str(GRACE_SECONDS),
    }
    mongo: MongoClient[dict[str, Any]]
    with MongoClient(servers.mongodb_url) as mongo:
        mongo.drop_database(database)


async def _delete_topics(bootstrap: str, own_topic: str, listened_to: str) -> None:
    admin = build_admin(KafkaConnection(bootstrap))
    await admin.start()
    try:
        ours = {own_topic, dead_letter_topic(own_topic), dead_letter_topic(listened_to)}
        await admin.delete_topics(sorted(ours & set(await admin.list_topics())))
    finally:
        await admin.close()


async def test_reports_serving_then_exits_zero_within_grace_on_sigterm(
    servers: ServerEndpoints, isolated_env: dict[str, str]
) -> None:
    try:
        with ServiceProcess.on_free_port(
            "orders", port_variable="ORDERS_GRPC_PORT", env=isolated_env
        ) as service:
            await service.wait_serving()
            assert await service.terminate(GRACE_SECONDS) == 0
    finally:
        await _delete_topics(
            servers.kafka_bootstrap_servers,
            events_topic(isolated_env["ORDERS_EVENT_LOG_NAME"]),
            isolated_env["ORDERS_RESULTS_EVENTS_TOPIC"],
        )
