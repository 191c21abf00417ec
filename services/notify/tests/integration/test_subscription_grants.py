"""Subscription grants against a notify service on the real servers: quotas, what full content
needs, renewal, and that an expired or revoked subscription receives nothing more (its stream
ends, its webhook on 127.0.0.1 gets no further POST)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from clinical_testing.tokens import TokenMint
from clinical_testing.waiting import eventually
from pymongo.asynchronous.database import AsyncDatabase

from clinical.notify.v1 import notify_pb2 as pb
from clinical.notify.v1.notify_pb2_grpc import NotifyServiceStub
from clinical_platform.principals import Role
from notify.policy import REVOKE_PRIVILEGE

from .conftest import Listener, Metadata, SignOrder, StartListener, refused, violations_of

pytestmark = pytest.mark.integration
QUICK = {"poll_interval_s": 0.2, "heartbeat_s": 0.5}


def _create(webhook: Listener | None = None, **fields: Any) -> pb.CreateSubscriptionRequest:
    request = pb.CreateSubscriptionRequest(
        request_id=str(uuid.uuid4()), topics=[pb.TOPIC_ORDER_SIGNED], **fields
    )
    if webhook is not None:
        request.webhook.url = webhook.url
    return request


async def _state(stub: NotifyServiceStub, subscription_id: str, metadata: Metadata) -> int:
    got = await stub.GetSubscription(
        pb.GetSubscriptionRequest(subscription_id=subscription_id), metadata=metadata
    )
    return int(got.subscription.state)


@pytest.mark.parametrize("notify_options", [{"subscription_quota": 2,
                                             "patient_subscription_quota": 1}])  # fmt: skip
async def test_an_owner_past_the_quota_is_resource_exhausted(
    stub: NotifyServiceStub, clinician: Metadata, token_mint: TokenMint
) -> None:
    first = await stub.CreateSubscription(_create(), metadata=clinician)
    await stub.CreateSubscription(_create(), metadata=clinician)
    error = await refused(stub.CreateSubscription(_create(), metadata=clinician))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    patient = token_mint.metadata("pat-q", Role.PATIENT, patient_id=str(uuid.uuid4()))
    await stub.CreateSubscription(_create(), metadata=patient)
    error = await refused(stub.CreateSubscription(_create(), metadata=patient))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    await stub.RevokeSubscription(
        pb.RevokeSubscriptionRequest(
            request_id="revoke-1", subscription_id=first.subscription.subscription_id
        ),
        metadata=clinician,
    )  # fmt: skip
    await stub.CreateSubscription(_create(), metadata=clinician)  # room again


@pytest.mark.parametrize("notify_options", [{"subscription_quota": 2}])
async def test_subscriptions_recorded_before_grants_expired_count_for_their_default_lifetime(
    stub: NotifyServiceStub, clinician: Metadata, mongo_database: AsyncDatabase[Any]
) -> None:
    now = datetime.now(UTC)
    for created_at in (now, now - timedelta(days=31)):  # the second one has expired
        await mongo_database["notify_subscriptions"].insert_one(
            {"_id": str(uuid.uuid4()), "owner": {"subject": "dr-notified"},
             "created_at": created_at, "deleted_at": None}
        )  # fmt: skip
    await stub.CreateSubscription(_create(), metadata=clinician)
    error = await refused(stub.CreateSubscription(_create(), metadata=clinician))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_full_content_for_staff_needs_a_patient_or_care_team_filter(
    stub: NotifyServiceStub, clinician: Metadata
) -> None:
    error = await refused(
        stub.CreateSubscription(_create(content=pb.CONTENT_FULL), metadata=clinician)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations_of(error) == {"filter.patient_ids"}
    others = _create(content=pb.CONTENT_FULL, filter=pb.Filter(orderers=["dr-other"]))
    error = await refused(stub.CreateSubscription(others, metadata=clinician))
    assert violations_of(error) == {"filter.orderers"}
    listed = await stub.ListSubscriptions(pb.ListSubscriptionsRequest(), metadata=clinician)
    assert list(listed.subscriptions) == []

    patients = pb.Filter(patient_ids=[str(uuid.uuid4())])
    created = await stub.CreateSubscription(
        _create(content=pb.CONTENT_FULL, filter=patients), metadata=clinician
    )
    assert created.subscription.state == pb.SUBSCRIPTION_STATE_ACTIVE


async def test_only_the_owner_renews_and_a_renewal_moves_the_expiry(
    stub: NotifyServiceStub, clinician: Metadata, token_mint: TokenMint
) -> None:
    created = await stub.CreateSubscription(_create(), metadata=clinician)
    subscription_id = created.subscription.subscription_id
    renew = pb.RenewSubscriptionRequest(request_id="renew-1", subscription_id=subscription_id)

    renewed = await stub.RenewSubscription(renew, metadata=clinician)

    assert (
        renewed.subscription.expires_at.ToDatetime() > created.subscription.expires_at.ToDatetime()
    )
    assert renewed.subscription.version == created.subscription.version + 1
    other = token_mint.metadata("dr-other", Role.CLINICIAN)
    error = await refused(stub.RenewSubscription(renew, metadata=other))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    bad = pb.RenewSubscriptionRequest(request_id="renew-2", subscription_id="nope")
    error = await refused(stub.RenewSubscription(bad, metadata=clinician))
    assert violations_of(error) == {"subscription_id"}


# Long enough for a delivery on a busy machine (the first order, then the control's), short
# enough to wait for.
LIFETIME_S = 10.0


@pytest.mark.parametrize("notify_options", [QUICK | {"subscription_lifetime_s": LIFETIME_S}])
async def test_an_expired_subscription_receives_nothing_more(
    stub: NotifyServiceStub, clinician: Metadata, listener: StartListener, sign_order: SignOrder
) -> None:
    hook = await listener()
    created = await stub.CreateSubscription(_create(hook), metadata=clinician)
    subscription_id = created.subscription.subscription_id
    await sign_order(str(uuid.uuid4()))
    assert await eventually(lambda: len(hook.received) == 1)

    expired = pb.SUBSCRIPTION_STATE_EXPIRED
    assert await eventually(
        lambda: _is(stub, subscription_id, clinician, expired), within_s=LIFETIME_S + 10
    )
    stream = stub.Subscribe(
        pb.SubscribeRequest(subscription_id=subscription_id), metadata=clinician
    )
    assert (await refused(stream.read())).code() == grpc.StatusCode.FAILED_PRECONDITION
    # A subscription made now is the control: once it has the next order, the matcher and
    # the webhook pool have passed the expired one by.
    control = await listener()
    await stub.CreateSubscription(_create(control), metadata=clinician)
    order_id = await sign_order(str(uuid.uuid4()))
    assert await eventually(lambda: [n["order_id"] for n in control.received] == [order_id])

    assert len(hook.received) == 1
    status = await stub.GetStatus(pb.GetStatusRequest(subscription_id=subscription_id),
                                  metadata=clinician)  # fmt: skip
    assert status.head_sequence == 1


@pytest.mark.parametrize("notify_options", [QUICK])
async def test_a_revoked_subscription_receives_nothing_more(
    stub: NotifyServiceStub, clinician: Metadata, token_mint: TokenMint,
    listener: StartListener, sign_order: SignOrder,
) -> None:  # fmt: skip
    hook, control = await listener(), await listener()
    created = await stub.CreateSubscription(_create(hook), metadata=clinician)
    subscription_id = created.subscription.subscription_id
    await stub.CreateSubscription(_create(control), metadata=clinician)
    await sign_order(str(uuid.uuid4()))
    assert await eventually(lambda: len(hook.received) == len(control.received) == 1)
    stream = stub.Subscribe(
        pb.SubscribeRequest(subscription_id=subscription_id), metadata=clinician
    )
    first = await stream.read()
    assert first.notification.sequence == 1

    admin = token_mint.metadata("admin-1", Role.CLINICIAN, privileges=[REVOKE_PRIVILEGE])
    other = token_mint.metadata("dr-other", Role.CLINICIAN)
    revoke = pb.RevokeSubscriptionRequest(request_id="revoke-1", subscription_id=subscription_id)
    error = await refused(stub.RevokeSubscription(revoke, metadata=other))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    await stub.RevokeSubscription(revoke, metadata=admin)

    ended = await refused(_read_until_ended(stream))
    assert ended.code() == grpc.StatusCode.PERMISSION_DENIED
    order_id = await sign_order(str(uuid.uuid4()))
    assert await eventually(lambda: [n["order_id"] for n in control.received][-1:] == [order_id])
    assert len(hook.received) == 1
    revoked = pb.SUBSCRIPTION_STATE_REVOKED
    assert await _state(stub, subscription_id, clinician) == revoked
    listed = pb.ListEventsRequest(subscription_id=subscription_id)
    error = await refused(stub.ListEvents(listed, metadata=clinician))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_an_administrator_revokes_everything_an_employee_who_left_subscribed_to(
    stub: NotifyServiceStub, token_mint: TokenMint
) -> None:
    leaver = token_mint.metadata("dr-left", Role.CLINICIAN)
    made = [await stub.CreateSubscription(_create(), metadata=leaver) for _ in range(3)]
    request = pb.RevokeOwnerSubscriptionsRequest(request_id="left-1", owner="dr-left")
    other = token_mint.metadata("dr-other", Role.CLINICIAN)
    error = await refused(stub.RevokeOwnerSubscriptions(request, metadata=other))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    admin = token_mint.metadata("admin-1", Role.CLINICIAN, privileges=[REVOKE_PRIVILEGE])

    answer = await stub.RevokeOwnerSubscriptions(request, metadata=admin)

    assert answer.revoked == len(made)
    for created in made:
        state = await _state(stub, created.subscription.subscription_id, leaver)
        assert state == pb.SUBSCRIPTION_STATE_REVOKED
    empty = pb.RevokeOwnerSubscriptionsRequest(request_id="left-2")
    error = await refused(stub.RevokeOwnerSubscriptions(empty, metadata=admin))
    assert violations_of(error) == {"owner"}


async def _is(
    stub: NotifyServiceStub, subscription_id: str, metadata: Metadata, state: int
) -> bool:
    return await _state(stub, subscription_id, metadata) == state


async def _read_until_ended(stream: Any) -> None:
    """Read (heartbeats, anything) until the server ends the stream with a status."""
    while True:
        message = await stream.read()
        if message is grpc.aio.EOF:
            return
