"""A subscription's feed: its matched events, numbered 1, 2, 3, ... with no gap."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from notify.domain.subscription import Topic


@dataclass(frozen=True)
class FeedEntry:
    """One numbered notification, as the matcher recorded it (ids only, no PHI)."""

    subscription_id: str
    sequence: int
    event_id: str
    topic: Topic
    patient_id: str
    order_id: str
    result_id: str
    version: int
    occurred_at: datetime
