"""How long a signed order takes to reach a webhook: SignOrder's answer to the POST arriving.

Orders and notify run in this process, as the notify acceptance tests run them: each with its
own event log, database and state dir, notify hearing of orders only through the orders topic.
The webhook receiver is an aiohttp server on 127.0.0.1 in the same process, so the client, both
services, the receiver and the broker's clients all share one event loop.
"""

from __future__ import annotations

import asyncio
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
from clinical_testing.endpoints import ServerEndpoints
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

# A short poll keeps a missed wake-up from costing the default second; the ordering grace stays
# at its default (0.2 s): it is part of what a subscriber waits for.
POLL_INTERVAL_S = 0.2
ORDERING_GRACE_S = float(NotifySettings.model_fields["ordering_grace_s"].default)
_EVENT_PARTITIONS = 3
_WARMUP_ORDERS = 5
_PLACE_CONCURRENCY = 16
_CALL_TIMEOUT_S = 30.0
# The warm-up's webhooks wait behind every placed order; a measured one has its pipeline alone.
_WARMUP_WAIT_S = 60.0
_DELIVERY_WAIT_S = 10.0
_HANDSHAKE = "webhook.handshake"


@dataclass(frozen=True)
class NotifyRun:
    """Per signed order: SignOrder answered → its order.signed webhook arrived (seconds)."""

    latencies_s: list[float]
    missing: int
    """Orders not measured: the first whose webhook took over `_DELIVERY_WAIT_S`, and the rest
    (the run stops there rather than measure a stalled pipeline)."""


@dataclass
class _Receiver:
    """The webhook endpoint: answers handshakes, notes when each order's notification arrived."""

    url: str = ""
    arrivals: dict[str, float] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        now = time.perf_counter()
        payload = json.loads(await request.text())
        if payload["type"] == _HANDSHAKE:
            return web.json_response({"challenge": payload["data"]["challenge"]})
        # A retried delivery keeps its first arrival.
        self.arrivals.setdefault(str(payload["data"]["order_id"]), now)
        self.arrived.set()
        return web.Response(status=204)

    async def wait_for(self, order_ids: Sequence[str], timeout_s: float) -> None:
        """Until every order's webhook arrived, or the timeout passed (no error: counted)."""
        deadline = time.perf_counter() + timeout_s
        while not all(order_id in self.arrivals for order_id in order_ids):
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), timeout=remaining)
            except TimeoutError:
                return


@dataclass(frozen=True)
class _Platform:
    orders: OrderServiceStub
    notify: NotifyServiceStub
    clinician: tuple[tuple[str, str], ...]
    signer: tuple[tuple[str, str], ...]


async def measure_notify(servers: ServerEndpoints, *, orders: int) -> NotifyRun:
    """Sign `orders` orders with one in flight: each signature waits for the previous order's
    webhook, so a latency (ack to webhook) is the pipeline's own, not a queue's.

    Signing back to back instead measures queueing: notify falls behind a single caller signing
    as fast as SignOrder answers, and the latency grows with the number of orders.
    """
    async with _running_platform(servers) as (platform, receiver):
        subscription = notify_pb.CreateSubscriptionRequest(
            request_id=str(uuid.uuid4()), topics=[notify_pb.TOPIC_ORDER_SIGNED]
        )
        subscription.webhook.url = receiver.url
        await platform.notify.CreateSubscription(
            subscription, metadata=platform.clinician, timeout=_CALL_TIMEOUT_S
        )
        placed = await _place(platform, _WARMUP_ORDERS + orders)
        warmup, measured = placed[:_WARMUP_ORDERS], placed[_WARMUP_ORDERS:]
        # Warm-up: the matcher has seen the subscription and worked through every placed order
        # (the signatures come after them), connections and caches are open.
        for order_id in warmup:
            await _sign(platform, order_id)
        await receiver.wait_for(warmup, _WARMUP_WAIT_S)
        if not all(order_id in receiver.arrivals for order_id in warmup):
            raise RuntimeError("notify did not deliver the warm-up orders' webhooks")
        acks: dict[str, float] = {}
        for order_id in measured:
            await _sign(platform, order_id)
            acks[order_id] = time.perf_counter()
            await receiver.wait_for([order_id], _DELIVERY_WAIT_S)
            if order_id not in receiver.arrivals:
                logger.warning("no webhook for order %s after %gs", order_id, _DELIVERY_WAIT_S)
                break
    latencies = [
        receiver.arrivals[order_id] - acked
        for order_id, acked in acks.items()
        if order_id in receiver.arrivals
    ]
    return NotifyRun(latencies, missing=len(measured) - len(latencies))


async def _place(platform: _Platform, count: int) -> list[str]:
    """Place `count` orders, each for a new patient, a few at a time; return their ids."""
    slots = asyncio.Semaphore(_PLACE_CONCURRENCY)

    async def place() -> str:
        async with slots:
            placed = await platform.orders.PlaceOrder(
                orders_pb.PlaceOrderRequest(
                    request_id=str(uuid.uuid4()), patient_id=str(uuid.uuid4()),
                    test_code="2823-3", priority=orders_pb.PRIORITY_STAT,
                    reason_codes=[
                        orders_pb.ReasonCode(system=orders_pb.CODE_SYSTEM_ICD10, code="N18.3")
                    ],
                ),
                metadata=platform.clinician, timeout=_CALL_TIMEOUT_S,
            )  # fmt: skip
            return str(placed.order_id)

    return list(await asyncio.gather(*(place() for _ in range(count))))


async def _sign(platform: _Platform, order_id: str) -> None:
    await platform.orders.SignOrder(
        orders_pb.SignOrderRequest(request_id=str(uuid.uuid4()), order_id=order_id),
        metadata=platform.signer, timeout=_CALL_TIMEOUT_S,
    )  # fmt: skip


@asynccontextmanager
async def _running_platform(
    servers: ServerEndpoints,
) -> AsyncIterator[tuple[_Platform, _Receiver]]:
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
                "webhook_allow_http": True, "poll_interval_s": POLL_INTERVAL_S,
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
                    running_orders(orders_settings, verifier=token_mint.verifier)
                )
                notify = await stack.enter_async_context(
                    running_notify(notify_settings, verifier=token_mint.verifier)
                )
                platform = _Platform(
                    orders=OrderServiceStub(await _serve(stack, running.services)),
                    notify=NotifyServiceStub(await _serve(stack, notify.services)),
                    clinician=token_mint.metadata("bench-clinician", Role.CLINICIAN),
                    signer=token_mint.metadata(
                        "bench-signer", Role.CLINICIAN, privileges=["orders:sign"], mfa=True
                    ),
                )
                yield platform, await _receiver(stack)
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


async def _receiver(stack: AsyncExitStack) -> _Receiver:
    receiver = _Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    receiver.url = f"http://127.0.0.1:{port}/hook"
    return receiver


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
