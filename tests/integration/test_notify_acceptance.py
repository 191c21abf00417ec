"""notify against the real servers, fed by the real orders and results services.

Orders, results and notify run in-process, each with its own event log, database and state;
notify hears of orders and results only through their topics. Webhook endpoints are real HTTP
servers on 127.0.0.1 whose behaviour each test scripts (fail N times, be dead).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import hvac
import pytest
from aiohttp import web
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.patients import PatientRegistry, patient_registry
from clinical_testing.plugin import TopicFactory, TransitKeyFactory, unique_name
from clinical_testing.tokens import TokenMint
from pymongo.asynchronous.database import AsyncDatabase
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from clinical.audit.v1 import access_pb2
from clinical.events.v1.envelope_pb2 import Envelope
from clinical.notify.v1 import notify_pb2 as pb
from clinical.notify.v1.notify_pb2_grpc import NotifyServiceStub
from clinical.orders.v1 import orders_pb2 as orders_pb
from clinical.orders.v1.orders_pb2_grpc import OrderServiceStub
from clinical.results.v1 import results_pb2 as results_pb
from clinical.results.v1.results_pb2_grpc import ResultServiceStub
from clinical_platform.clients.kafka import (
    KafkaConnection,
    build_admin,
    build_consumer,
    build_producer,
)
from clinical_platform.eventlog.topics import ensure_topic, event_topic_spec, events_topic
from clinical_platform.grpc_server import GrpcService, start_grpc_server
from clinical_platform.principals import Role
from clinical_platform.projections import dead_letter_topic
from clinical_platform.security import EnvelopeCipher, KeyringConfig, PatientKeyring
from clinical_platform.security.vault_adapters import KvWrappedKeyStore, TransitKeyEncryption
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
    kafka: str
    patient_topic: str
    access_topic: str
    vault_addr: str
    vault_token: str
    # Registers patients' data keys as the patient service does (this platform runs none).
    patients: PatientRegistry


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
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    endpoint.url = f"http://127.0.0.1:{port}/hook"
    return endpoint


@pytest.fixture
async def platform(  # noqa: PLR0917 - pytest passes fixtures by name
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any], token_mint: TokenMint,
    tmp_path: Path, kafka_topic: TopicFactory, transit_key: TransitKeyFactory,
) -> AsyncIterator[Platform]:  # fmt: skip
    logs = {name: unique_name(f"{name}-") for name in ("orders", "results", "notify")}
    access_topic = await kafka_topic(prefix="clinical.audit.access-test.")
    patient_topic = await kafka_topic(prefix="clinical.patient-test.")
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
            "results_events_topic": results_topic, "patient_events_topic": patient_topic,
            "webhook_allow_http": True, "webhook_allow_networks": "127.0.0.1/32",
            "webhook_timeout_s": 2.0, "webhook_retry_first_s": 0.05, "webhook_retry_max_s": 0.2,
            "webhook_retry_horizon_s": 3.0,
            "heartbeat_s": 0.5, "poll_interval_s": 0.2, "secret_key": transit_key(),
        }
    )  # fmt: skip
    admin = build_admin(servers.kafka)
    await admin.start()
    for log in logs.values():
        spec = event_topic_spec(log, partitions=3, replication_factor=1, min_insync_replicas=1)
        await ensure_topic(admin, spec)
    try:
        async with AsyncExitStack() as stack:
            orders = await stack.enter_async_context(
                running_orders(orders_settings, verifier=token_mint.verifier_for("orders"))
            )
            results = await stack.enter_async_context(
                running_results(results_settings, verifier=token_mint.verifier_for("results"))
            )
            notify = await stack.enter_async_context(
                running_notify(notify_settings, verifier=token_mint.verifier_for("notify"))
            )
            patients = await stack.enter_async_context(patient_registry(orders_settings))
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
                kafka=servers.kafka_bootstrap_servers,
                patient_topic=patient_topic,
                access_topic=access_topic,
                vault_addr=servers.vault_addr,
                vault_token=servers.vault_token,
                patients=patients,
            )
    finally:
        topics = [events_topic(log) for log in logs.values()]
        await admin.delete_topics(topics + [dead_letter_topic(topic) for topic in topics])
        await admin.close()
        for suffix in ("_o", "_r", "_n"):
            await mongo_database.client.drop_database(f"{db}{suffix}")


def platform_keyring(platform: Platform) -> PatientKeyring:
    """The patients' keys as the services hold them (the settings' default key names)."""
    vault = hvac.Client(url=platform.vault_addr, token=platform.vault_token)
    return PatientKeyring(
        TransitKeyEncryption(vault, "clinical-phi"), KvWrappedKeyStore(vault, "clinical-keys"),
        KeyringConfig(),
    )  # fmt: skip


async def place_and_sign(platform: Platform, patient_id: str, test_code: str = "2823-3") -> str:
    await platform.patients.register(patient_id)  # a no-op once registered
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
    created: pb.CreateSubscriptionResponse = await platform.notify.CreateSubscription(
        request, metadata=metadata, timeout=10
    )
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
    assert (streamed[0].order_id, streamed[0].patient_id) == (order_id, patient)
    assert (streamed[1].result_id, streamed[1].order_id) == (result_id, order_id)
    assert endpoint.accepted[0]["notification_id"] == streamed[0].notification_id
    # id-only by default: no clinical detail on either channel
    assert not streamed[1].HasField("result")
    assert "observations" not in json.dumps(endpoint.accepted)
    request = pb.GetStatusRequest(subscription_id=subscription_id)
    status = await platform.notify.GetStatus(request, metadata=platform.clinician)
    while status.delivered_sequence < 2:  # progress is saved a moment after the 2xx
        await asyncio.sleep(0.05)
        status = await platform.notify.GetStatus(request, metadata=platform.clinician)
    assert status.state == pb.DELIVERY_STATE_ACTIVE
    assert (status.head_sequence, status.delivered_sequence, status.delivered_count) == (2, 2, 2)


async def access_records(
    platform: Platform, operation: str, *, count: int
) -> list[access_pb2.AccessRecord]:
    """The access records of one operation, once ``count`` of them are on the access topic."""
    consumer = build_consumer(KafkaConnection(platform.kafka), platform.access_topic)
    await consumer.start()
    found: list[access_pb2.AccessRecord] = []
    try:
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while len(found) < count:
            assert asyncio.get_running_loop().time() < deadline, "access records missing"
            batch = await consumer.getmany(timeout_ms=200)
            records = (access_pb2.AccessRecord.FromString(r.value or b"")
                       for rs in batch.values() for r in rs)  # fmt: skip
            found += [r for r in records if r.operation == operation]
    finally:
        await consumer.stop()
    return found


async def patient_story(platform: Platform, patient: str, orders: int) -> list[tuple[str, str]]:
    """Sign and result ``orders`` orders one after another; the events in the order acked."""
    expected = []
    for _ in range(orders):
        order_id = await place_and_sign(platform, patient)
        expected.append(("order.signed", order_id))
        await post_result(platform, order_id)
        expected.append(("result.posted", order_id))
    return expected


def per_patient(notifications: list[dict[str, Any]], patient: str) -> list[tuple[str, str]]:
    return [(n["type"], n["order_id"]) for n in notifications if n["patient_id"] == patient]


async def test_a_webhook_failing_then_recovering_gets_every_event_once_in_order_per_patient(
    platform: Platform,
) -> None:
    endpoint = await platform.endpoint()
    endpoint.fail_first = 4
    await subscribe(platform, platform.clinician, endpoint)
    patients = [str(uuid.uuid4()) for _ in range(3)]

    stories = await asyncio.gather(*(patient_story(platform, p, orders=2) for p in patients))

    total = sum(len(story) for story in stories)
    await until(lambda: len(endpoint.accepted) == total, f"{total} webhook deliveries")
    await asyncio.sleep(0.5)  # nothing more may arrive
    assert len(endpoint.accepted_ids) == len(set(endpoint.accepted_ids)) == total
    assert [d["sequence"] for d in endpoint.accepted] == list(range(1, total + 1))
    for patient, story in zip(patients, stories, strict=True):
        assert per_patient(endpoint.accepted, patient) == story
    assert endpoint.attempts == total + 4


async def test_a_stream_cut_mid_flow_and_resumed_with_its_last_number_sees_no_gap(
    platform: Platform,
) -> None:
    created = await subscribe(platform, platform.clinician, topics=[pb.TOPIC_ORDER_SIGNED])
    subscription_id = created.subscription.subscription_id
    patient = str(uuid.uuid4())
    first = [await place_and_sign(platform, patient) for _ in range(3)]

    before_cut = await stream(platform, platform.clinician, subscription_id, count=2)
    later = [await place_and_sign(platform, patient) for _ in range(3)]
    after_cut = await stream(
        platform, platform.clinician, subscription_id,
        resume_after=before_cut[-1].sequence, count=4,
    )  # fmt: skip

    seen = before_cut + after_cut
    assert [n.sequence for n in seen] == [1, 2, 3, 4, 5, 6]
    assert [n.order_id for n in seen] == first + later
    replayed = await platform.notify.ListEvents(
        pb.ListEventsRequest(subscription_id=subscription_id, since=3),
        metadata=platform.clinician,
    )  # fmt: skip
    assert [n.sequence for n in replayed.notifications] == [4, 5, 6]
    assert replayed.head_sequence == 6
    with pytest.raises(grpc.aio.AioRpcError) as beyond:
        await stream(platform, platform.clinician, subscription_id, resume_after=7, count=1)
    assert beyond.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_idle_streams_get_heartbeats(platform: Platform) -> None:
    created = await subscribe(platform, platform.clinician)
    call = platform.notify.Subscribe(
        pb.SubscribeRequest(subscription_id=created.subscription.subscription_id),
        metadata=platform.clinician, timeout=WAIT_S,
    )  # fmt: skip
    message = await call.read()
    call.cancel()
    assert message.HasField("heartbeat")
    assert message.heartbeat.head_sequence == 0


async def test_a_dead_endpoint_does_not_delay_another_subscription(platform: Platform) -> None:
    dead, alive = await platform.endpoint(), await platform.endpoint()
    await subscribe(platform, platform.clinician, dead)
    dead.dead = True
    await subscribe(platform, platform.clinician, alive)
    patient = str(uuid.uuid4())

    story = await patient_story(platform, patient, orders=3)

    await until(lambda: len(alive.accepted) == len(story), "the live endpoint's deliveries")
    assert per_patient(alive.accepted, patient) == story
    assert dead.accepted == []
    assert dead.attempts >= 1


async def test_retries_run_out_into_the_dead_letters_and_resend_delivers_them(
    platform: Platform,
) -> None:
    endpoint = await platform.endpoint()
    endpoint.dead = True
    created = await subscribe(platform, platform.clinician, endpoint)
    subscription_id = created.subscription.subscription_id
    request = pb.GetStatusRequest(subscription_id=subscription_id)
    patient = str(uuid.uuid4())
    orders = [await place_and_sign(platform, patient) for _ in range(2)]

    status = pb.GetStatusResponse()

    async def is_off() -> bool:
        nonlocal status
        status = await platform.notify.GetStatus(request, metadata=platform.clinician)
        return bool(status.state == pb.DELIVERY_STATE_OFF)

    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not await is_off():
        assert asyncio.get_running_loop().time() < deadline, "retries never ran out"
        await asyncio.sleep(0.2)
    assert list(status.dead_letters) == [1]
    assert status.dead_lettered_count == 1
    assert status.last_error == "HTTP 503"
    assert status.delivered_sequence == 0
    assert status.failed_attempts >= 2

    endpoint.dead = False
    resent = await platform.notify.Resend(
        pb.ResendRequest(subscription_id=subscription_id), metadata=platform.clinician
    )
    assert resent.queued == 1
    await until(lambda: len(endpoint.accepted) == 2, "the dead-lettered and the next delivery")
    assert [d["order_id"] for d in endpoint.accepted] == orders
    again = await platform.notify.Resend(
        pb.ResendRequest(subscription_id=subscription_id, sequence=1), metadata=platform.clinician
    )
    assert again.queued == 1
    status = await platform.notify.GetStatus(request, metadata=platform.clinician)
    assert status.state == pb.DELIVERY_STATE_ACTIVE
    assert status.dead_letters == []


async def test_events_of_patients_outside_the_subscribers_scope_are_never_delivered(
    platform: Platform,
) -> None:
    mine, other = str(uuid.uuid4()), str(uuid.uuid4())
    patient = platform.token_mint.metadata("pat-1", Role.PATIENT, patient_id=mine)
    endpoint = await platform.endpoint()
    created = await subscribe(platform, patient, endpoint)
    assert list(created.subscription.filter.patient_ids) == [mine]
    filtered = await subscribe(platform, platform.clinician, filter=pb.Filter(patient_ids=[mine]))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await subscribe(platform, patient, filter=pb.Filter(patient_ids=[other]))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED

    await place_and_sign(platform, other)
    own_order = await place_and_sign(platform, mine)
    await place_and_sign(platform, other)

    streamed = await stream(platform, patient, created.subscription.subscription_id, count=1)
    clinician_view = await stream(
        platform, platform.clinician, filtered.subscription.subscription_id, count=1
    )
    await until(lambda: len(endpoint.accepted) == 1, "the patient's own event")
    await asyncio.sleep(1.0)
    assert [n.order_id for n in streamed] == [own_order]
    assert [n.order_id for n in clinician_view] == [own_order]
    assert [d["patient_id"] for d in endpoint.accepted] == [mine]
    listed = await platform.notify.ListEvents(
        pb.ListEventsRequest(subscription_id=created.subscription.subscription_id),
        metadata=patient,
    )  # fmt: skip
    assert [n.patient_id for n in listed.notifications] == [mine]


async def test_webhook_signatures_verify_across_a_secret_rotation(platform: Platform) -> None:
    endpoint = await platform.endpoint()
    created = await subscribe(platform, platform.clinician, endpoint)
    subscription_id = created.subscription.subscription_id
    old = created.webhook_secret
    patient = str(uuid.uuid4())
    await place_and_sign(platform, patient)
    await until(lambda: len(endpoint.accepted) == 1, "the first delivery")

    rotated = await platform.notify.RotateWebhookSecret(
        pb.RotateWebhookSecretRequest(request_id="rotate-1", subscription_id=subscription_id),
        metadata=platform.clinician,
    )  # fmt: skip
    new = rotated.webhook_secret
    assert new.startswith("whsec_")
    assert new != old
    assert rotated.previous_secret_expires_at.ToDatetime(tzinfo=UTC) > datetime.now(UTC)
    endpoint.secrets = [new]  # a receiver that switched at once
    await place_and_sign(platform, patient)
    await until(lambda: len(endpoint.accepted) == 2, "a delivery verified by the new secret")
    endpoint.secrets = [old]  # a receiver that has not switched yet
    await place_and_sign(platform, patient)
    await until(lambda: len(endpoint.accepted) == 3, "a delivery verified by the old secret")
    assert endpoint.rejected == 0
    endpoint.secrets = ["whsec_" + "A" * 43 + "="]  # anyone else's secret
    await place_and_sign(platform, patient)
    await until(lambda: endpoint.rejected >= 1, "a delivery refused by a wrong secret")


async def test_full_content_carries_the_decrypted_result_and_no_log_holds_it(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    # Everything the services log at INFO, and notify's own loggers at DEBUG (the drivers log
    # documents at DEBUG: clinical_platform.logs keeps them at WARNING in every service).
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="notify")
    patient = str(uuid.uuid4())
    # Full content for staff names its patients (or the clinician's own orders).
    created = await subscribe(
        platform, platform.clinician, topics=[pb.TOPIC_RESULT_POSTED], content=pb.CONTENT_FULL,
        filter=pb.Filter(patient_ids=[patient], abnormal_only=True),
    )  # fmt: skip
    normal = await place_and_sign(platform, patient)
    await post_result(platform, normal, value="4.1")
    high = await place_and_sign(platform, patient)
    # A high-entropy canary: a short value ("6.9") can turn up in any id or timestamp.
    value = f"6.9{secrets.randbelow(10**15):015d}1"
    await post_result(platform, high, value=value)

    [notification] = await stream(
        platform, platform.clinician, created.subscription.subscription_id, count=1
    )
    assert notification.order_id == high
    [observation] = notification.result.observations
    assert (observation.code, observation.quantity.value) == ("2823-3", value)
    assert observation.interpretation in {"H", "HH"}
    [disclosed] = await access_records(platform, "Subscribe", count=1)
    assert (disclosed.record_type, list(disclosed.accessed_record_ids)) == (
        "Result", [notification.result_id],
    )  # fmt: skip
    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert value not in logged
    assert value.removeprefix("6.9") not in logged  # nor the value's digits in another form


async def test_a_forgotten_patients_notifications_are_withheld_from_then_on(
    platform: Platform,
) -> None:
    endpoint = await platform.endpoint()
    forgotten, kept = str(uuid.uuid4()), str(uuid.uuid4())
    created = await subscribe(
        platform, platform.clinician, endpoint, content=pb.CONTENT_FULL,
        filter=pb.Filter(patient_ids=[forgotten, kept]),
    )  # fmt: skip
    subscription_id = created.subscription.subscription_id
    await place_and_sign(platform, forgotten)
    await place_and_sign(platform, kept)
    await until(lambda: len(endpoint.accepted) == 2, "both deliveries")
    assert endpoint.accepted[0]["order"]["test_code"] == "2823-3"
    # Full content is a disclosure: each delivery is in the access audit, before it was sent.
    disclosed = await access_records(platform, "WebhookDelivery", count=2)
    assert {r.request_id for r in disclosed} == {d["notification_id"] for d in endpoint.accepted}
    assert {(r.actor.subject, r.patient_id) for r in disclosed} == {
        ("dr-a", forgotten), ("dr-a", kept),
    }  # fmt: skip

    # What the patient service records when it forgets someone: the event sealed with the
    # patient's key, then the key destroyed.
    keyring = platform_keyring(platform)
    envelope = Envelope(
        event_id=str(uuid.uuid4()), event_type="PatientForgotten", aggregate_type="Patient",
        aggregate_id=forgotten, aggregate_version=2, patient_id=forgotten,
    )  # fmt: skip
    await EnvelopeCipher(keyring, creates_keys=True).encrypt(envelope)
    await keyring.forget(forgotten)
    producer = build_producer(KafkaConnection(platform.kafka))
    await producer.start()
    try:
        await producer.send_and_wait(platform.patient_topic, envelope.SerializeToString())
    finally:
        await producer.stop()

    request = pb.ListEventsRequest(subscription_id=subscription_id)
    listed = pb.ListEventsResponse()
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        listed = await platform.notify.ListEvents(request, metadata=platform.clinician)
        if listed.notifications[0].type == "notification.withheld":
            break
        assert asyncio.get_running_loop().time() < deadline, "never withheld"
        await asyncio.sleep(0.2)
    withheld, other = listed.notifications
    assert (withheld.sequence, withheld.patient_id, withheld.order_id) == (1, "", "")
    assert not withheld.HasField("order")
    assert (other.type, other.patient_id) == ("order.signed", kept)
    assert other.order.test_code == "2823-3"
    await platform.notify.Resend(
        pb.ResendRequest(subscription_id=subscription_id, sequence=1), metadata=platform.clinician
    )
    endpoint.accepted_ids.clear()
    await until(lambda: len(endpoint.accepted) == 3, "the resent notification")
    assert endpoint.accepted[2]["type"] == "notification.withheld"
    assert forgotten not in json.dumps(endpoint.accepted[2])


async def test_a_thousand_notifications_at_half_the_maximum_rate_arrive_once_each_in_order(
    platform: Platform,
) -> None:
    """Four webhooks, each subscribed to every signature: 250 signed orders (25 patients, a
    patient's orders signed one after another) make 1,000 notifications. The offered rate is
    half of what a back-to-back burst delivered, so the pipeline is busy but not queueing."""
    endpoints = [await platform.endpoint() for _ in range(4)]
    for endpoint in endpoints:
        await subscribe(platform, platform.clinician, endpoint, topics=[pb.TOPIC_ORDER_SIGNED])
    patients = [str(uuid.uuid4()) for _ in range(25)]
    warmup, *burst = await place_orders(platform, patients, 26)
    offered = await place_orders(platform, patients, 224)
    signed: dict[str, list[str]] = {patient: [] for patient in patients}
    locks = {patient: asyncio.Lock() for patient in patients}

    async def sign(order_id: str, patient: str, at: float | None = None) -> None:
        if at is not None:
            await asyncio.sleep(max(0.0, at - asyncio.get_running_loop().time()))
        async with locks[patient]:
            await platform.orders.SignOrder(
                orders_pb.SignOrderRequest(request_id=str(uuid.uuid4()), order_id=order_id),
                metadata=platform.signer, timeout=WAIT_S,
            )  # fmt: skip
            signed[patient].append(order_id)

    # Delivered in commit order: once the warm-up arrives, the placements are all matched.
    await sign(*warmup)
    await until(lambda: all(len(e.accepted) == 1 for e in endpoints), "the warm-up")
    started = asyncio.get_running_loop().time()
    await asyncio.gather(*(sign(order_id, patient) for order_id, patient in burst))
    await until(lambda: all(len(e.accepted) == 1 + len(burst) for e in endpoints), "the burst")
    half_rate = len(burst) / (asyncio.get_running_loop().time() - started) / 2
    start = asyncio.get_running_loop().time()
    await asyncio.gather(*(
        sign(order_id, patient, at=start + index / half_rate)
        for index, (order_id, patient) in enumerate(offered)
    ))  # fmt: skip

    total = 1 + len(burst) + len(offered)
    await until(lambda: all(len(e.accepted) == total for e in endpoints), "every notification")
    for endpoint in endpoints:
        assert len(endpoint.accepted_ids) == len(set(endpoint.accepted_ids)) == total
        assert endpoint.attempts == total  # no webhook-id was posted twice
        assert [d["sequence"] for d in endpoint.accepted] == list(range(1, total + 1))
        for patient in patients:
            assert [
                d["order_id"] for d in endpoint.accepted if d["patient_id"] == patient
            ] == signed[patient]


async def place_orders(
    platform: Platform, patients: list[str], count: int
) -> list[tuple[str, str]]:
    """``count`` orders placed, spread over ``patients`` (registered first), 16 at a time:
    (order id, patient)."""
    for patient in patients:
        await platform.patients.register(patient)
    slots = asyncio.Semaphore(16)

    async def place(patient: str) -> tuple[str, str]:
        async with slots:
            placed = await platform.orders.PlaceOrder(
                orders_pb.PlaceOrderRequest(
                    request_id=str(uuid.uuid4()), patient_id=patient, test_code="2823-3",
                    priority=orders_pb.PRIORITY_STAT,
                    reason_codes=[
                        orders_pb.ReasonCode(system=orders_pb.CODE_SYSTEM_ICD10, code="N18.3")
                    ],
                ),
                metadata=platform.clinician, timeout=WAIT_S,
            )  # fmt: skip
        return str(placed.order_id), patient

    return list(await asyncio.gather(*(place(patients[i % len(patients)]) for i in range(count))))
