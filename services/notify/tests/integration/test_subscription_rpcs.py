"""Every NotifyService RPC's refusals, against a notify service on the real servers.

Bad input is INVALID_ARGUMENT with field violations, someone else's subscription
PERMISSION_DENIED, an unknown one NOT_FOUND, a webhook that fails the handshake
FAILED_PRECONDITION; and a refused request records nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from aiohttp import web
from clinical_testing.service_process import free_tcp_port
from clinical_testing.tokens import TokenMint

from clinical.notify.v1 import notify_pb2 as pb
from clinical.notify.v1.notify_pb2_grpc import NotifyServiceStub
from clinical_platform.principals import Role

from .conftest import Metadata, refused, violations_of

pytestmark = pytest.mark.integration


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


async def test_malformed_subscriptions_are_invalid_arguments_naming_each_field(
    stub: NotifyServiceStub, clinician: Metadata
) -> None:
    request = _create(
        request_id="", topics=[], content=7,
        filter=pb.Filter(patient_ids=["not-a-uuid"], loinc_codes=["2345-8"], priorities=["asap"]),
    )  # fmt: skip
    request.webhook.url = "ftp://example.invalid/hook"
    error = await refused(stub.CreateSubscription(request, metadata=clinician))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations_of(error) >= {
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
    error = await refused(stub.CreateSubscription(request, metadata=clinician))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations_of(error) == {"webhook.url"}


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
            error = await refused(stub.CreateSubscription(request, metadata=clinician))
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
        error = await refused(stub.CreateSubscription(request, metadata=clinician))
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
        assert (await refused(call)).code() == grpc.StatusCode.PERMISSION_DENIED
    stream = stub.Subscribe(pb.SubscribeRequest(subscription_id=subscription_id), metadata=other)
    assert (await refused(stream.read())).code() == grpc.StatusCode.PERMISSION_DENIED
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
        error = await refused(stub.CreateSubscription(_create(), metadata=metadata))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = await refused(stub.CreateSubscription(_create()))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_unknown_deleted_and_malformed_ids(
    stub: NotifyServiceStub, clinician: Metadata
) -> None:
    unknown = str(uuid.uuid4())
    error = await refused(
        stub.GetSubscription(pb.GetSubscriptionRequest(subscription_id=unknown), metadata=clinician)
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await refused(
        stub.GetStatus(pb.GetStatusRequest(subscription_id="nope"), metadata=clinician)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations_of(error) == {"subscription_id"}

    created = await stub.CreateSubscription(_create(), metadata=clinician)
    subscription_id = created.subscription.subscription_id
    deleted = await stub.DeleteSubscription(
        pb.DeleteSubscriptionRequest(request_id="delete-1", subscription_id=subscription_id),
        metadata=clinician,
    )  # fmt: skip
    assert deleted.version == created.subscription.version + 1
    error = await refused(
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
    error = await refused(
        stub.Resend(pb.ResendRequest(subscription_id=subscription_id), metadata=clinician)
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    error = await refused(
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
    error = await refused(
        stub.Resend(
            pb.ResendRequest(subscription_id=hooked.subscription.subscription_id, sequence=1),
            metadata=clinician,
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await refused(
        stub.ListEvents(
            pb.ListEventsRequest(
                subscription_id=hooked.subscription.subscription_id, page_size=5000
            ),
            metadata=clinician,
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
