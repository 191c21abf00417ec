"""Group commit's gathering: the appends queued for a partition writer, handed out in batches."""

from __future__ import annotations

import asyncio
from collections import deque

from clinical_platform.eventlog.appends import PendingAppend

_RECENT_BATCHES = 8


class AppendQueue:
    """Appends in arrival order; `next_batch` takes what is queued, after a short wait under load.

    A transaction costs about the same CPU for one event or fifty, so when recent batches
    showed concurrent callers the writer waits, at most ``linger_s``, until as many appends are
    queued as the largest of the last few batches carried: callers that got their answer tend to
    come back with their next command. It stops waiting as soon as they have (a partition whose
    callers are all queued never waits), and a load that falls leaves the window within a few
    batches. A lone caller never waits.

    At most ``max_depth`` appends wait: past that `put` raises `asyncio.QueueFull`, so a burst
    is refused at once instead of growing memory and every caller's wait without bound.
    """

    def __init__(self, *, max_batch: int, linger_s: float, max_depth: int = 10_000) -> None:
        if max_depth < 1:
            raise ValueError("max_depth must be at least 1")
        self._queue: asyncio.Queue[PendingAppend] = asyncio.Queue(maxsize=max_depth)
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._recent_sizes: deque[int] = deque(maxlen=_RECENT_BATCHES)
        self._wanted = 0
        self._enough = asyncio.Event()

    def put(self, pending: PendingAppend) -> None:
        """Queue ``pending``; `asyncio.QueueFull` (nothing queued) when ``max_depth`` wait."""
        self._queue.put_nowait(pending)
        if self._wanted and self._queue.qsize() >= self._wanted:
            self._enough.set()

    async def next_batch(self) -> list[PendingAppend]:
        """Wait for an append; return it and those queued behind it (up to ``max_batch``)."""
        batch = [await self._queue.get()]
        target = min(max(self._recent_sizes, default=0), self._max_batch)
        if self._linger_s and target > 1 and self._queue.qsize() + 1 < target:
            await self._linger(target - 1)
        while len(batch) < self._max_batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        self._recent_sizes.append(len(batch))
        return batch

    def drain(self) -> list[PendingAppend]:
        """Everything still queued (the writer is stopping)."""
        drained = []
        while not self._queue.empty():
            drained.append(self._queue.get_nowait())
        return drained

    async def _linger(self, wanted: int) -> None:
        self._wanted = wanted
        self._enough.clear()
        try:
            async with asyncio.timeout(self._linger_s):
                await self._enough.wait()
        except TimeoutError:
            pass
        finally:
            self._wanted = 0
