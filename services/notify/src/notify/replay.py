"""Reading a subscription's notifications: the stream, ListEvents and their wake-ups.

Every read re-checks the grant first (`grants.refuse_if_lapsed`): an expired or revoked
subscription reads nothing more, whatever its feed holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from clinical_platform.reads import Clock, utc_now
from notify.domain.notification import Notification
from notify.domain.subscription import SubscriptionView
from notify.grants import refuse_if_lapsed
from notify.ports import Feed, Renderer, Wakeups


@dataclass(frozen=True)
class Page:
    """Notifications after a number, and the newest number."""

    notifications: list[Notification]
    head: int


class NotificationReplay:
    """The notifications of a subscription the caller was allowed to read (`NotifyApp.active`),
    as the owner may receive them now."""

    def __init__(
        self, feed: Feed, renderer: Renderer, wakeups: Wakeups, *, clock: Clock = utc_now
    ) -> None:
        self._feed = feed
        self._renderer = renderer
        self._wakeups = wakeups
        self._clock = clock

    async def head(self, view: SubscriptionView) -> int:
        """The newest number (0: none)."""
        return await self._feed.head(view.subscription_id)

    async def notifications(
        self, view: SubscriptionView, *, since: int, limit: int
    ) -> list[Notification]:
        """Up to ``limit`` notifications after ``since``."""
        refuse_if_lapsed(view, self._clock())
        entries = await self._feed.entries(view.subscription_id, after=since, limit=limit)
        return await self._renderer.render_all(view, entries)

    async def list_events(self, view: SubscriptionView, *, since: int, limit: int) -> Page:
        """Notifications after ``since``, and the newest number."""
        notifications = await self.notifications(view, since=since, limit=limit)
        return Page(notifications, await self._feed.head(view.subscription_id))

    def news_mark(self, view: SubscriptionView) -> tuple[int, int]:
        """Note this before reading notifications, and pass it to `wait_for_news`."""
        key = view.subscription_id
        return self._wakeups.news(key), self._wakeups.revision(key)

    async def wait_for_news(
        self, view: SubscriptionView, timeout_s: float, *, seen: tuple[int, int]
    ) -> bool:
        """Return when the subscription has something new since the mark ``seen``, or after
        ``timeout_s``. True: only new notifications (the view still holds); False: it timed
        out or the subscription changed, so read it again (another replica may have too)."""
        key = view.subscription_id
        news, revision = seen
        woken = await self._wakeups.wait(key, timeout_s, seen=news)
        return woken and self._wakeups.revision(key) == revision
