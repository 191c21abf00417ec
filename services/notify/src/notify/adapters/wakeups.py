"""In-process signals "subscription X changed or has something new", for streams and workers.

A waiter notes `news` before it reads the feed and passes it to `wait`, which returns at once
when a `wake` came in between: a notification numbered while the waiter was reading is never
left for the next poll. Another replica's changes are not signalled: waiters also look, at the
configured interval, off the hot path. A subscription's commands run on the replica that owns
its partition, which also runs its webhook worker, so a rotated secret reaches the worker
through `changed` at once.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict


class InProcessWakeups:
    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._news: defaultdict[str, int] = defaultdict(int)
        self._revisions: defaultdict[str, int] = defaultdict(int)

    def wake(self, subscription_id: str) -> None:
        self._news[subscription_id] += 1
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
