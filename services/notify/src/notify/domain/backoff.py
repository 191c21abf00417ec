"""When to try a failing webhook again: exponential backoff with jitter, within a horizon."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetrySchedule:
    """Attempt n (1-based) failed: wait first * 2**(n-1), capped, then scaled by a random factor
    in [1/2, 1] ("equal jitter": never zero, and failing endpoints' retries spread out). Once
    the first failure is ``horizon`` old, the notification is given up (dead-lettered)."""

    first: timedelta
    maximum: timedelta
    horizon: timedelta

    def delay(self, failed_attempts: int, rng: random.Random | None = None) -> timedelta:
        exponent = min(max(failed_attempts - 1, 0), 60)  # beyond that the cap rules anyway
        ceiling_s = min(self.first.total_seconds() * 2.0**exponent, self.maximum.total_seconds())
        jitter: float = (rng or random).uniform(0.5, 1.0)
        return timedelta(seconds=ceiling_s * jitter)

    def next_attempt(
        self,
        failed_attempts: int,
        first_failure: datetime,
        now: datetime,
        rng: random.Random | None = None,
    ) -> datetime | None:
        """When to try again, or None when the horizon has passed (give up)."""
        if now - first_failure >= self.horizon:
            return None
        return min(now + self.delay(failed_attempts, rng), first_failure + self.horizon)
