"""notify's documents in MongoDB: subscriptions, their numbered feeds, and delivery state.

    notify_subscriptions  one per subscription (a read model of the Subscription aggregate)
    notify_feed           one per numbered notification: ``_id`` "<subscription>:<sequence>",
                          ids only (no PHI), unique per (subscription, event) too
    notify_events         the matched events' envelopes, payload still encrypted under the
                          patient's key (full content is decrypted at delivery)
    notify_index          per order and result: the facts filters need (patient, orderer,
                          priority, test), learned from the payloads
    notify_delivery       per webhook subscription: cursor, state, counters, last error

A forgotten patient's ``notify_events`` and ``notify_index`` documents become markers; feed
entries stay (they hold ids only), so numbering stays gapless and those notifications go out
"withheld".
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from clinical_platform.projections.documents import ensure_indexes, upsert_versioned
from clinical_platform.security.forgetting import FORGOTTEN_FIELD
from notify.domain.subscription import (
    Content,
    Filter,
    Owner,
    Subscription,
    SubscriptionView,
    Topic,
    WebhookSecret,
)

SUBSCRIPTIONS = "notify_subscriptions"
FEED = "notify_feed"
EVENTS = "notify_events"
INDEX = "notify_index"
DELIVERY = "notify_delivery"
COLLECTIONS = (SUBSCRIPTIONS, FEED, EVENTS, INDEX, DELIVERY)
# Marked as forgotten when a patient is crypto-shredded (they hold the patient's facts).
PATIENT_COLLECTIONS = (EVENTS, INDEX)
_SEQUENCE_DIGITS = 20


def feed_id(subscription_id: str, sequence: int) -> str:
    return f"{subscription_id}:{sequence:0{_SEQUENCE_DIGITS}d}"


@dataclass(frozen=True)
class FeedEntry:
    """One numbered notification, as the matcher recorded it."""

    subscription_id: str
    sequence: int
    event_id: str
    topic: Topic
    patient_id: str
    order_id: str
    result_id: str
    version: int
    occurred_at: datetime


class DeliveryState:
    """Fields of a ``notify_delivery`` document."""

    ACTIVE = "active"
    ERROR = "error"
    OFF = "off"


@dataclass
class Delivery:
    """A webhook subscription's delivery progress."""

    cursor: int = 0
    state: str = DeliveryState.ACTIVE
    delivered: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    dead_letters: list[int] = field(default_factory=list)
    resend: list[int] = field(default_factory=list)
    attempts: int = 0  # failed attempts of the notification now at the head
    first_failure_at: datetime | None = None
    next_attempt_at: datetime | None = None
    last_error: str = ""
    last_error_at: datetime | None = None
    last_success_at: datetime | None = None


