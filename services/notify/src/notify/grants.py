"""Subscription grants: renewal by the owner, revocation by the owner or an administrator,
and the check every delivery makes first (`refuse_if_lapsed`).

A grant lasts a lifetime (30 days by default) from creation or its last renewal. Revoking
one subscription, or all of one owner's (an employee who left), records a
SubscriptionRevoked event per subscription, with the actor, on notify's log; the matcher,
the webhook pool and open streams stop delivering it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from clinical_platform.eventlog.context import CommandContext
from clinical_platform.reads import Clock, utc_now
from notify.domain.errors import (
    NotAnAdministrator,
    NotTheOwner,
    SubscriptionDeleted,
    SubscriptionExpired,
    SubscriptionNotFound,
    SubscriptionRevoked,
)
from notify.domain.subscription import DEFAULT_LIFETIME, Lapse, Subscription, SubscriptionView
from notify.ports import Subscriptions, Wakeups

_PAGE = 100


def refuse_if_lapsed(view: SubscriptionView, now: datetime) -> None:
    """Raise SubscriptionExpired or SubscriptionRevoked when the grant no longer holds."""
    lapse = view.lapse(now)
    if lapse is Lapse.REVOKED:
        raise SubscriptionRevoked(view.subscription_id)
    if lapse is Lapse.EXPIRED:
        raise SubscriptionExpired(view.subscription_id)


async def live_view(subscriptions: Subscriptions, subscription_id: UUID) -> SubscriptionView:
    """The subscription unless it does not exist or was deleted (NOT_FOUND either way)."""
    view = await subscriptions.view(subscription_id)
    if view is None:
        raise SubscriptionNotFound(subscription_id)
    if view.deleted_at is not None:
        raise SubscriptionDeleted(subscription_id)
    return view


class SubscriptionGrants:
    """Renews and revokes subscriptions; who is an administrator is the servicer's (policy's)
    decision, passed in as ``administrator``."""

    def __init__(
        self,
        subscriptions: Subscriptions,
        wakeups: Wakeups,
        *,
        lifetime: timedelta = DEFAULT_LIFETIME,
        clock: Clock = utc_now,
    ) -> None:
        self._subscriptions = subscriptions
        self._wakeups = wakeups
        self._lifetime = lifetime
        self._clock = clock

    async def renew(
        self, subscription_id: UUID, caller: str, context: CommandContext
    ) -> SubscriptionView:
        """Extend the caller's active subscription to one lifetime from now."""
        view = await live_view(self._subscriptions, subscription_id)
        if view.owner.subject != caller:
            raise NotTheOwner
        refuse_if_lapsed(view, self._clock())

        def renew(current: Subscription | None) -> Subscription:
            if current is None:
                raise SubscriptionNotFound(subscription_id)
            current.renew(at=self._clock(), lifetime=self._lifetime)
            return current

        await self._subscriptions.execute(subscription_id, context, renew)
        self._wakeups.changed(str(subscription_id))
        return await live_view(self._subscriptions, subscription_id)

    async def revoke(
        self, subscription_id: UUID, caller: str, context: CommandContext, *, administrator: bool
    ) -> int:
        """Revoke one subscription (its owner, or an administrator); its new version."""
        view = await live_view(self._subscriptions, subscription_id)
        if view.owner.subject != caller and not administrator:
            raise NotTheOwner
        return await self._revoke(subscription_id, caller, context)

    async def revoke_owner(
        self, owner: str, caller: str, context: CommandContext, *, administrator: bool
    ) -> int:
        """Revoke every subscription of ``owner`` not revoked yet; how many this call revoked.
        Subscriptions created after the call are not affected."""
        if owner != caller and not administrator:
            raise NotAnAdministrator
        revoked = 0
        after: tuple[datetime, str] | None = None
        while views := await self._subscriptions.views_of(owner, after=after, limit=_PAGE):
            for view in views:
                if view.revoked_at is None:
                    await self._revoke(UUID(view.subscription_id), caller, context)
                    revoked += 1
            after = (views[-1].created_at, views[-1].subscription_id)
        return revoked

    async def _revoke(self, subscription_id: UUID, caller: str, context: CommandContext) -> int:
        def revoke(current: Subscription | None) -> Subscription:
            if current is None:
                raise SubscriptionNotFound(subscription_id)
            current.revoke(by=caller, at=self._clock())
            return current

        executed = await self._subscriptions.execute(subscription_id, context, revoke)
        # Streams and the webhook pool on this replica stop before the next notification.
        self._wakeups.changed(str(subscription_id))
        return executed.version
