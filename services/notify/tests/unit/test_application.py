"""NotifyApp against in-memory fakes of its ports."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from clinical_platform.eventlog.context import Actor, CommandContext
from notify.adapters.wakeups import InProcessWakeups
from notify.application import CreateSubscription, NotifyApp
from notify.domain.delivery import Delivery
from notify.domain.errors import HandshakeFailed, NotTheOwner
from notify.domain.feed import FeedEntry
from notify.domain.notification import Notification
from notify.domain.subscription import (
    Content,
    Filter,
    Owner,
    Subscription,
    SubscriptionView,
    Topic,
)
from notify.ports import Executed, Outcome

pytestmark = pytest.mark.unit
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
OWNER = Owner("dr-a", ("clinician",))


def _view(subscription: Subscription) -> SubscriptionView:
    return SubscriptionView(
        subscription_id=str(subscription.id), owner=subscription.owner,
        topics=subscription.topics, event_filter=subscription.event_filter,
        content=subscription.content, webhook_url=subscription.webhook_url,
        secrets=subscription.secrets, created_at=subscription.created_at,
        version=subscription.version, deleted_at=subscription.deleted_at,
    )  # fmt: skip


@dataclass
class InMemorySubscriptions:
    saved: dict[UUID, Subscription] = field(default_factory=dict)

    async def get(self, subscription_id: UUID) -> Subscription | None:
        return self.saved.get(subscription_id)

    async def execute(
        self,
        subscription_id: UUID,
        context: CommandContext,
        command: Callable[[Subscription | None], Subscription],
    ) -> Executed:
        subscription = command(self.saved.get(subscription_id))
        self.saved[subscription_id] = subscription
        return Executed(subscription.version, subscription)

    async def view(self, subscription_id: UUID) -> SubscriptionView | None:
        subscription = self.saved.get(subscription_id)
        return _view(subscription) if subscription else None

    async def views_of(
        self, owner: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[SubscriptionView]:
        return [_view(s) for s in self.saved.values() if s.owner.subject == owner][:limit]


@dataclass
class Nothing:
    """An empty feed and delivery progress; a renderer and a secret box that echo."""

    async def append(self, entry: FeedEntry) -> bool:
        raise NotImplementedError

    async def head(self, subscription_id: str) -> int:
        return 0

    async def entries(self, subscription_id: str, *, after: int, limit: int) -> list[FeedEntry]:
        return []

    async def delivery(self, subscription_id: str) -> Delivery:
        return Delivery()

    async def save(
        self, subscription_id: str, delivery: Delivery, *, sent: Sequence[int] = ()
    ) -> None:
        return None

    async def dead_letter(self, subscription_id: str, delivery: Delivery, sequence: int) -> None:
        return None

    async def queue_resend(self, subscription_id: str, sequences: Sequence[int]) -> None:
        return None

    async def render_all(
        self,
        subscription: SubscriptionView,
        entries: Sequence[FeedEntry],
        envelopes: Mapping[str, bytes | None] | None = None,
    ) -> list[Notification]:
        return []

    async def seal(self, secret: str) -> str:
        return f"sealed:{secret}"

    async def open(self, ciphertext: str) -> str:
        return ciphertext.removeprefix("sealed:")


@dataclass
class Endpoint:
    answers: bool = True

    async def handshake(self, url: str, subscription_id: str, secret: str) -> Outcome:
        return Outcome(None if self.answers else "HTTP 404")

    async def post(self, url: str, message_id: str, body: str, secrets: Sequence[str]) -> Outcome:
        raise NotImplementedError


def _app(
    subscriptions: InMemorySubscriptions, endpoint: Endpoint, wakeups: InProcessWakeups
) -> NotifyApp:
    nothing = Nothing()
    return NotifyApp(
        subscriptions, nothing, nothing, renderer=nothing, secrets=nothing, sender=endpoint,
        wakeups=wakeups, allow_http=False, secret_overlap=timedelta(hours=24),
        clock=lambda: NOW,
    )  # fmt: skip


def _context(request_id: str) -> CommandContext:
    return CommandContext(Actor("dr-a", ("clinician",)), request_id)


COMMAND = CreateSubscription(
    topics=[Topic.ORDER_SIGNED], event_filter=Filter(), content=Content.ID_ONLY,
    webhook_url="https://hooks.example/x",
)  # fmt: skip


async def test_a_retried_creation_returns_the_same_subscription_and_secret() -> None:
    app = _app(InMemorySubscriptions(), Endpoint(), InProcessWakeups())

    first = await app.create(COMMAND, OWNER, _context("create-1"))
    again = await app.create(COMMAND, OWNER, _context("create-1"))

    assert first.webhook_secret.startswith("whsec_")
    assert (again.subscription, again.webhook_secret) == (first.subscription, first.webhook_secret)


async def test_nothing_is_recorded_when_the_handshake_fails() -> None:
    subscriptions = InMemorySubscriptions()
    app = _app(subscriptions, Endpoint(answers=False), InProcessWakeups())

    with pytest.raises(HandshakeFailed):
        await app.create(COMMAND, OWNER, _context("create-1"))
    assert subscriptions.saved == {}


async def test_rotation_tells_the_worker_before_it_answers() -> None:
    wakeups = InProcessWakeups()
    app = _app(InMemorySubscriptions(), Endpoint(), wakeups)
    created = await app.create(COMMAND, OWNER, _context("create-1"))
    subscription_id = UUID(created.subscription.subscription_id)

    rotated = await app.rotate_secret(subscription_id, "dr-a", _context("rotate-1"))

    assert wakeups.revision(str(subscription_id)) == 1
    assert rotated.webhook_secret != created.webhook_secret
    assert rotated.previous_expires_at == NOW + timedelta(hours=24)
    view = await app.get(subscription_id, "dr-a")
    assert [s.valid_until for s in view.secrets] == [None, NOW + timedelta(hours=24)]


async def test_only_the_owner_uses_a_subscription() -> None:
    app = _app(InMemorySubscriptions(), Endpoint(), InProcessWakeups())
    created = await app.create(COMMAND, OWNER, _context("create-1"))

    with pytest.raises(NotTheOwner):
        await app.get(UUID(created.subscription.subscription_id), "dr-b")
