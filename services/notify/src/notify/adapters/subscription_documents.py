"""``notify_subscriptions``: one document per subscription (a read model of the aggregate).

Besides the aggregate's fields, the matcher records the Kafka timestamps of its
SubscriptionCreated and SubscriptionDeleted records: a subscription matches the events
committed in between.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from clinical_platform.projections.documents import ensure_indexes, upsert_versioned
from notify.domain.subscription import (
    DEFAULT_LIFETIME,
    Content,
    Filter,
    Owner,
    PayloadFormat,
    Subscription,
    SubscriptionView,
    Topic,
)
from notify.domain.webhook import WebhookSecret

SUBSCRIPTIONS = "notify_subscriptions"


class SubscriptionDocuments:
    """Reads and writes ``notify_subscriptions``."""

    def __init__(self, database: AsyncDatabase[Any]) -> None:
        self._subscriptions = database[SUBSCRIPTIONS]

    async def setup(self) -> None:
        await ensure_indexes(
            self._subscriptions,
            [IndexModel([("owner.subject", ASCENDING), ("created_at", ASCENDING)])],
        )

    async def save(self, subscription: Subscription) -> None:
        await upsert_versioned(
            self._subscriptions, str(subscription.id), subscription.version,
            _subscription_fields(subscription),
        )  # fmt: skip

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

    async def active_count(self, owner: str, now: datetime) -> int:
        """The owner's subscriptions whose grant holds at ``now`` (the quota's count). A
        document written before grants expired has no expires_at: it lasts the default
        lifetime from its creation."""
        unexpired = [
            {"expires_at": {"$gt": now}},
            {"expires_at": None, "created_at": {"$gt": now - DEFAULT_LIFETIME}},
        ]
        return await self._subscriptions.count_documents(
            {"owner.subject": owner, "deleted_at": None, "revoked_at": None, "$or": unexpired}
        )

    async def live_subscriptions(self) -> list[tuple[SubscriptionView, int | None]]:
        """Every subscription neither deleted nor revoked, with the Kafka timestamp of its
        creation once the matcher has seen it (the matcher's start-up state)."""
        return [
            (_subscription_view(d), d.get("created_ts"))
            async for d in self._subscriptions.find({"deleted_at": None, "revoked_at": None})
        ]


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
        "expires_at": subscription.expires_at,
        "revoked_at": subscription.revoked_at,
        "payload_format": subscription.payload_format.value,
    }  # fmt: skip


def _subscription_view(document: Mapping[str, Any]) -> SubscriptionView:
    owner = document["owner"]
    f = document["filter"]
    deleted_at = document.get("deleted_at")
    expires_at, revoked_at = document.get("expires_at"), document.get("revoked_at")
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
        expires_at=expires_at.replace(tzinfo=UTC) if expires_at else None,
        revoked_at=revoked_at.replace(tzinfo=UTC) if revoked_at else None,
        payload_format=PayloadFormat(document.get("payload_format") or PayloadFormat.NATIVE),
    )  # fmt: skip
