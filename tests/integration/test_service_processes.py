"""Every writing service as a process on the real servers: serves health, stops on SIGTERM.

Each runs with an event log, database, state folder and upstream topics of its own, all removed
afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Service:
    name: str
    # Settings naming the topics it reads from other services (isolated per test as well).
    upstream_topics: tuple[str, ...] = ()
    # Seconds past the grace period a clean exit may take (the patient service loads more).
    exit_margin_s: float = 0.0


SERVICES = [
    Service("patient", exit_margin_s=5),
    Service("orders", upstream_topics=("RESULTS_EVENTS_TOPIC",)),
    Service("results", upstream_topics=("ORDERS_EVENTS_TOPIC",)),
    Service("notify", upstream_topics=("ORDERS_EVENTS_TOPIC", "RESULTS_EVENTS_TOPIC")),
]


@dataclass(frozen=True)
class IsolatedService:
    service: Service
    env: dict[str, str]
    # Every topic and database this test made carries this mark in its name.
    mark: str


@pytest.fixture(params=SERVICES, ids=lambda service: service.name)
def isolated(
    request: pytest.FixtureRequest, servers: ServerEndpoints, tmp_path: Path
) -> Iterator[IsolatedService]:
    service: Service = request.param
    mark = unique_name("proc")
    prefix = service.name.upper()
    env = servers.as_env() | {
        f"{prefix}_EVENT_LOG_NAME": f"{service.name}-{mark}",
        f"{prefix}_MONGODB_DATABASE": f"test_{mark}",
        f"{prefix}_STATE_DIR": str(tmp_path / "state"),
        f"{prefix}_GRPC_GRACE_SECONDS": str(GRACE_SECONDS),
    }
    for setting in service.upstream_topics:
        upstream = setting.removesuffix("_EVENTS_TOPIC").lower()
        env[f"{prefix}_{setting}"] = events_topic(f"{upstream}-{mark}")
    yield IsolatedService(service, env, mark)
    mongo: MongoClient[dict[str, Any]]
    with MongoClient(servers.mongodb_url) as mongo:
        mongo.drop_database(f"test_{mark}")


async def test_reports_serving_then_exits_zero_within_grace_on_sigterm(
    servers: ServerEndpoints, isolated: IsolatedService
) -> None:
    service = isolated.service
    try:
        with ServiceProcess.on_free_port(
            service.name, port_variable=f"{service.name.upper()}_GRPC_PORT", env=isolated.env
        ) as process:
            await process.wait_serving(within_s=60)
            assert await process.terminate(GRACE_SECONDS + service.exit_margin_s) == 0
    finally:
        admin = build_admin(servers.kafka)
        await admin.start()
        try:
            ours = [topic for topic in await admin.list_topics() if isolated.mark in topic]
            if ours:
                await admin.delete_topics(sorted(ours))
        finally:
            await admin.close()
