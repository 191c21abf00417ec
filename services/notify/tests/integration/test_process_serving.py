"""The notify service as a process on the real servers: serves health, stops on SIGTERM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.plugin import unique_name
from clinical_testing.service_process import ServiceProcess
from pymongo import MongoClient

from clinical_platform.clients.kafka import build_admin
from clinical_platform.eventlog.topics import events_topic

pytestmark = pytest.mark.integration

GRACE_SECONDS = 5


async def test_reports_serving_then_exits_zero_within_grace_on_sigterm(
    servers: ServerEndpoints, tmp_path: Path
) -> None:
    log_name, database = unique_name("notify-"), unique_name("test_")
    env = servers.as_env() | {
        "NOTIFY_EVENT_LOG_NAME": log_name,
        "NOTIFY_ORDERS_EVENTS_TOPIC": events_topic(unique_name("orders-")),
        "NOTIFY_RESULTS_EVENTS_TOPIC": events_topic(unique_name("results-")),
        "NOTIFY_MONGODB_DATABASE": database,
        "NOTIFY_STATE_DIR": str(tmp_path / "state"),
        "NOTIFY_GRPC_GRACE_SECONDS": str(GRACE_SECONDS),
    }
    try:
        with ServiceProcess.on_free_port(
            "notify", port_variable="NOTIFY_GRPC_PORT", env=env
        ) as service:
            await service.wait_serving()
            assert await service.terminate(GRACE_SECONDS) == 0
    finally:
        admin = build_admin(servers.kafka)
        await admin.start()
        try:
            topic = events_topic(log_name)
            await admin.delete_topics(sorted({topic} & set(await admin.list_topics())))
        finally:
            await admin.close()
        mongo: MongoClient[dict[str, Any]]
        with MongoClient(servers.mongodb_url) as mongo:
            mongo.drop_database(database)
