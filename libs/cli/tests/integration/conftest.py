"""The platform the CLI's integration tests drive: patient, orders, results and notify in this
process on the real servers, each served on a loopback port, behind a gateway (uvicorn on a
free port) that trusts the real Keycloak. Every service trusts the session's `token_mint`
(``--direct`` calls) and the gateway's key (calls through the gateway)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.keycloak import Keycloak, running_keycloak
from clinical_testing.plugin import TopicFactory, TransitKeyFactory, unique_name
from clinical_testing.service_process import free_tcp_port
from clinical_testing.tokens import TokenMint
from pymongo.asynchronous.database import AsyncDatabase
from typer.testing import CliRunner, Result

from clinical_cli.app import app
from clinical_platform.audiences import service_audience
from clinical_platform.clients.kafka import build_admin
from clinical_platform.eventlog.topics import ensure_topic, event_topic_spec, events_topic
from clinical_platform.grpc_server import GrpcService, start_grpc_server
from clinical_platform.tokens import TokenVerifier, public_keys_in
from gateway.adapters.internal_tokens import InternalTokenIssuer, rotate_key_file
from gateway.bootstrap import gateway_http_app, http_server
from gateway.settings import GatewaySettings
from notify.bootstrap import running_notify
from notify.settings import NotifySettings
from orders.bootstrap import running_orders
from orders.settings import OrdersSettings
from patient.bootstrap import running_patient
from patient.settings import PatientSettings
from results.bootstrap import running_results
from results.settings import ResultsSettings


@dataclass
class Platform:
    """Where the services listen, and how a test runs ``clinical`` against them."""

    addresses: dict[str, str]
    gateway_url: str
    issuer: str
    mint: TokenMint

    async def clinical(self, *args: str, stdin: str | None = None) -> Result:
        """``clinical <args>`` in a thread: the services answer on this test's event loop.
        (CliRunner swaps sys.stdout: one at a time; run a second one with `process`.)"""
        return await asyncio.to_thread(CliRunner().invoke, app, list(args), input=stdin)

    async def process(self, *args: str) -> asyncio.subprocess.Process:
        """``clinical <args>`` as its own process, stdout piped (the config folder from the
        environment, as `cli_config` set it)."""
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "clinical_cli", *args, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip


@pytest.fixture(scope="session")
def keycloak() -> Iterator[Keycloak]:
    with running_keycloak() as server:
        yield server


@pytest.fixture
def cli_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The CLI's config folder (profiles, token cache) for this test only."""
    folder = tmp_path / "cli-config"
    monkeypatch.setenv("CLINICAL_CONFIG_DIR", str(folder))
    monkeypatch.delenv("CLINICAL_TOKEN", raising=False)
    monkeypatch.delenv("CLINICAL_PROFILE", raising=False)
    return folder


OrdersFromEnv = Callable[..., Awaitable[OrdersSettings]]


@pytest.fixture
def orders_from_env(
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any], tmp_path: Path,
    kafka_topic: TopicFactory, monkeypatch: pytest.MonkeyPatch,
) -> OrdersFromEnv:  # fmt: skip
    """``await orders_from_env(partitions=3, **more)``: an orders service's settings on an event
    log of its own, set in the environment as well, where ``clinical admin`` reads them (as the
    service's projector does); the CLI's config folder is the test's own."""

    async def settings(partitions: int = 1, **more: str) -> OrdersSettings:
        values = {
            "event_log_name": unique_name("orders-"), "mongodb_database": mongo_database.name,
            "state_dir": str(tmp_path / "orders"), "event_partitions": str(partitions),
            "patient_events_topic": await kafka_topic(prefix="clinical.patient-test."),
            "access_audit_topic": await kafka_topic(prefix="clinical.audit.access-test."),
            "access_audit_partitions": "1", **more,
        }  # fmt: skip
        for name, value in (servers.as_env() | values).items():
            monkeypatch.setenv(OrdersSettings.variable_for(name), value)
        monkeypatch.setenv("CLINICAL_CONFIG_DIR", str(tmp_path / "cli"))
        monkeypatch.setenv("COLUMNS", "200")  # rich's width off a terminal: room for every column
        return OrdersSettings.model_validate(servers.as_env() | values | {"grpc_port": 0})

    return settings