class NotifyDocuments:
    """Reads and writes notify's collections."""

    def __init__(self, database: AsyncDatabase[Any]) -> None:
        self._db = database
        self._subscriptions = database[SUBSCRIPTIONS]
        self._feed = database[FEED]
        self._events = database[EVENTS]
        self._index = database[INDEX]
        self._delivery = database[DELIVERY]

    @property
    def database(self) -> AsyncDatabase[Any]:
        return self._db

    async def setup(self) -> None:
        await ensure_indexes(self._feed, [IndexModel([("dedup", ASCENDING)], unique=True)])
        await ensure_indexes(
            self._subscriptions,
            [IndexModel([("owner.subject", ASCENDING), ("created_at", ASCENDING)])],
        )
        await ensure_indexes(self._events, [IndexModel([("patient_id", ASCENDING)])])
        await ensure_indexes(self._index, [IndexModel([("patient_id", ASCENDING)])])

    # Subscriptions

    async def save_subscription(self, subscription: Subscription, version: int) -> None:
        await upsert_versioned(
            self._subscriptions, str(subscription.id), version, _subscription_fields(subscription)
        )

    async def set_created_timestamp(self, subscription_id: str, timestamp_ms: int) -> None:
        """The Kafka timestamp of SubscriptionCreated: the subscription matches later events."""
        await self._subscriptions.update_one(
            {"_id": subscription_id}, {"$set": {"created_ts": timestamp_ms}}
        )

    async def set_deleted_timestamp(self, subscription_id: str, timestamp_ms: int) -> None:
        await self._subscriptions.update_one(
            {"_id": subscription_id}, {"$set": {"deleted_ts": timestamp_ms}}
        )

    async def subscription(self, subscription_id: str) -> SubscriptionView | None:
        document = await self._subscriptions.find_one({"_id": subscription_id})
        return _subscription_view(document) if document else None

    async def subscriptions_of(
        self, owner: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[SubscriptionView]:
        query: dict[str, Any] = {"owner.subject": owner, "deleted_at": None}
        cursor = self._subscriptions.find(query).sort(
            [("created_at", ASCENDING), ("_id", ASCENDING)]
        )
        views = []
        async for document in cursor:
            key = (document["created_at"].replace(tzinfo=UTC), document["_id"])
            if after is not None and key <= after:
                continue
            views.append(_subscription_view(document))
            if len(views) == limit:
                break
        return views

    async def live_subscriptions(self) -> list[tuple[SubscriptionView, int | None]]:
        """Every subscription not deleted, with the Kafka timestamp of its creation once the
        matcher has seen it (the matcher's start-up state)."""
        return [
            (_subscription_view(d), d.get("created_ts"))
            async for d in self._subscriptions.find({"deleted_at": None})
        ]

    # The feed

    async def append(self, entry: FeedEntry) -> bool:
        """Record a numbered notification; False when this event was already numbered for the
        subscription. Raises DuplicateKeyError when the number is taken by another event."""
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
        except DuplicateKeyError:
            if await self._feed.find_one({"dedup": document["dedup"]}, {"_id": 1}):
                return False
            raise
        return True

    async def head(self, subscription_id: str) -> int:
        """The newest sequence number of the subscription (0: none yet)."""
        last = await self._feed.find_one(
            {"_id": {"$gt": f"{subscription_id}:", "$lt": f"{subscription_id};"}},
            {"sequence": 1}, sort=[("_id", DESCENDING)],
        )  # fmt: skip
        return int(last["sequence"]) if last else 0

    async def entries(self, subscription_id: str, *, after: int, limit: int) -> list[FeedEntry]:
        """Numbered notifications after ``after``, in order."""
        query = {"_id": {"$gt": feed_id(subscription_id, after), "$lt": f"{subscription_id};"}}
        cursor = self._feed.find(query).sort("_id", ASCENDING).limit(limit)
        return [_entry(document) async for document in cursor]

    async def entry(self, subscription_id: str, sequence: int) -> FeedEntry | None:
        document = await self._feed.find_one({"_id": feed_id(subscription_id, sequence)})
        return _entry(document) if document else None

    # Matched events and the index

    async def keep_event(self, event_id: str, patient_id: str, envelope: bytes) -> None:
        with contextlib.suppress(DuplicateKeyError):  # kept already
            await self._events.insert_one(
                {"_id": event_id, "patient_id": patient_id, "version": 1, "envelope": envelope}
            )

    async def event_envelope(self, event_id: str) -> bytes | None:
        """The kept envelope; None when its patient was forgotten (or it was never kept)."""
        document = await self._events.find_one({"_id": event_id})
        if document is None or document.get(FORGOTTEN_FIELD):
            return None
        return bytes(document["envelope"])

    async def event_envelopes(self, event_ids: Sequence[str]) -> dict[str, bytes | None]:
        """The kept envelopes of several events at once (None: forgotten, or never kept)."""
        found: dict[str, bytes | None] = dict.fromkeys(event_ids)
        async for document in self._events.find({"_id": {"$in": list(set(event_ids))}}):
            if not document.get(FORGOTTEN_FIELD):
                found[document["_id"]] = bytes(document["envelope"])
        return found

    async def index(self, aggregate_id: str, version: int, fields: Mapping[str, Any]) -> None:
        await upsert_versioned(self._index, aggregate_id, version, fields)

    async def indexed(self, aggregate_id: str) -> dict[str, Any] | None:
        document: dict[str, Any] | None = await self._index.find_one({"_id": aggregate_id})
        return document

    # Delivery state

    async def delivery(self, subscription_id: str) -> Delivery:
        document = await self._delivery.find_one({"_id": subscription_id})
        if document is None:
            return Delivery()
        fields = {k: v for k, v in document.items() if k in Delivery.__dataclass_fields__}
        for name in ("first_failure_at", "next_attempt_at", "last_error_at", "last_success_at"):
            if fields.get(name) is not None:
                fields[name] = fields[name].replace(tzinfo=UTC)
        return Delivery(**fields)

    async def save_delivery(
        self, subscription_id: str, delivery: Delivery, *, sent: Sequence[int] = ()
    ) -> None:
        """Write the worker's fields; ``sent`` numbers leave the resend queue if there."""
        fields = {
            name: getattr(delivery, name)
            for name in Delivery.__dataclass_fields__
            if name not in ("resend", "dead_letters")
        }
        update: dict[str, Any] = {"$set": fields}
        if sent:
            update["$pull"] = {"resend": {"$in": list(sent)}}
        await self._delivery.update_one({"_id": subscription_id}, update, upsert=True)

    async def dead_letter(self, subscription_id: str, delivery: Delivery, sequence: int) -> None:
        fields = {
            name: getattr(delivery, name)
            for name in Delivery.__dataclass_fields__
            if name not in ("resend", "dead_letters")
        }
        await self._delivery.update_one(
            {"_id": subscription_id},
            {
                "$set": fields,
                "$addToSet": {"dead_letters": sequence},
                "$pull": {"resend": sequence},
            },
            upsert=True,
        )

    async def queue_resend(self, subscription_id: str, sequences: Sequence[int]) -> None:
        """Queue delivered notifications again, and turn a stopped webhook back on."""
        update: dict[str, Any] = {"$set": {"state": DeliveryState.ACTIVE, "dead_letters": []}}
        if sequences:
            update["$addToSet"] = {"resend": {"$each": list(sequences)}}
        await self._delivery.update_one({"_id": subscription_id}, update, upsert=True)


def _subscription_fields(subscription: Subscription) -> dict[str, Any]:
    owner = subscription.owner
    f = subscription.event_filter
    return {
        "owner": {
            "subject": owner.subject, "roles": list(owner.roles),
            "patient_id": owner.patient_id, "client_id": owner.client_id,
        },
        "topics": [t.value for t in subscription.topics],
        "filter": {
            "patient_ids": list(f.patient_ids), "orderers": list(f.orderers),
            "loinc_codes": list(f.loinc_codes), "priorities": list(f.priorities),
            "abnormal_only": f.abnormal_only,
        },
        "content": subscription.content.value,
        "webhook_url": subscription.webhook_url,
        "secrets": [
            {"ciphertext": s.ciphertext, "valid_until": s.valid_until}
            for s in subscription.secrets
        ],
        "created_at": subscription.created_at,
        "deleted_at": subscription.deleted_at,
    }  # fmt: skip


def _subscription_view(document: Mapping[str, Any]) -> SubscriptionView:
    owner = document["owner"]
    f = document["filter"]
    deleted_at = document.get("deleted_at")
    return SubscriptionView(
        subscription_id=document["_id"],
        owner=Owner(
            subject=owner["subject"], roles=tuple(owner["roles"]),
            patient_id=owner["patient_id"], client_id=owner["client_id"],
        ),
        topics=tuple(Topic(t) for t in document["topics"]),
        event_filter=Filter(
            patient_ids=tuple(f["patient_ids"]), orderers=tuple(f["orderers"]),
            loinc_codes=tuple(f["loinc_codes"]), priorities=tuple(f["priorities"]),
            abnormal_only=bool(f["abnormal_only"]),
        ),
        content=Content(document["content"]),
        webhook_url=document["webhook_url"],
        secrets=tuple(
            WebhookSecret(
                s["ciphertext"],
                s["valid_until"].replace(tzinfo=UTC) if s.get("valid_until") else None,
            )
            for s in document["secrets"]
        ),
        created_at=document["created_at"].replace(tzinfo=UTC),
        version=int(document["version"]),
        deleted_at=deleted_at.replace(tzinfo=UTC) if deleted_at else None,
    )  # fmt: skip


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
