"""Fakes of notify's ports for the application's unit tests, and an app built on them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from clinical_platform.eventlog.context import Actor, CommandContext
from notify.adapters.wakeups import InProcessWakeups
from notify.application import NotifyApp
from notify.domain.delivery import Delivery
from notify.domain.feed import FeedEntry
from notify.domain.notification import Notification
from notify.domain.subscription import Subscription, SubscriptionView
from notify.grants import SubscriptionGrants
from notify.policy import Quotas
from notify.ports import Executed, Outcome

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LIFETIME = timedelta(days=30)
QUOTAS = Quotas(per_owner=3, per_patient=1)


def _view(subscription: Subscription) -> SubscriptionView:
    return SubscriptionView(
        subscription_id=str(subscription.id), owner=subscription.owner,
        topics=subscription.topics, event_filter=subscription.event_filter,
        content=subscription.content, webhook_url=subscription.webhook_url,
        secrets=subscription.secrets, created_at=subscription.created_at,
        version=subscription.version, deleted_at=subscription.deleted_at,
        expires_at=subscription.expires_at, revoked_at=subscription.revoked_at,
        payload_format=subscription.payload_format,
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
        mine = sorted(
            (_view(s) for s in self.saved.values() if s.owner.subject == owner and not s.deleted),
            key=lambda view: (view.created_at, view.subscription_id),
        )
        return [v for v in mine if after is None or (v.created_at, v.subscription_id) > after][
            :limit
        ]

    async def active_count(self, owner: str, now: datetime) -> int:
        return sum(
            1 for s in self.saved.values()
            if s.owner.subject == owner and not s.deleted and s.lapse(now) is None
        )  # fmt: skip


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

    async def post(
        self, url: str, message_id: str, body: str, secrets: Sequence[str],
        *, content_type: str = "application/json",
    ) -> Outcome:  # fmt: skip
        raise NotImplementedError


@dataclass
class Clock:
    """The time the app sees; tests move it."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


def command_context(request_id: str, subject: str = "dr-a") -> CommandContext:
    return CommandContext(Actor(subject, ("clinician",)), request_id)


@pytest.fixture
def subscriptions() -> InMemorySubscriptions:
    return InMemorySubscriptions()


@pytest.fixture
def endpoint() -> Endpoint:
    return Endpoint()


@pytest.fixture
def wakeups() -> InProcessWakeups:
    return InProcessWakeups()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(
    subscriptions: InMemorySubscriptions, endpoint: Endpoint, wakeups: InProcessWakeups,
    clock: Clock,
) -> NotifyApp:  # fmt: skip
    nothing = Nothing()
    return NotifyApp(
        subscriptions, nothing, nothing, secrets=nothing, sender=endpoint, wakeups=wakeups,
        allow_http=False, secret_overlap=timedelta(hours=24), lifetime=LIFETIME,
        quota=QUOTAS.limit_for, clock=clock,
    )  # fmt: skip


@pytest.fixture
def grants(
    subscriptions: InMemorySubscriptions, wakeups: InProcessWakeups, clock: Clock
) -> SubscriptionGrants:
    return SubscriptionGrants(subscriptions, wakeups, lifetime=LIFETIME, clock=clock)