@pytest.fixture
async def platform(  # noqa: PLR0917 - pytest passes fixtures by name
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any], token_mint: TokenMint,
    tmp_path: Path, kafka_topic: TopicFactory, transit_key: TransitKeyFactory,
    keycloak: Keycloak, cli_config: Path,
) -> AsyncIterator[Platform]:  # fmt: skip
    logs = {name: unique_name(f"{name}-") for name in ("patient", "orders", "results", "notify")}
    topics = {name: events_topic(log) for name, log in logs.items()}
    db = mongo_database.name
    shared = {
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap_servers,
        "VAULT_ADDR": servers.vault_addr, "VAULT_TOKEN": servers.vault_token,
        "MONGODB_URL": servers.mongodb_url, "grpc_port": 0, "event_partitions": 3,
        "ACCESS_AUDIT_TOPIC": await kafka_topic(prefix="clinical.audit.access-test."),
        "ACCESS_AUDIT_PARTITIONS": 1, "patient_events_topic": topics["patient"],
    }  # fmt: skip
    patient_settings = PatientSettings.model_validate(
        shared
        | {
            "mongodb_database": f"{db}_p",
            "state_dir": tmp_path / "patient",
            "read_wait_max_s": 10.0,
        }
    )
    orders_settings = OrdersSettings.model_validate(
        shared
        | {
            "event_log_name": logs["orders"],
            "mongodb_database": f"{db}_o",
            "state_dir": tmp_path / "orders",
            "results_events_topic": topics["results"],
        }
    )
    results_settings = ResultsSettings.model_validate(
        shared
        | {
            "event_log_name": logs["results"],
            "mongodb_database": f"{db}_r",
            "state_dir": tmp_path / "results",
            "orders_events_topic": topics["orders"],
        }
    )
    notify_settings = NotifySettings.model_validate(
        shared
        | {
            "event_log_name": logs["notify"],
            "mongodb_database": f"{db}_n",
            "state_dir": tmp_path / "notify",
            "orders_events_topic": topics["orders"],
            "results_events_topic": topics["results"],
            "secret_key": transit_key(),
            "heartbeat_s": 0.5,
            "poll_interval_s": 0.2,
        }
    )
    gateway_keys = tmp_path / "gateway-keys.pem"
    rotate_key_file(gateway_keys)
    gateway_public = InternalTokenIssuer.from_pem_file(gateway_keys, issuer="", ttl_s=60)

    def verifier(service: str) -> TokenVerifier:
        keys = (*token_mint.verifier_for(service).public_keys,
                *public_keys_in(gateway_public.public_pem()))  # fmt: skip
        return TokenVerifier(keys, audience=service_audience(service))

    admin = build_admin(servers.kafka)
    await admin.start()
    for log in (logs["orders"], logs["results"], logs["notify"]):
        spec = event_topic_spec(log, partitions=3, replication_factor=1, min_insync_replicas=1)
        await ensure_topic(admin, spec)
    try:
        async with AsyncExitStack() as stack:
            patient = await stack.enter_async_context(
                running_patient(
                    patient_settings, service=logs["patient"], verifier=verifier("patient")
                )
            )
            orders = await stack.enter_async_context(
                running_orders(orders_settings, verifier=verifier("orders")))  # fmt: skip
            results = await stack.enter_async_context(
                running_results(results_settings, verifier=verifier("results")))  # fmt: skip
            notify = await stack.enter_async_context(
                running_notify(notify_settings, verifier=verifier("notify")))  # fmt: skip
            addresses = {
                "patient": await _serve(stack, patient.services),
                "orders": await _serve(stack, orders.services),
                "results": await _serve(stack, results.services),
                "notify": await _serve(stack, notify.services),
            }
            gateway_url = await _gateway(stack, GatewaySettings(
                oidc_issuer=keycloak.issuer, signing_keys_file=gateway_keys, access_trail=False,
                patient_address=addresses["patient"], orders_address=addresses["orders"],
                results_address=addresses["results"],
            ))  # fmt: skip
            yield Platform(addresses, gateway_url, keycloak.issuer, token_mint)
    finally:
        await admin.delete_topics(list(topics.values()))
        await admin.close()
        for suffix in ("_p", "_o", "_r", "_n"):
            await mongo_database.client.drop_database(f"{db}{suffix}")


async def _serve(stack: AsyncExitStack, services: Sequence[GrpcService]) -> str:
    server = await start_grpc_server(host="127.0.0.1", port=0, services=services)
    stack.push_async_callback(server.stop, 0)
    return f"127.0.0.1:{server.port}"


async def _gateway(stack: AsyncExitStack, settings: GatewaySettings) -> str:
    asgi, _ = await stack.enter_async_context(gateway_http_app(settings))
    port = free_tcp_port()
    server = http_server(asgi, "127.0.0.1", port)
    serving = asyncio.create_task(server.serve())

    async def stop() -> None:
        server.should_exit = True
        await serving

    stack.push_async_callback(stop)
    while not server.started:
        if serving.done():
            serving.result()  # raises why it could not start
        await asyncio.sleep(0.05)
    return f"http://127.0.0.1:{port}"
