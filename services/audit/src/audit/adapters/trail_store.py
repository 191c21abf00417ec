"""Queries on the read model (the `AuditTrail` port over MongoDB)."""

from __future__ import annotations

import heapq
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from audit.adapters.documents import (
    ACCESS_COLLECTION,
    HISTORY_COLLECTION,
    access_record_from,
    change_from,
    position_of,
    trail_item_from,
)
from audit.domain.queries import (
    AccessQuery,
    ExportQuery,
    HistoryQuery,
    Page,
    PageRequest,
    Position,
    TimeWindow,
    page_of,
)
from clinical.audit.v1.access_pb2 import AccessRecord
from clinical.audit.v1.audit_pb2 import Change
from clinical_platform.clients.mongo import MongoDocument

_ORDER = [("at", ASCENDING), ("seq", ASCENDING), ("_id", ASCENDING)]
_REVERSE_ORDER = [("at", DESCENDING), ("seq", DESCENDING), ("_id", DESCENDING)]


class MongoAuditTrail:
    """Changes and accesses in trail order, a page at a time."""

    def __init__(self, database: AsyncDatabase[Any]) -> None:
        self._history: AsyncCollection[MongoDocument] = database[HISTORY_COLLECTION]
        self._access: AsyncCollection[MongoDocument] = database[ACCESS_COLLECTION]

    async def changes(self, query: HistoryQuery) -> Page[Change]:
        if query.patient_id:
            subject = {"patient_id": query.patient_id}
        elif query.aggregate_id:
            subject = {"aggregate_id": query.aggregate_id}
        else:
            subject = {"aggregate_type": query.aggregate_type}
        documents = await _page(self._history, subject, query.recorded, query.page,
                                reverse=query.newest_first)  # fmt: skip
        return page_of([(position_of(d), change_from(d)) for d in documents], query.page.size)

    async def accesses(self, query: AccessQuery) -> Page[AccessRecord]:
        subject: dict[str, Any] = {}
        if query.patient_id:
            subject["patient_id"] = query.patient_id
        if query.actor_subject:
            subject["actor_subject"] = query.actor_subject
        if query.break_glass_only:
            subject["break_glass"] = True
        documents = await _page(self._access, subject, query.occurred, query.page)
        positioned = [(position_of(d), access_record_from(d)) for d in documents]
        return page_of(positioned, query.page.size)

    async def patient_trail(self, query: ExportQuery) -> Page[Change | AccessRecord]:
        """Changes and accesses of one patient, merged in trail order."""
        subject = {"patient_id": query.patient_id}
        changes = await _page(self._history, subject, query.period, query.page)
        accesses = await _page(self._access, subject, query.period, query.page)
        merged = heapq.merge(changes, accesses, key=position_of)
        positioned = [(position_of(d), trail_item_from(d)) for d in merged]
        return page_of(positioned[: query.page.size + 1], query.page.size)


async def _page(
    collection: AsyncCollection[MongoDocument],
    subject: dict[str, Any],
    window: TimeWindow,
    page: PageRequest,
    *,
    reverse: bool = False,
) -> list[MongoDocument]:
    """Up to one more document than the page holds, so the caller knows whether more exist;
    ``reverse``: in reverse trail order (the subject's index read backwards)."""
    conditions: list[dict[str, Any]] = [subject]
    if window.since_ns is not None:
        conditions.append({"at": {"$gte": window.since_ns}})
    if window.until_ns is not None:
        conditions.append({"at": {"$lt": window.until_ns}})
    if page.after is not None:
        conditions.append(_beyond(page.after, "$lt" if reverse else "$gt"))
    order = _REVERSE_ORDER if reverse else _ORDER
    cursor = collection.find({"$and": conditions}).sort(order).limit(page.size + 1)
    return await cursor.to_list()


def _beyond(position: Position, direction: str) -> dict[str, Any]:
    """What follows ``position`` in the order ``direction`` ($gt: the trail's, $lt: reverse)."""
    return {
        "$or": [
            {"at": {direction: position.at}},
            {"at": position.at, "seq": {direction: position.seq}},
            {"at": position.at, "seq": position.seq, "_id": {direction: position.id}},
        ]
    }
