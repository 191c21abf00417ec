"""A notify service on the real servers (own topics, database and Transit key), its stub, and
what the tests feed it: webhook endpoints on 127.0.0.1 and sealed OrderSigned events."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import hvac
import pytest
from aiohttp import web
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.plugin import TopicFactory, TransitKeyFactory, unique_name
from clinical_testing.tokens import TokenMint
from google.rpc import error_details_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status  # type: ignore[import-untyped]
from pymongo.asynchronous.database import AsyncDatabase

from clinical.events.v1.envelope_pb2 import Envelope
from clinical.notify.v1.notify_pb2_grpc import NotifyServiceStub
from clinical_platform.clients.kafka import build_admin, build_producer
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.grpc_server import start_grpc_server
from clinical_platform.principals import Role
from clinical_platform.security import EnvelopeCipher, KeyringConfig, PatientKeyring
from clinical_platform.security.vault_adapters import KvWrappedKeyStore, TransitKeyEncryption
from notify.bootstrap import RunningNotify, running_notify
from notify.settings import NotifySettings

Metadata = tuple[tuple[str, str], ...]
StartListener = Callable[[], Awaitable["Listener"]]
SignOrder = Callable[[str], Awaitable[str]]


def violations_of(error: grpc.aio.AioRpcError) -> set[str]:
    """The fields an INVALID_ARGUMENT's BadRequest names."""
    fields = set()
    for detail in rpc_status.from_call(error).details:
        bad_request = error_details_pb2.BadRequest()
        detail.Unpack(bad_request)
        fields |= {violation.field for violation in bad_request.field_violations}
    return fields


async def refused(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """The error ``call`` ends with (the test fails if it succeeds)."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


@pytest.fixture
def notify_options() -> dict[str, Any]:
    """Settings a test changes (parametrize this fixture's name to override it)."""
    return {}


@dataclass
class Feeds:
    """The topics notify matches, as the fixture named them."""

    orders: str = ""


@pytest.fixture
async def feeds(kafka_topic: TopicFactory) -> Feeds:
    return Feeds(orders=await kafka_topic(prefix="clinical.orders-test."))


@pytest.fixture
async def notify_service(  # noqa: PLR0917 - pytest passes fixtures by name
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any], kafka_topic: TopicFactory,
    tmp_path: Path, token_mint: TokenMint, transit_key: TransitKeyFactory, feeds: Feeds,
    notify_options: dict[str, Any],
) -> AsyncIterator[RunningNotify]:  # fmt: skip
    settings = NotifySettings.model_validate(
        {
            "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap_servers,
            "VAULT_ADDR": servers.vault_addr, "VAULT_TOKEN": servers.vault_token,
            "MONGODB_URL": servers.mongodb_url, "grpc_port": 0, "event_partitions": 3,
            "event_log_name": unique_name("notify-"), "mongodb_database": mongo_database.name,
            "state_dir": tmp_path / "state", "webhook_allow_http": True,
            "webhook_allow_networks": "127.0.0.1/32",
            "webhook_timeout_s": 2.0, "secret_key": transit_key(),
            "orders_events_topic": feeds.orders,
            "results_events_topic": await kafka_topic(prefix="clinical.results-test."),
            "ACCESS_AUDIT_TOPIC": await kafka_topic(prefix="clinical.audit.access-test."),
        } | notify_options
    )  # fmt: skip
    async with running_notify(settings, verifier=token_mint.verifier_for("notify")) as running:
        yield running
    admin = build_admin(servers.kafka)
    await admin.start()
    try:
        await admin.delete_topics([events_topic(settings.event_log_name)])
    finally:
        await admin.close()


@pytest.fixture
async def stub(notify_service: RunningNotify) -> AsyncIterator[NotifyServiceStub]:
    server = await start_grpc_server(host="127.0.0.1", port=0, services=notify_service.services)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield NotifyServiceStub(channel)
    await server.stop(0)


@pytest.fixture
def clinician(token_mint: TokenMint) -> Metadata:
    return token_mint.metadata("dr-notified", Role.CLINICIAN)


@dataclass
class Listener:
    """A webhook endpoint on 127.0.0.1: answers the handshake, then records every POST."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        payload = await request.json()
        if payload["type"] == "webhook.handshake":
            return web.json_response({"challenge": payload["data"]["challenge"]})
        self.received.append(payload["data"])
        return web.Response(status=204)


@pytest.fixture
async def listener() -> AsyncIterator[StartListener]:
    """Each call of the fixture's value is a new endpoint; all stop after the test."""
    runners: list[web.AppRunner] = []

    async def start() -> Listener:
        endpoint = Listener()
        app = web.Application()
        app.router.add_post("/hook", endpoint.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        endpoint.url = f"http://127.0.0.1:{port}/hook"
        return endpoint

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def sign_order(servers: ServerEndpoints, feeds: Feeds) -> AsyncIterator[SignOrder]:
    """Puts an OrderSigned event for a patient on the orders topic, sealed with the patient's
    key as the orders service would (the default key names); returns the order id."""
    vault = hvac.Client(url=servers.vault_addr, token=servers.vault_token)
    # It creates a patient's key on first use, standing in for the patient's registration too.
    cipher = EnvelopeCipher(PatientKeyring(
        TransitKeyEncryption(vault, "clinical-phi"), KvWrappedKeyStore(vault, "clinical-keys"),
        KeyringConfig(),
    ), creates_keys=True)  # fmt: skip
    producer = build_producer(servers.kafka)
    await producer.start()

    async def sign(patient_id: str) -> str:
        order_id = str(uuid.uuid4())
        envelope = Envelope(
            event_id=str(uuid.uuid4()), event_type="OrderSigned", aggregate_type="Order",
            aggregate_id=order_id, aggregate_version=2, patient_id=patient_id,
            source="//clinical/orders", payload_type="clinical.events.v1.OrderSigned",
        )  # fmt: skip
        envelope.occurred_at.FromDatetime(datetime.now(UTC))
        await cipher.encrypt(envelope)
        await producer.send_and_wait(feeds.orders, envelope.SerializeToString())
        return order_id

    yield sign
    await producer.stop()
