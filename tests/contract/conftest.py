"""The whole platform in-process for the contract suites: patient, orders, results, notify and
audit, each served by its own gRPC server on 127.0.0.1, against the session's real servers.

Every service has an event log, database and state folder of its own; all five share one access
topic of this module's own, and audit projects the four event topics and nothing else. The
platform is started once per module and everything it made is removed afterwards.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack
from typing import Any

import grpc
import hvac
import pytest
from aiokafka.errors import KafkaError
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.hostile import ServedPlatform
from clinical_testing.kafka import delete_topics
from clinical_testing.plugin import unique_name
from clinical_testing.tokens import TokenMint
from pymongo import AsyncMongoClient

from audit.bootstrap import running_audit
from audit.settings import AuditSettings
from clinical_platform.clients.kafka import build_admin
from clinical_platform.eventlog.topics import ensure_topic, event_topic_spec, events_topic
from clinical_platform.grpc_server import GrpcService, start_grpc_server
from clinical_platform.principals import Role
from clinical_platform.projections import dead_letter_topic
from notify.bootstrap import running_notify
from notify.settings import NotifySettings
from orders.bootstrap import running_orders
from orders.settings import OrdersSettings
from patient.bootstrap import running_patient
from patient.settings import PatientSettings
from results.bootstrap import running_results
from results.settings import ResultsSettings

WRITERS = ("patient", "orders", "results", "notify")
PARTITIONS = 3


@pytest.fixture(scope="module")
def transit_keys(servers: ServerEndpoints) -> Iterator[dict[str, str]]:
    """A Transit key for notify's webhook secrets and one to sign audit checkpoints with."""
    vault = hvac.Client(url=servers.vault_addr, token=servers.vault_token)
    keys = {"secrets": unique_name("test-"), "signing": unique_name("test-")}
    vault.secrets.transit.create_key(name=keys["secrets"], key_type="aes256-gcm96")
    vault.secrets.transit.create_key(name=keys["signing"], key_type="ed25519")
    yield keys
    for name in keys.values():
        vault.secrets.transit.update_key_configuration(name=name, deletion_allowed=True)
        vault.secrets.transit.delete_key(name=name)


@pytest.fixture(scope="module")
async def platform(
    servers: ServerEndpoints,
    token_mint: TokenMint,
    transit_keys: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ServedPlatform]:
    """The five services, started once for the module."""
    state = tmp_path_factory.mktemp("platform")
    mark = unique_name("contract")
    logs = {service: f"{service}-{mark}" for service in WRITERS}
    topics = {service: events_topic(log) for service, log in logs.items()}
    access_topic, checkpoints_topic = f"test.access.{mark}", f"test.checkpoints.{mark}"
    databases = {service: f"test_{mark}_{service}" for service in (*WRITERS, "audit")}
    shared: dict[str, Any] = servers.as_env() | {
        "grpc_port": 0, "event_partitions": PARTITIONS, "read_wait_max_s": 2.0,
        "ACCESS_AUDIT_TOPIC": access_topic, "ACCESS_AUDIT_PARTITIONS": 1,
        "patient_events_topic": topics["patient"],
    }  # fmt: skip

    def own(service: str) -> dict[str, Any]:
        return shared | {"mongodb_database": databases[service], "state_dir": state / service}

    patient = PatientSettings.model_validate(
        own("patient") | {"orders_events_topic": topics["orders"]}
    )
    orders = OrdersSettings.model_validate(
        own("orders")
        | {"event_log_name": logs["orders"], "results_events_topic": topics["results"]}
    )
    results = ResultsSettings.model_validate(
        own("results")
        | {"event_log_name": logs["results"], "orders_events_topic": topics["orders"]}
    )
    notify = NotifySettings.model_validate(
        own("notify") | {
            "event_log_name": logs["notify"], "orders_events_topic": topics["orders"],
            "results_events_topic": topics["results"], "secret_key": transit_keys["secrets"],
            "webhook_timeout_s": 2.0,
        }
    )  # fmt: skip
    audit = AuditSettings.model_validate(
        own("audit") | {
            "VAULT_AUDIT_SIGNING_KEY": transit_keys["signing"],
            "read_model_name": unique_name("audit-"),
            "event_topic_pattern": "^(" + "|".join(map(re.escape, topics.values())) + ")$",
            "checkpoints_topic": checkpoints_topic,
        }
    )  # fmt: skip
    admin = build_admin(servers.kafka)
    await admin.start()
    try:
        # Orders and results read each other's topic, audit reads them all: create them first.
        for log in logs.values():
            spec = event_topic_spec(
                log, partitions=PARTITIONS, replication_factor=1, min_insync_replicas=1
            )
            await ensure_topic(admin, spec)
        async with AsyncExitStack() as stack:
            verifier = token_mint.verifier_for
            running: list[Sequence[GrpcService]] = [
                (
                    await stack.enter_async_context(
                        running_patient(
                            patient, service=logs["patient"], verifier=verifier("patient")
                        )
                    )
                ).services,
                (
                    await stack.enter_async_context(
                        running_orders(orders, verifier=verifier("orders"))
                    )
                ).services,
                (
                    await stack.enter_async_context(
                        running_results(results, verifier=verifier("results"))
                    )
                ).services,
                (
                    await stack.enter_async_context(
                        running_notify(notify, verifier=verifier("notify"))
                    )
                ).services,
                (
                    await stack.enter_async_context(
                        running_audit(audit, verifier=verifier("audit"))
                    )
                ).services,
            ]
            channels: dict[str, grpc.aio.Channel] = {}
            for services in running:
                channel = await _serve(stack, list(services))
                channels.update(dict.fromkeys((s.name for s in services), channel))
            yield ServedPlatform(
                channels=channels,
                event_topics=list(topics.values()),
                access_topic=access_topic,
                kafka=servers.kafka_bootstrap_servers,
                staff=token_mint.metadata(
                    "hostile-staff", Role.CLINICIAN, Role.LAB, Role.REGISTRAR, Role.AUDITOR,
                    privileges=["orders:sign"], mfa=True,
                ),
            )  # fmt: skip
    finally:
        await admin.close()
        made = [*topics.values(), *map(dead_letter_topic, topics.values())]
        with contextlib.suppress(KafkaError):
            await delete_topics(
                servers.kafka_bootstrap_servers,
                [*made, dead_letter_topic(access_topic), access_topic, checkpoints_topic],
            )
        mongo: AsyncMongoClient[Any] = AsyncMongoClient(servers.mongodb_url)
        for database in databases.values():
            await mongo.drop_database(database)
        await mongo.close()


async def _serve(stack: AsyncExitStack, services: list[GrpcService]) -> grpc.aio.Channel:
    server = await start_grpc_server(host="127.0.0.1", port=0, services=services)
    stack.push_async_callback(server.stop, 0)
    return await stack.enter_async_context(grpc.aio.insecure_channel(f"127.0.0.1:{server.port}"))
