"""In-process signals "subscription X changed or has something new", for streams and workers,
and the hand-off of freshly numbered entries to webhook workers.

A waiter notes `news` before it reads the feed and passes it to `wait`, which returns at once
when a `wake` came in between: a notification numbered while the waiter was reading is never
left for the next poll. Another replica's changes are not signalled: waiters also look, at the
configured interval, off the hot path. A subscription's commands run on the replica that owns
its partition, which also runs its webhook worker, so a rotated secret reaches the worker
through `changed` at once.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Callable

from notify.domain.feed import FeedEntry


class InProcessWakeups:
    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._news: defaultdict[str, int] = defaultdict(int)
        self._revisions: defaultdict[str, int] = defaultdict(int)
        self._listeners: list[Callable[[str], None]] = []

    def listen(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(subscription_id)`` on every wake (the webhook pool's doorbell)."""
        self._listeners.append(listener)

    def wake(self, subscription_id: str) -> None:
        self._news[subscription_id] += 1
        for listener in self._listeners:
            listener(subscription_id)
        event = self._events.pop(subscription_id, None)
        if event is not None:
            event.set()

    def changed(self, subscription_id: str) -> None:
        """The subscription's stored state changed: readers holding a copy read it again."""
        self._revisions[subscription_id] += 1
        self.wake(subscription_id)

    def revision(self, subscription_id: str) -> int:
        """How often `changed` was called for the subscription (compare, don't interpret)."""
        return self._revisions.get(subscription_id, 0)

    def news(self, subscription_id: str) -> int:
        """How often `wake` was called for the subscription (note it before reading)."""
        return self._news.get(subscription_id, 0)

    async def wait(self, subscription_id: str, timeout_s: float, *, seen: int) -> bool:
        """Until a wake after the one ``seen`` was noted at, or ``timeout_s``; True if woken."""
        if self.news(subscription_id) != seen:
            return True
        event = self._events.setdefault(subscription_id, asyncio.Event())
        try:
            async with asyncio.timeout(timeout_s):
                await event.wait()
        except TimeoutError:
            return False
        return True


class FreshEntries:
    """Entries this replica's matcher just numbered, with their kept envelopes, handed to the
    subscription's webhook worker in memory: the hot path reads no feed or envelope back from
    the database. A few per subscription; the worker reads the database when they run out."""

    def __init__(self, kept_per_subscription: int = 256) -> None:
        self._kept = kept_per_subscription
        self._entries: dict[str, deque[tuple[FeedEntry, bytes]]] = {}
        self._heads: dict[str, int] = {}

    def hand_over(self, entry: FeedEntry, envelope: bytes) -> None:
        key = entry.subscription_id
        self._entries.setdefault(key, deque(maxlen=self._kept)).append((entry, envelope))
        self._heads[key] = max(entry.sequence, self._heads.get(key, 0))

    def after(
        self, subscription_id: str, sequence: int, limit: int
    ) -> list[tuple[FeedEntry, bytes]]:
        """Up to ``limit`` entries numbered ``sequence + 1`` on, without a gap (older ones are
        dropped: the worker is past them); empty when the next one is not held here."""
        held = self._entries.get(subscription_id)
        if not held:
            return []
        while held and held[0][0].sequence <= sequence:
            held.popleft()
        found: list[tuple[FeedEntry, bytes]] = []
        for entry, envelope in held:
            if entry.sequence != sequence + 1 + len(found) or len(found) == limit:
                break
            found.append((entry, envelope))
        return found

    def head(self, subscription_id: str) -> int | None:
        """The newest number handed over for the subscription (None: none since start)."""
        return self._heads.get(subscription_id)
