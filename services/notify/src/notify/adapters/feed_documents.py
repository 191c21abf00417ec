"""``notify_feed``: one document per numbered notification, ids only (no PHI).

``_id`` is "<subscription>:<zero-padded sequence>", so a subscription's feed sorts by ``_id``
in order, and ``subscription_id`` (indexed) selects it; ``dedup`` ("<subscription>/<event>") is
unique too, so a matcher restart that re-reads a record numbers nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from clinical_platform.projections.documents import ensure_indexes
from notify.domain.feed import FeedEntry
from notify.domain.subscription import Topic
from notify.ports import NumberTaken

FEED = "notify_feed"
_SEQUENCE_DIGITS = 20


def feed_id(subscription_id: str, sequence: int) -> str:
    return f"{subscription_id}:{sequence:0{_SEQUENCE_DIGITS}d}"


class FeedDocuments:
    """Reads and appends ``notify_feed``."""

    def __init__(self, database: AsyncDatabase[Any]) -> None:
        self._feed = database[FEED]

    async def setup(self) -> None:
        await ensure_indexes(
            self._feed,
            [IndexModel([("dedup", ASCENDING)], unique=True),
             IndexModel([("subscription_id", ASCENDING)])],
        )  # fmt: skip

    async def append(self, entry: FeedEntry) -> bool:
        """Record a numbered notification; False when this event was already numbered for the
        subscription. Raises NumberTaken when the number is taken by another event."""
        document = {
            "_id": feed_id(entry.subscription_id, entry.sequence),
            "subscription_id": entry.subscription_id,
            "sequence": entry.sequence,
            "dedup": f"{entry.subscription_id}/{entry.event_id}",
            "event_id": entry.event_id,
            "type": entry.topic.value,
            "patient_id": entry.patient_id,
            "order_id": entry.order_id,
            "result_id": entry.result_id,
            "version": entry.version,
            "occurred_at": entry.occurred_at,
        }
        try:
            await self._feed.insert_one(document)
        except DuplicateKeyError as taken:
            if await self._feed.find_one({"dedup": document["dedup"]}, {"_id": 1}):
                return False
            raise NumberTaken(entry.sequence) from taken
        return True

    async def head(self, subscription_id: str) -> int:
        """The newest sequence number of the subscription (0: none yet)."""
        last = await self._feed.find_one(
            {"subscription_id": subscription_id}, {"sequence": 1}, sort=[("_id", DESCENDING)]
        )
        return int(last["sequence"]) if last else 0

    async def entries(self, subscription_id: str, *, after: int, limit: int) -> list[FeedEntry]:
        """Numbered notifications after ``after``, in order."""
        # The equality is answered from an index (docs/read-models.md), the range on what it found.
        after_id = feed_id(subscription_id, after)
        query = {"subscription_id": subscription_id, "_id": {"$gt": after_id}}
        cursor = self._feed.find(query).sort("_id", ASCENDING).limit(limit)
        return [_entry(document) async for document in cursor]


def _entry(document: Mapping[str, Any]) -> FeedEntry:
    return FeedEntry(
        subscription_id=document["subscription_id"],
        sequence=int(document["sequence"]),
        event_id=document["event_id"],
        topic=Topic(document["type"]),
        patient_id=document["patient_id"],
        order_id=document["order_id"],
        result_id=document["result_id"],
        version=int(document["version"]),
        occurred_at=document["occurred_at"].replace(tzinfo=UTC),
    )
