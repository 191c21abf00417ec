"""A webhook worker's progress, its successes saved in batches."""

from __future__ import annotations

import time

from notify.domain.delivery import Delivery
from notify.ports import DeliveryProgress


class BatchedProgress:
    """Saves a worker's successes at most every ``save_every_s`` (and whenever it pauses)."""

    def __init__(self, progress: DeliveryProgress, *, save_every_s: float) -> None:
        self._progress = progress
        self._every_s = save_every_s
        self._unsaved: dict[str, list[int]] = {}
        self._saved_at: dict[str, float] = {}

    async def delivered(self, key: str, delivery: Delivery, sequence: int) -> None:
        self._unsaved.setdefault(key, []).append(sequence)
        if time.monotonic() - self._saved_at.get(key, 0.0) >= self._every_s:
            await self.flush(key, delivery)

    async def flush(self, key: str, delivery: Delivery) -> None:
        sent = self._unsaved.pop(key, [])
        if sent:
            await self._progress.save(key, delivery, sent=sent)
        self._saved_at[key] = time.monotonic()
