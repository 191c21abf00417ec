"""Read-your-writes without polling: the projection runners of this process announce the
versions they applied, and reads with "at least version N" await that announcement.

There is one `AppliedVersions` per collection (``applied_versions("<database>.<collection>")``):
a runner announces each batch to the collections its projection owns once the batch is
written, and `wait_for_version` awaits the announcement for its document, so every read model
that reads through `wait_for_version` gets it with no wiring.

The runner here may not consume the aggregate's partition (another replica or a projector
process does, sharing the consumer group): for those aggregates a read falls back to reading the
document again at growing intervals, within the same wait budget. Partitions a runner here is
assigned need no fallback: their announcement is awaited alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from clinical_platform.eventlog.partitioning import partition_for

Document = TypeVar("Document")

# The fallback's first re-read comes soon (a projection elsewhere applies within milliseconds),
# later ones ever more rarely: a document that stays behind costs few reads per wait.
FALLBACK_FIRST_S = 0.005
FALLBACK_MAX_S = 0.2
# Even a partition consumed here is looked at again now and then: a rebalance may have moved it.
LOCAL_RECHECK_S = 0.5


class AppliedVersions:
    """Waiters keyed by aggregate id, woken by the runner once their version is applied."""

    def __init__(self) -> None:
        self._waiters: dict[str, list[tuple[int, asyncio.Future[None]]]] = {}
        # (runner, topic) -> (the partitions it consumes, the topic's partition count)
        self._assigned: dict[tuple[int, str], tuple[frozenset[int], int]] = {}

    def assigned(
        self, runner: object, topic: str, partitions: Iterable[int], partition_count: int
    ) -> None:
        """``runner`` consumes these partitions of ``topic`` now (told on every rebalance)."""
        self._assigned[id(runner), topic] = (frozenset(partitions), partition_count)

    def withdraw(self, runner: object) -> None:
        """``runner`` stopped: its partitions are nobody's here any more."""
        for key in [key for key in self._assigned if key[0] == id(runner)]:
            del self._assigned[key]

    def consumed_here(self, aggregate_id: str) -> bool:
        """Whether a runner in this process consumes the partition of ``aggregate_id``."""
        return any(
            partition_for(aggregate_id, count) in partitions
            for partitions, count in self._assigned.values()
            if count
        )

    def publish(self, applied: Iterable[tuple[str, int]]) -> None:
        """Wake whoever waits for any of these (aggregate id, version) pairs or an older one."""
        if not self._waiters:
            return
        for aggregate_id, version in applied:
            waiting = self._waiters.get(aggregate_id)
            if waiting is None:
                continue
            still = []
            for min_version, woken in waiting:
                if min_version <= version:
                    if not woken.done():
                        woken.set_result(None)
                else:
                    still.append((min_version, woken))
            if still:
                self._waiters[aggregate_id] = still
            else:
                del self._waiters[aggregate_id]

    async def read_at_least(
        self,
        aggregate_id: str,
        min_version: int,
        read: Callable[[], Awaitable[Document]],
        version_of: Callable[[Document], int],
        *,
        timeout_s: float,
    ) -> Document | None:
        """``read()``'s document once its version is at least ``min_version``; None if that
        takes longer than ``timeout_s``. With ``min_version`` 0, whatever ``read()`` finds now.

        ``version_of`` tells a document's version (0 for no document)."""
        if min_version == 0:
            return await read()
        deadline = time.monotonic() + timeout_s
        fallback_s = FALLBACK_FIRST_S
        while True:
            # Registered before reading: an announcement between the read and the wait is kept.
            woken = self._register(aggregate_id, min_version)
            try:
                document = await read()
                if version_of(document) >= min_version:
                    return document
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                if self.consumed_here(aggregate_id):
                    await asyncio.wait([woken], timeout=min(left, LOCAL_RECHECK_S))
                else:
                    await asyncio.wait([woken], timeout=min(left, fallback_s))
                    fallback_s = min(fallback_s * 2, FALLBACK_MAX_S)
            finally:
                self._unregister(aggregate_id, woken)

    def _register(self, aggregate_id: str, min_version: int) -> asyncio.Future[None]:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(aggregate_id, []).append((min_version, woken))
        return woken

    def _unregister(self, aggregate_id: str, woken: asyncio.Future[None]) -> None:
        waiting = self._waiters.get(aggregate_id)
        if waiting is None:
            return
        still = [(version, other) for version, other in waiting if other is not woken]
        if still:
            self._waiters[aggregate_id] = still
        else:
            del self._waiters[aggregate_id]


_BY_COLLECTION: dict[str, AppliedVersions] = {}


def applied_versions(collection_full_name: str) -> AppliedVersions:
    """The versions runners of this process applied to ``<database>.<collection>``."""
    return _BY_COLLECTION.setdefault(collection_full_name, AppliedVersions())
