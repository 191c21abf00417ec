"""NotifyApp against in-memory fakes of its ports (conftest.py)."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from notify.adapters.wakeups import InProcessWakeups
from notify.application import CreateSubscription, NotifyApp
from notify.domain.errors import HandshakeFailed, NotTheOwner
from notify.domain.subscription import Content, Filter, Owner, Topic

from .conftest import NOW, Endpoint, InMemorySubscriptions, command_context

pytestmark = pytest.mark.unit
OWNER = Owner("dr-a", ("clinician",))

COMMAND = CreateSubscription(
    topics=[Topic.ORDER_SIGNED], event_filter=Filter(), content=Content.ID_ONLY,
    webhook_url="https://hooks.example/x",
)  # fmt: skip


async def test_a_retried_creation_returns_the_same_subscription_and_secret(app: NotifyApp) -> None:
    first = await app.create(COMMAND, OWNER, command_context("create-1"))
    again = await app.create(COMMAND, OWNER, command_context("create-1"))

    assert first.webhook_secret.startswith("whsec_")
    assert (again.subscription, again.webhook_secret) == (first.subscription, first.webhook_secret)


async def test_nothing_is_recorded_when_the_handshake_fails(
    app: NotifyApp, subscriptions: InMemorySubscriptions, endpoint: Endpoint
) -> None:
    endpoint.answers = False

    with pytest.raises(HandshakeFailed):
        await app.create(COMMAND, OWNER, command_context("create-1"))
    assert subscriptions.saved == {}


async def test_rotation_tells_the_worker_before_it_answers(
    app: NotifyApp, wakeups: InProcessWakeups
) -> None:
    created = await app.create(COMMAND, OWNER, command_context("create-1"))
    subscription_id = UUID(created.subscription.subscription_id)

    rotated = await app.rotate_secret(subscription_id, "dr-a", command_context("rotate-1"))

    assert wakeups.revision(str(subscription_id)) == 1
    assert rotated.webhook_secret != created.webhook_secret
    assert rotated.previous_expires_at == NOW + timedelta(hours=24)
    view = await app.get(subscription_id, "dr-a")
    assert [s.valid_until for s in view.secrets] == [None, NOW + timedelta(hours=24)]


async def test_only_the_owner_uses_a_subscription(app: NotifyApp) -> None:
    created = await app.create(COMMAND, OWNER, command_context("create-1"))

    with pytest.raises(NotTheOwner):
        await app.get(UUID(created.subscription.subscription_id), "dr-b")
