"""How long a signed order takes to reach a webhook: SignOrder's answer to the POST arriving.

Orders and notify run in this process, as the notify acceptance tests run them: each with its
own event log, database and state dir, notify hearing of orders only through the orders topic.
The webhook receiver is an aiohttp server on 127.0.0.1 in the same process, so the client, both
services, the receiver and the broker's clients all share one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import grpc
import hvac
from aiohttp import web
from aiohttp.typedefs import Handler
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.patients import PatientRegistry, patient_registry
from clinical_testing.tokens import TokenMint
from pymongo import AsyncMongoClient

from bench.topics import create_topic, delete_topics
from clinical.notify.v1 import notify_pb2 as notify_pb
from clinical.notify.v1.notify_pb2_grpc import NotifyServiceStub
from clinical.orders.v1 import orders_pb2 as orders_pb
from clinical.orders.v1.orders_pb2_grpc import OrderServiceStub
from clinical_platform.clients.kafka import build_admin
from clinical_platform.eventlog.topics import ensure_topic, event_topic_spec, events_topic
from clinical_platform.grpc_server import GrpcService, start_grpc_server
from clinical_platform.principals import Role
from clinical_platform.projections import dead_letter_topic
from notify.bootstrap import running_notify
from notify.settings import NotifySettings
from orders.bootstrap import running_orders
from orders.settings import OrdersSettings

logger = logging.getLogger(__name__)

_EVENT_PARTITIONS = 3
_WARMUP_ORDERS = 5
# Each patient has several orders, signed one after another, so order per patient is checked.
_ORDERS_PER_PATIENT = 10
_PLACE_CONCURRENCY = 16
_CALL_TIMEOUT_S = 30.0
# The warm-up's webhooks wait behind every placed order; a measured one has its pipeline alone.
_WARMUP_WAIT_S = 60.0
_HANDSHAKE = "webhook.handshake"


@dataclass
class Receiver:
    """A webhook endpoint: answers handshakes, notes when each key (an order id) arrived, in
    which order per group (a patient), and webhook-ids posted again after a 2xx."""

    url: str = ""
    arrivals: dict[str, float] = field(default_factory=dict)
    per_group: dict[str, list[str]] = field(default_factory=dict)
    webhook_ids: set[str] = field(default_factory=set)
    duplicates: int = 0
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle(self, request: web.Request) -> web.Response:
        now = time.perf_counter()
        payload = json.loads(await request.text())
        if payload["type"] == _HANDSHAKE:
            return web.json_response({"challenge": payload["data"]["challenge"]})
        webhook_id = request.headers["webhook-id"]
        if webhook_id in self.webhook_ids:
            self.duplicates += 1
            return web.Response(status=204)
        self.webhook_ids.add(webhook_id)
        key, group = str(payload["data"]["order_id"]), str(payload["data"]["patient_id"])
        self.arrivals[key] = now
        self.per_group.setdefault(group, []).append(key)
        async with self.arrived:
            self.arrived.notify_all()
        return web.Response(status=204)

    async def wait_for(self, keys: Sequence[str], timeout_s: float) -> None:
        """Until every key arrived, or the timeout passed (no error: counted as missing)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s), self.arrived:
                await self.arrived.wait_for(lambda: all(k in self.arrivals for k in keys))


