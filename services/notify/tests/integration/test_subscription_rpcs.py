"""Every NotifyService RPC's refusals, against a notify service on the real servers.

Bad input is INVALID_ARGUMENT with field violations, someone else's subscription
PERMISSION_DENIED, an unknown one NOT_FOUND, a webhook that fails the handshake
FAILED_PRECONDITION; and a refused request records nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.plugin import TopicFactory, TransitKeyFactory, unique_name
from clinical_testing.service_process import free_tcp_port
from clinical_testing.tokens import TokenMint
from google.rpc import error_details_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status  # type: ignore[import-untyped]
from pymongo.asynchronous.database import AsyncDatabase

from clinical.notify.v1 import notify_pb2 as pb
from clinical.notify.v1.notify_pb2_grpc import NotifyServiceStub
from clinical_platform.clients.kafka import build_admin
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.grpc_server import start_grpc_server
from clinical_platform.principals import Role
from notify.bootstrap import RunningNotify, running_notify
from notify.settings import NotifySettings

pytestmark = pytest.mark.integration

Metadata = tuple[tuple[str, str], ...]


@pytest.fixture
async def notify_service(  # noqa: PLR0917 - pytest passes fixtures by name
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any], kafka_topic: TopicFactory,
    tmp_path: Path, token_mint: TokenMint, transit_key: TransitKeyFactory,
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
            "orders_events_topic": await kafka_topic(prefix="clinical.orders-test."),
            "results_events_topic": await kafka_topic(prefix="clinical.results-test."),
            "ACCESS_AUDIT_TOPIC": await kafka_topic(prefix="clinical.audit.access-test."),
        }
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


async def _endpoint(answer: web.Response | None) -> tuple[str, web.AppRunner]:
    async def handle(request: web.Request) -> web.Response:
        payload = await request.json()
        if answer is not None:
            return answer
        return web.json_response({"challenge": payload["data"]["challenge"]})

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return f"http://127.0.0.1:{port}/hook", runner


def _create(**fields: Any) -> pb.CreateSubscriptionRequest:
    defaults: dict[str, Any] = {
        "request_id": str(uuid.uuid4()), "topics": [pb.TOPIC_ORDER_SIGNED],
    }  # fmt: skip
    return pb.CreateSubscriptionRequest(**(defaults | fields))


def _violations(error: grpc.aio.AioRpcError) -> set[str]:
    status = rpc_status.from_call(error)
    fields = set()
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        detail.Unpack(bad_request)
        fields |= {violation.field for violation in bad_request.field_violations}
    return fields


async def _refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    return refused.value


async def test_malformed_subscriptions_are_invalid_arguments_naming_each_field(
    stub: NotifyServiceStub, clinician: Metadata
) -> None:
    request = _create(
        request_id="", topics=[], content=7,
        filter=pb.Filter(patient_ids=["not-a-uuid"], loinc_codes=["2345-8"], priorities=["asap"]),
    )  # fmt: skip
    request.webhook.url = "ftp://example.invalid/hook"
    error = await _refused(stub.CreateSubscription(request, metadata=clinician))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _violations(error) >= {
        "request_id", "topics", "content", "filter.patient_ids[0]", "filter.loinc_codes[0]",
        "filter.priorities[0]",
    }  # fmt: skip
    listed = await stub.ListSubscriptions(pb.ListSubscriptionsRequest(), metadata=clinician)
    assert list(listed.subscriptions) == []


async def test_a_webhook_url_that_is_not_http_is_refused(
    stub: NotifyServiceStub, clinician: Metadata
) -> None:
    request = _create()
    request.webhook.url = "ftp://127.0.0.1/hook"
    error = await _refused(stub.CreateSubscription(request, metadata=clinician))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _violations(error) == {"webhook.url"}


async def test_every_handshake_failure_reads_the_same_so_it_cannot_scan_ports(
    stub: NotifyServiceStub, clinician: Metadata
) -> None:
    url, runner = await _endpoint(web.Response(status=404))
    closed = f"http://127.0.0.1:{free_tcp_port()}/hook"  # nothing listens there
    denied = "http://10.0.0.1/hook"  # a private address: never contacted
    try:
        details = set()
        for target in (url, closed, denied):
            request = _create()
            request.webhook.url = target
            error = await _refused(stub.CreateSubscription(request, metadata=clinician))
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
            details.add(error.details())
    finally:
        await runner.cleanup()
    assert details == {"the webhook endpoint did not complete the handshake"}


@pytest.mark.parametrize(
    "answer",
    [web.Response(status=404), web.json_response({"challenge": "something else"})],
    ids=["not-found", "wrong-echo"],
)
async def test_a_webhook_failing_the_handshake_creates_nothing(
    stub: NotifyServiceStub, clinician: Metadata, answer: web.Response
) -> None:
    url, runner = await _endpoint(answer)
    try:
        request = _create()
        request.webhook.url = url
        error = await _refused(stub.CreateSubscription(request, metadata=clinician))
    finally:
        await runner.cleanup()
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "handshake" in (error.details() or "")
    listed = await stub.ListSubscriptions(pb.ListSubscriptionsRequest(), metadata=clinician)
    assert list(listed.subscriptions) == []


async def test_a_retried_create_returns_the_same_subscription_and_secret(
    stub: NotifyServiceStub, clinician: Metadata
) -> None:
    url, runner = await _endpoint(None)
    try:
        request = _create()
        request.webhook.url = url
        first = await stub.CreateSubscription(request, metadata=clinician)
        again = await stub.CreateSubscription(request, metadata=clinician)
    finally:
        await runner.cleanup()
    assert again.subscription == first.subscription
    assert again.webhook_secret == first.webhook_secret
    listed = await stub.ListSubscriptions(pb.ListSubscriptionsRequest(), metadata=clinician)
    assert [s.subscription_id for s in listed.subscriptions] == [first.subscription.subscription_id]


async def test_only_the_owner_uses_a_subscription(
    stub: NotifyServiceStub, clinician: Metadata, token_mint: TokenMint
) -> None:
    created = await stub.CreateSubscription(_create(), metadata=clinician)
    other = token_mint.metadata("dr-other", Role.CLINICIAN)
    subscription_id = created.subscription.subscription_id

    calls = [
        stub.GetSubscription(pb.GetSubscriptionRequest(subscription_id=subscription_id),
                             metadata=other),
        stub.GetStatus(pb.GetStatusRequest(subscription_id=subscription_id), metadata=other),
        stub.ListEvents(pb.ListEventsRequest(subscription_id=subscription_id), metadata=other),
        stub.DeleteSubscription(
            pb.DeleteSubscriptionRequest(request_id="d", subscription_id=subscription_id),
            metadata=other,
        ),
    ]  # fmt: skip
    for call in calls:
        assert (await _refused(call)).code() == grpc.StatusCode.PERMISSION_DENIED
    stream = stub.Subscribe(pb.SubscribeRequest(subscription_id=subscription_id), metadata=other)
    assert (await _refused(stream.read())).code() == grpc.StatusCode.PERMISSION_DENIED
    mine = await stub.GetSubscription(
        pb.GetSubscriptionRequest(subscription_id=subscription_id), metadata=clinician
    )
    assert mine.subscription.owner == "dr-notified"


async def test_roles_without_clinical_access_cannot_subscribe(
    stub: NotifyServiceStub, token_mint: TokenMint
) -> None:
    for metadata in (
        token_mint.metadata("registrar-1", Role.REGISTRAR),
        token_mint.metadata("auditor-1", Role.AUDITOR),
        token_mint.metadata("pat-without-record", Role.PATIENT),
    ):
        error = await _refused(stub.CreateSubscription(_create(), metadata=metadata))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = await _refused(stub.CreateSubscription(_create()))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_unknown_deleted_and_malformed_ids(
    stub: NotifyServiceStub, clinician: Metadata
) -> None:
    unknown = str(uuid.uuid4())
    error = await _refused(
        stub.GetSubscription(pb.GetSubscriptionRequest(subscription_id=unknown), metadata=clinician)
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await _refused(
        stub.GetStatus(pb.GetStatusRequest(subscription_id="nope"), metadata=clinician)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _violations(error) == {"subscription_id"}

    created = await stub.CreateSubscription(_create(), metadata=clinician)
    subscription_id = created.subscription.subscription_id
    deleted = await stub.DeleteSubscription(
        pb.DeleteSubscriptionRequest(request_id="delete-1", subscription_id=subscription_id),
        metadata=clinician,
    )  # fmt: skip
    assert deleted.version == created.subscription.version + 1
    error = await _refused(
        stub.GetSubscription(
            pb.GetSubscriptionRequest(subscription_id=subscription_id), metadata=clinician
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    listed = await stub.ListSubscriptions(pb.ListSubscriptionsRequest(), metadata=clinician)
    assert list(listed.subscriptions) == []


async def test_resend_needs_a_webhook_and_a_delivered_notification(
    stub: NotifyServiceStub, clinician: Metadata
) -> None:
    created = await stub.CreateSubscription(_create(), metadata=clinician)
    subscription_id = created.subscription.subscription_id
    error = await _refused(
        stub.Resend(pb.ResendRequest(subscription_id=subscription_id), metadata=clinician)
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    error = await _refused(
        stub.RotateWebhookSecret(
            pb.RotateWebhookSecretRequest(request_id="r", subscription_id=subscription_id),
            metadata=clinician,
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT

    url, runner = await _endpoint(None)
    try:
        request = _create()
        request.webhook.url = url
        hooked = await stub.CreateSubscription(request, metadata=clinician)
    finally:
        await runner.cleanup()
    error = await _refused(
        stub.Resend(
            pb.ResendRequest(subscription_id=hooked.subscription.subscription_id, sequence=1),
            metadata=clinician,
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await _refused(
        stub.ListEvents(
            pb.ListEventsRequest(
                subscription_id=hooked.subscription.subscription_id, page_size=5000
            ),
            metadata=clinician,
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
