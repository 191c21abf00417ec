"""``notify_delivery``: per webhook subscription, its cursor, state, counters and last error.

The subscription's worker is the only writer of its progress; Resend adds to ``resend`` and
clears ``dead_letters``, so the worker's saves never overwrite those two lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from notify.domain.delivery import Delivery, DeliveryState

DELIVERY = "notify_delivery"
_TIMES = ("first_failure_at", "next_attempt_at", "last_error_at", "last_success_at")


class DeliveryDocuments:
    """Reads and writes ``notify_delivery``."""

    def __init__(self, database: AsyncDatabase[Any]) -> None:
        self._delivery = database[DELIVERY]

    async def delivery(self, subscription_id: str) -> Delivery:
        document = await self._delivery.find_one({"_id": subscription_id})
        if document is None:
            return Delivery()
        fields = {k: v for k, v in document.items() if k in Delivery.__dataclass_fields__}
        for name in _TIMES:
            if fields.get(name) is not None:
                fields[name] = fields[name].replace(tzinfo=UTC)
        return Delivery(**fields)

    async def save(
        self, subscription_id: str, delivery: Delivery, *, sent: Sequence[int] = ()
    ) -> None:
        """Write the worker's fields; ``sent`` numbers leave the resend queue if there."""
        update: dict[str, Any] = {"$set": _worker_fields(delivery)}
        if sent:
            update["$pull"] = {"resend": {"$in": list(sent)}}
        await self._delivery.update_one({"_id": subscription_id}, update, upsert=True)

    async def dead_letter(self, subscription_id: str, delivery: Delivery, sequence: int) -> None:
        update = {
            "$set": _worker_fields(delivery),
            "$addToSet": {"dead_letters": sequence},
            "$pull": {"resend": sequence},
        }
        await self._delivery.update_one({"_id": subscription_id}, update, upsert=True)

    async def queue_resend(self, subscription_id: str, sequences: Sequence[int]) -> None:
        """Queue delivered notifications again, and turn a stopped webhook back on."""
        update: dict[str, Any] = {"$set": {"state": DeliveryState.ACTIVE, "dead_letters": []}}
        if sequences:
            update["$addToSet"] = {"resend": {"$each": list(sequences)}}
        await self._delivery.update_one({"_id": subscription_id}, update, upsert=True)


def _worker_fields(delivery: Delivery) -> dict[str, Any]:
    return {
        name: getattr(delivery, name)
        for name in Delivery.__dataclass_fields__
        if name not in ("resend", "dead_letters")
    }