@dataclass(frozen=True)
class Platform:
    orders: OrderServiceStub
    notify: NotifyServiceStub
    clinician: tuple[tuple[str, str], ...]
    signer: tuple[tuple[str, str], ...]
    # Registers patients' data keys as the patient service does (this platform runs none).
    patients: PatientRegistry

    async def sign(self, order_id: str) -> None:
        await self.orders.SignOrder(
            orders_pb.SignOrderRequest(request_id=str(uuid.uuid4()), order_id=order_id),
            metadata=self.signer, timeout=_CALL_TIMEOUT_S,
        )  # fmt: skip

    async def place(self, count: int) -> list[tuple[str, str]]:
        """Place `count` orders, `_ORDERS_PER_PATIENT` per patient, a few at a time; their
        ids and patients, each patient's orders spread over the list."""
        slots = asyncio.Semaphore(_PLACE_CONCURRENCY)
        patients = [
            await self.patients.register() for _ in range(max(1, count // _ORDERS_PER_PATIENT))
        ]

        async def place(index: int) -> tuple[str, str]:
            patient = patients[index % len(patients)]
            async with slots:
                placed = await self.orders.PlaceOrder(
                    orders_pb.PlaceOrderRequest(
                        request_id=str(uuid.uuid4()), patient_id=patient,
                        test_code="2823-3", priority=orders_pb.PRIORITY_STAT,
                        reason_codes=[
                            orders_pb.ReasonCode(system=orders_pb.CODE_SYSTEM_ICD10, code="N18.3")
                        ],
                    ),
                    metadata=self.clinician, timeout=_CALL_TIMEOUT_S,
                )  # fmt: skip
                return str(placed.order_id), patient

        return list(await asyncio.gather(*(place(i) for i in range(count))))


@asynccontextmanager
async def subscribed_platform(
    servers: ServerEndpoints, *, orders: int
) -> AsyncIterator[tuple[Platform, Receiver, list[tuple[str, str]]]]:
    """Orders and notify with one webhook subscription to order.signed, `orders` orders placed
    (ids and patients) and a warm-up behind them: the matcher has seen the subscription and
    worked through every placed order, connections and caches are open."""
    async with _running_platform(servers) as (platform, receiver):
        subscription = notify_pb.CreateSubscriptionRequest(
            request_id=str(uuid.uuid4()), topics=[notify_pb.TOPIC_ORDER_SIGNED]
        )
        subscription.webhook.url = receiver.url
        await platform.notify.CreateSubscription(
            subscription, metadata=platform.clinician, timeout=_CALL_TIMEOUT_S
        )
        placed = await platform.place(_WARMUP_ORDERS + orders)
        warmup = [order_id for order_id, _ in placed[:_WARMUP_ORDERS]]
        for order_id in warmup:
            await platform.sign(order_id)
        await receiver.wait_for(warmup, _WARMUP_WAIT_S)
        if not all(order_id in receiver.arrivals for order_id in warmup):
            raise RuntimeError("notify did not deliver the warm-up orders' webhooks")
        yield platform, receiver, placed[_WARMUP_ORDERS:]


@asynccontextmanager
async def _running_platform(
    servers: ServerEndpoints,
) -> AsyncIterator[tuple[Platform, Receiver]]:
    """Orders and notify on throwaway topics, databases and Transit key; all removed after."""
    run = uuid.uuid4().hex[:12]
    logs = {name: f"bench-{name}-{run}" for name in ("orders", "results", "notify")}
    databases = {name: f"bench_{run}_{name}" for name in ("orders", "notify")}
    access_topic = f"bench.access.{run}"
    event_topics = [events_topic(log) for log in logs.values()]
    token_mint = TokenMint()
    shared: dict[str, Any] = {
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap_servers,
        "VAULT_ADDR": servers.vault_addr, "VAULT_TOKEN": servers.vault_token,
        "MONGODB_URL": servers.mongodb_url, "grpc_port": 0,
        "event_partitions": _EVENT_PARTITIONS,
        "ACCESS_AUDIT_TOPIC": access_topic, "ACCESS_AUDIT_PARTITIONS": 1,
    }  # fmt: skip
    with TemporaryDirectory(prefix="bench-notify-") as state_dir:
        orders_settings = OrdersSettings.model_validate(
            shared | {
                "event_log_name": logs["orders"], "mongodb_database": databases["orders"],
                "state_dir": Path(state_dir) / "orders",
                "results_events_topic": events_topic(logs["results"]),
            }
        )  # fmt: skip
        notify_settings = NotifySettings.model_validate(
            shared | {
                "event_log_name": logs["notify"], "mongodb_database": databases["notify"],
                "state_dir": Path(state_dir) / "notify",
                "orders_events_topic": events_topic(logs["orders"]),
                "results_events_topic": events_topic(logs["results"]),
                "webhook_allow_http": True, "webhook_allow_networks": "127.0.0.1/32",
                "secret_key": f"bench-notify-{run}",
            }
        )  # fmt: skip
        admin = build_admin(servers.kafka)
        await admin.start()
        try:
            await create_topic(servers.kafka_bootstrap_servers, access_topic, partitions=1)
            for log in logs.values():
                spec = event_topic_spec(
                    log, partitions=_EVENT_PARTITIONS, replication_factor=1, min_insync_replicas=1
                )
                await ensure_topic(admin, spec)
            async with AsyncExitStack() as stack:
                running = await stack.enter_async_context(
                    running_orders(orders_settings, verifier=token_mint.verifier_for("orders"))
                )
                notify = await stack.enter_async_context(
                    running_notify(notify_settings, verifier=token_mint.verifier_for("notify"))
                )
                patients = await stack.enter_async_context(patient_registry(orders_settings))
                platform = Platform(
                    orders=OrderServiceStub(await _serve(stack, running.services)),
                    notify=NotifyServiceStub(await _serve(stack, notify.services)),
                    clinician=token_mint.metadata("bench-clinician", Role.CLINICIAN),
                    signer=token_mint.metadata(
                        "bench-signer", Role.CLINICIAN, privileges=["orders:sign"], mfa=True
                    ),
                    patients=patients,
                )
                receiver = Receiver()
                receiver.url = await loopback_url(stack, receiver.handle)
                yield platform, receiver
        finally:
            await admin.close()
            dead_letters = [dead_letter_topic(topic) for topic in event_topics]
            await delete_topics(
                servers.kafka_bootstrap_servers, [access_topic, *event_topics, *dead_letters]
            )
            await _drop_databases(servers.mongodb_url, list(databases.values()))
            await asyncio.to_thread(_delete_transit_key, servers, notify_settings)


async def _serve(stack: AsyncExitStack, services: Sequence[GrpcService]) -> grpc.aio.Channel:
    server = await start_grpc_server(host="127.0.0.1", port=0, services=services)
    stack.push_async_callback(server.stop, 0)
    return await stack.enter_async_context(grpc.aio.insecure_channel(f"127.0.0.1:{server.port}"))


async def loopback_url(stack: AsyncExitStack, handle: Handler) -> str:
    """An aiohttp server on 127.0.0.1 answering POSTs to /hook with ``handle``; its URL."""
    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return f"http://127.0.0.1:{port}/hook"


async def _drop_databases(mongodb_url: str, names: list[str]) -> None:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongodb_url)
    try:
        for name in names:
            await client.drop_database(name)
    finally:
        await client.close()


def _delete_transit_key(servers: ServerEndpoints, settings: NotifySettings) -> None:
    """The run's webhook-secret key; a key that was never created is no error."""
    vault = hvac.Client(url=servers.vault_addr, token=servers.vault_token)
    name, mount = settings.secret_key, settings.vault_transit_mount
    try:
        vault.secrets.transit.update_key_configuration(
            name, deletion_allowed=True, mount_point=mount
        )
        vault.secrets.transit.delete_key(name, mount_point=mount)
    except hvac.exceptions.InvalidPath:
        return
    except hvac.exceptions.VaultError as error:
        logger.warning("could not delete Transit key %s: %s", name, error)
