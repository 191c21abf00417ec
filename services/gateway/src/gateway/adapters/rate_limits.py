"""Rate limits with the `limits` library: a fixed window per key, memory or Redis storage.

Storage comes from a URI: ``async+memory://`` in one process (local runs, tests), or a
Redis-compatible server shared by every gateway replica (``async+redis://host:6379``).
When that server cannot be reached, requests are let through (with a warning): the limits
protect the platform from floods, and an outage of their store should not become one of ours.
"""

from __future__ import annotations

import logging
import math
import time

from limits import parse
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from gateway.ports import RateDecision

logger = logging.getLogger(__name__)


class WindowRateLimiter:
    """``limit`` requests per window (e.g. "100/minute") for each key."""

    def __init__(self, limit: str, storage_uri: str = "async+memory://") -> None:
        self._item = parse(limit)
        storage = storage_from_string(storage_uri, wrap_exceptions=True)
        self._limiter = FixedWindowRateLimiter(storage)

    async def hit(self, key: str) -> RateDecision:
        try:
            if await self._limiter.hit(self._item, key):
                return RateDecision(allowed=True)
        except StorageError as failed:
            logger.warning("rate-limit store unreachable; request let through",
                           extra={"error": type(failed.storage_error).__name__})  # fmt: skip
            return RateDecision(allowed=True)
        stats = await self._limiter.get_window_stats(self._item, key)
        return RateDecision(
            allowed=False, retry_after_s=max(1, math.ceil(stats.reset_time - time.time()))
        )
