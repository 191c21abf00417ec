"""A bounded pool of workers that take turns at keyed jobs (one per webhook subscription).

Thousands of subscriptions cost a few tasks, not one each. A key is served by one worker at a
time (so a subscription's notifications stay in order); a turn does a bounded amount of work
and says when the key wants its next one, so a busy subscription goes to the back of the
queue and the others get their turns. A key becomes ready when its time comes or when it is
signalled (`ready`); a signal during its turn gives it another turn straight after, so news
that arrived while a turn was reading is never left for the next timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

Turn = Callable[[str], Awaitable[float | None]]
"""Serve one key for a while; seconds until its next turn (0: after the others), or None
when the key is done."""


class TurnPool:
    def __init__(self, turn: Turn, *, size: int, name: str) -> None:
        if size < 1:
            msg = "a pool needs at least one worker"
            raise ValueError(msg)
        self._turn = turn
        self._size = size
        self._name = name
        self._keys: set[str] = set()
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._busy: set[str] = set()
        self._signalled: set[str] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._workers: list[asyncio.Task[None]] = []

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(self._keys)

    def add(self, key: str) -> None:
        """Serve ``key`` from now on (its first turn at once); starts the workers if needed."""
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._work(), name=f"{self._name} {n}")
                for n in range(self._size)
            ]
        self._keys.add(key)
        self.ready(key)

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def ready(self, key: str) -> None:
        """Give ``key`` a turn as soon as a worker is free (no-op for a key not served)."""
        if key not in self._keys:
            return
        if key in self._busy:
            self._signalled.add(key)
            return
        self._cancel_timer(key)
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def remove(self, key: str) -> None:
        """Serve ``key`` no more (a turn in progress finishes its current step)."""
        self._keys.discard(key)
        self._signalled.discard(key)
        self._cancel_timer(key)

    async def stop(self) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.cancel()
        for worker in workers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await worker
        for key in list(self._timers):
            self._cancel_timer(key)
        self._keys.clear()

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            if key not in self._keys:
                continue
            self._busy.add(key)
            next_in: float | None = 0.0
            try:
                next_in = await self._turn(key)
            except Exception:
                logger.exception("a turn failed; the key is served again later",
                                 extra={"pool": self._name, "key": key})  # fmt: skip
                next_in = 1.0
            finally:
                self._busy.discard(key)
            self._after_turn(key, next_in)

    def _after_turn(self, key: str, next_in: float | None) -> None:
        if next_in is None:
            self.remove(key)
            return
        if key in self._signalled or next_in <= 0:
            self._signalled.discard(key)
            self.ready(key)
            return
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(next_in, self.ready, key)

    def _cancel_timer(self, key: str) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
