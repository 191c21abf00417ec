"""notify against the real servers, fed by the real orders and results services.

Orders, results and notify run in-process, each with its own event log, database and state;
notify hears of orders and results only through their topics. Webhook endpoints are real HTTP
servers on 127.0.0.1 whose behaviour each test scripts (fail N times, be dead).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web
from aiokafka.admin import AIOKafkaAdminClient
from pymongo.asynchronous.database import AsyncDatabase
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from clinical.notify.v1 import notify_pb2 as pb
from clinical.notify.v1.notify_pb2_grpc import NotifyServiceStub
from clinical.orders.v1 import orders_pb2 as orders_pb
from clinical.orders.v1.orders_pb2_grpc import OrderServiceStub
from clinical.results.v1 import results_pb2 as results_pb
from clinical.results.v1.results_pb2_grpc import ResultServiceStub
from clinical_platform.auth import Role
from clinical_platform.eventlog.topics import ensure_topic, event_topic_spec, events_topic
from clinical_platform.grpc_server import GrpcService, start_grpc_server
from clinical_platform.projections import dead_letter_topic
from clinical_platform.testing.endpoints import ServerEndpoints
from clinical_platform.testing.plugin import TopicFactory, unique_name
from clinical_platform.testing.tokens import TokenMint
from notify.bootstrap import running_notify
from notify.settings import NotifySettings
from orders.bootstrap import running_orders
from orders.settings import OrdersSettings
from results.bootstrap import running_results
from results.settings import ResultsSettings

pytestmark = pytest.mark.integration

ALL_TOPICS = [
    pb.TOPIC_ORDER_SIGNED, pb.TOPIC_RESULT_POSTED, pb.TOPIC_ORDER_CANCELLED,
    pb.TOPIC_RESULT_AMENDED,
]  # fmt: skip
WAIT_S = 60.0


@dataclass
class Endpoint:
    """A webhook receiver: verifies, records accepted deliveries, fails as scripted."""

    url: str = ""
    secrets: list[str] = field(default_factory=list)
    fail_first: int = 0
    dead: bool = False
    attempts: int = 0
    accepted: list[dict[str, Any]] = field(default_factory=list)
    accepted_ids: list[str] = field(default_factory=list)
    rejected: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        payload = json.loads(body)
        if payload["type"] == "webhook.handshake":
            return web.json_response({"challenge": payload["data"]["challenge"]})
        self.attempts += 1
        if self.dead:
            return web.Response(status=503)
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.Response(status=500)
        if not any(_verifies(secret, body, request.headers) for secret in self.secrets):
            self.rejected += 1
            return web.Response(status=401)
        webhook_id = request.headers["webhook-id"]
        if webhook_id not in self.accepted_ids:
            self.accepted_ids.append(webhook_id)
            self.accepted.append(payload["data"])
        return web.Response(status=204)


def _verifies(secret: str, body: str, headers: Any) -> bool:
    try:
        Webhook(secret).verify(body, dict(headers))
    except (WebhookVerificationError, ValueError):
        return False
    return True


@dataclass
class Platform:
    orders: OrderServiceStub
    results: ResultServiceStub
    notify: NotifyServiceStub
    token_mint: TokenMint
    endpoint: Callable[[], Awaitable[Endpoint]]
    clinician: tuple[tuple[str, str], ...]
    signer: tuple[tuple[str, str], ...]
    lab: tuple[tuple[str, str], ...]


async def _serve(stack: AsyncExitStack, services: list[GrpcService]) -> grpc.aio.Channel:
    server = await start_grpc_server(host="127.0.0.1", port=0, services=services)
    stack.push_async_callback(server.stop, 0)
    return await stack.enter_async_context(grpc.aio.insecure_channel(f"127.0.0.1:{server.port}"))


async def _endpoint(stack: AsyncExitStack) -> Endpoint:
    endpoint = Endpoint()
    app = web.Application()
    app.router.add_post("/hook", endpoint.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
    endpoint.url = f"http://127.0.0.1:{port}/hook"
    return endpoint


@pytest.fixture
async def platform(
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any], token_mint: TokenMint,
    tmp_path: Path, kafka_topic: TopicFactory,
) -> AsyncIterator[Platform]:  # fmt: skip
    logs = {name: unique_name(f"{name}-") for name in ("orders", "results", "notify")}
    access_topic = await kafka_topic(prefix="clinical.audit.access-test.")
    shared = {
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap_servers,
        "VAULT_ADDR": servers.vault_addr, "VAULT_TOKEN": servers.vault_token,
        "MONGODB_URL": servers.mongodb_url, "grpc_port": 0, "event_partitions": 3,
        "ACCESS_AUDIT_TOPIC": access_topic, "ACCESS_AUDIT_PARTITIONS": 1,
    }  # fmt: skip
    orders_topic, results_topic = events_topic(logs["orders"]), events_topic(logs["results"])
    db = mongo_database.name
    orders_settings = OrdersSettings.model_validate(
        shared | {
            "event_log_name": logs["orders"], "mongodb_database": f"{db}_o",
            "state_dir": tmp_path / "orders", "results_events_topic": results_topic,
        }
    )  # fmt: skip
    results_settings = ResultsSettings.model_validate(
        shared | {
            "event_log_name": logs["results"], "mongodb_database": f"{db}_r",
            "state_dir": tmp_path / "results", "orders_events_topic": orders_topic,
        }
    )  # fmt: skip
    notify_settings = NotifySettings.model_validate(
        shared | {
            "event_log_name": logs["notify"], "mongodb_database": f"{db}_n",
            "state_dir": tmp_path / "notify", "orders_events_topic": orders_topic,
            "results_events_topic": results_topic, "webhook_allow_http": True,
            "webhook_timeout_s": 2.0, "webhook_retry_first_s": 0.05, "webhook_retry_max_s": 0.2,
            "heartbeat_s": 0.5, "poll_interval_s": 0.2, "secret_key": unique_name("notify-"),
        }
    )  # fmt: skip
    admin = AIOKafkaAdminClient(bootstrap_servers=servers.kafka_bootstrap_servers)
    await admin.start()
    for log in logs.values():
        spec = event_topic_spec(log, partitions=3, replication_factor=1, min_insync_replicas=1)
        await ensure_topic(admin, spec)
    try:
        async with AsyncExitStack() as stack:
            orders = await stack.enter_async_context(
                running_orders(orders_settings, verifier=token_mint.verifier)
            )
            results = await stack.enter_async_context(
                running_results(results_settings, verifier=token_mint.verifier)
            )
            notify = await stack.enter_async_context(
                running_notify(notify_settings, verifier=token_mint.verifier)
            )
            yield Platform(
                orders=OrderServiceStub(await _serve(stack, list(orders.services))),
                results=ResultServiceStub(await _serve(stack, list(results.services))),
                notify=NotifyServiceStub(await _serve(stack, list(notify.services))),
                token_mint=token_mint,
                endpoint=lambda: _endpoint(stack),
                clinician=token_mint.metadata("dr-a", Role.CLINICIAN),
                signer=token_mint.metadata(
                    "dr-b", Role.CLINICIAN, privileges=["orders:sign"], mfa=True
                ),
                lab=token_mint.metadata("lab-1", Role.LAB),
            )
    finally:
        topics = [events_topic(log) for log in logs.values()]
        await admin.delete_topics(topics + [dead_letter_topic(topic) for topic in topics])
        await admin.close()
        for suffix in ("_o", "_r", "_n"):
            await mongo_database.client.drop_database(f"{db}{suffix}")


async def place_and_sign(platform: Platform, patient_id: str, test_code: str = "2823-3") -> str:
    placed = await platform.orders.PlaceOrder(
        orders_pb.PlaceOrderRequest(
            request_id=str(uuid.uuid4()), patient_id=patient_id, test_code=test_code,
            priority=orders_pb.PRIORITY_STAT,
            reason_codes=[orders_pb.ReasonCode(system=orders_pb.CODE_SYSTEM_ICD10, code="N18.3")],
        ),
        metadata=platform.clinician, timeout=10,
    )  # fmt: skip
    await platform.orders.SignOrder(
        orders_pb.SignOrderRequest(request_id=str(uuid.uuid4()), order_id=placed.order_id),
        metadata=platform.signer, timeout=10,
    )  # fmt: skip
    return str(placed.order_id)


async def post_result(platform: Platform, order_id: str, value: str = "6.9") -> str:
    for _ in range(100):  # results learns of the signature from the orders topic
        try:
            posted = await platform.results.PostResult(
                results_pb.PostResultRequest(
                    request_id=f"result-of-{order_id}", order_id=order_id,
                    observations=[results_pb.Observation(
                        code="2823-3", quantity=results_pb.Quantity(value=value, unit="mmol/L"),
                    )],
                ),
                metadata=platform.lab, timeout=10,
            )  # fmt: skip
        except grpc.aio.AioRpcError as error:
            if error.code() not in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                raise
            await asyncio.sleep(0.1)
            continue
        return str(posted.result_id)
    raise AssertionError("results never saw the order signed")


async def subscribe(
    platform: Platform, metadata: Any, endpoint: Endpoint | None = None, **fields: Any
) -> pb.CreateSubscriptionResponse:
    request = pb.CreateSubscriptionRequest(
        request_id=str(uuid.uuid4()), topics=fields.pop("topics", ALL_TOPICS), **fields
    )
    if endpoint is not None:
        request.webhook.url = endpoint.url
    created = await platform.notify.CreateSubscription(request, metadata=metadata, timeout=10)
    if endpoint is not None:
        endpoint.secrets.append(created.webhook_secret)
    return created


async def until(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def stream(
    platform: Platform, metadata: Any, subscription_id: str, *, resume_after: int = 0,
    count: int,
) -> list[pb.Notification]:  # fmt: skip
    received: list[pb.Notification] = []
    call = platform.notify.Subscribe(
        pb.SubscribeRequest(subscription_id=subscription_id, resume_after=resume_after),
        metadata=metadata, timeout=WAIT_S,
    )  # fmt: skip
    async for message in call:
        if message.HasField("notification"):
            received.append(message.notification)
            if len(received) == count:
                call.cancel()
                break
    return received


async def test_signed_orders_and_posted_results_reach_the_stream_and_the_webhook(
    platform: Platform,
) -> None:
    endpoint = await platform.endpoint()
    created = await subscribe(platform, platform.clinician, endpoint)
    subscription_id = created.subscription.subscription_id
    assert created.webhook_secret.startswith("whsec_")
    patient = str(uuid.uuid4())

    order_id = await place_and_sign(platform, patient)
    result_id = await post_result(platform, order_id)

    streamed = await stream(platform, platform.clinician, subscription_id, count=2)
    await until(lambda: len(endpoint.accepted) == 2, "two webhook deliveries")
    assert [(n.sequence, n.type) for n in streamed] == [(1, "order.signed"), (2, "result.posted")]
    assert [(d["sequence"], d["type"]) for d in endpoint.accepted] == [
        (1, "order.signed"), (2, "result.posted"),
    ]  # fmt: skip
    assert streamed[0].order_id == order_id and streamed[0].patient_id == patient
    assert streamed[1].result_id == result_id and streamed[1].order_id == order_id
    assert endpoint.accepted[0]["notification_id"] == streamed[0].notification_id
    # id-only by default: no clinical detail on either channel
    assert not streamed[1].HasField("result") and "observations" not in json.dumps(endpoint.accepted)
    status = await platform.notify.GetStatus(
        pb.GetStatusRequest(subscription_id=subscription_id), metadata=platform.clinician
    )
    assert status.state == pb.DELIVERY_STATE_ACTIVE
    assert (status.head_sequence, status.delivered_sequence, status.delivered_count) == (2, 2, 2)
