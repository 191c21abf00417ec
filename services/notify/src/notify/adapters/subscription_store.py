"""The Subscriptions port: the aggregate repository, with the read model written through.

The matcher writes the read model too, when it reads the records from Kafka; writing it right
after the append as well lets the creator use a subscription at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from clinical_platform.eventlog.context import CommandContext
from clinical_platform.eventlog.repository import AggregateRepository
from notify.adapters.subscription_documents import SubscriptionDocuments
from notify.domain.errors import SubscriptionNotFound
from notify.domain.subscription import Subscription, SubscriptionView
from notify.ports import Executed


class WriteThroughSubscriptions:
    def __init__(
        self, repository: AggregateRepository[Subscription], documents: SubscriptionDocuments
    ) -> None:
        self._repository = repository
        self._documents = documents

    async def get(self, subscription_id: UUID) -> Subscription | None:
        return await self._repository.get(subscription_id)

    async def execute(
        self,
        subscription_id: UUID,
        context: CommandContext,
        command: Callable[[Subscription | None], Subscription],
    ) -> Executed:
        result = await self._repository.execute(subscription_id, context, command)
        subscription = await self._repository.get(subscription_id)
        if subscription is None:  # pragma: no cover - just appended
            raise SubscriptionNotFound(subscription_id)
        await self._documents.save(subscription)
        return Executed(result.version, subscription)

    async def view(self, subscription_id: UUID) -> SubscriptionView | None:
        view = await self._documents.subscription(str(subscription_id))
        if view is not None:
            return view
        subscription = await self._repository.get(subscription_id)
        if subscription is None:
            return None
        await self._documents.save(subscription)
        return await self._documents.subscription(str(subscription_id))

    async def views_of(
        self, owner: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[SubscriptionView]:
        return await self._documents.subscriptions_of(owner, after=after, limit=limit)

    async def active_count(self, owner: str, now: datetime) -> int:
        return await self._documents.active_count(owner, now)
