"""In-process signals "subscription X changed or has something new", for streams and workers.

Another replica's changes are not signalled: waiters also poll, at the configured interval.
A subscription's commands run on the replica that owns its partition, which also runs its
webhook worker, so a rotated secret reaches the worker through `changed` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict


class InProcessWakeups:
    def __init__(self) -> None:
        self._events: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._revisions: defaultdict[str, int] = defaultdict(int)

    def wake(self, subscription_id: str) -> None:
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

    async def wait(self, subscription_id: str, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._events[subscription_id].wait(), timeout_s)
