"""What notify keeps about patients: matched envelopes and the facts filters need.

    notify_events  the matched events' envelopes, payload still encrypted under the
                   patient's key (full content is decrypted at delivery)
    notify_index   per order and result: the facts filters need (patient, orderer, priority,
                   test), learned from the payloads

A forgotten patient's documents in both become markers (PATIENT_COLLECTIONS); feed entries
stay (they hold ids only), so numbering stays gapless and those notifications go out
"withheld".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from clinical_platform.projections.documents import ensure_indexes, upsert_versioned
from clinical_platform.security.forgetting import FORGOTTEN_FIELD

EVENTS = "notify_events"
INDEX = "notify_index"
# Marked as forgotten when a patient is crypto-shredded (they hold the patient's facts).
PATIENT_COLLECTIONS = (EVENTS, INDEX)
_BY_PATIENT = [IndexModel([("patient_id", ASCENDING)])]


class KeptEventDocuments:
    """Reads and writes ``notify_events``."""

    def __init__(self, database: AsyncDatabase[Any]) -> None:
        self._events = database[EVENTS]

    async def setup(self) -> None:
        await ensure_indexes(self._events, _BY_PATIENT)

    async def keep(self, event_id: str, patient_id: str, envelope: bytes) -> None:
        with contextlib.suppress(DuplicateKeyError):  # kept already
            await self._events.insert_one(
                {"_id": event_id, "patient_id": patient_id, "version": 1, "envelope": envelope}
            )

    async def envelopes(self, event_ids: Sequence[str]) -> dict[str, bytes | None]:
        """The kept envelopes of several events at once (None: forgotten, or never kept)."""
        found: dict[str, bytes | None] = dict.fromkeys(event_ids)
        # One lookup by _id each, in flight together: the local store answers ``$in`` by
        # reading the whole collection (docs/read-models.md).
        documents = await asyncio.gather(*(self._events.find_one({"_id": i}) for i in found))
        for document in documents:
            if document is not None and not document.get(FORGOTTEN_FIELD):
                found[document["_id"]] = bytes(document["envelope"])
        return found


class EventIndexDocuments:
    """Reads and writes ``notify_index``."""

    def __init__(self, database: AsyncDatabase[Any]) -> None:
        self._index = database[INDEX]

    async def setup(self) -> None:
        await ensure_indexes(self._index, _BY_PATIENT)

    async def index(self, aggregate_id: str, version: int, fields: dict[str, Any]) -> None:
        await upsert_versioned(self._index, aggregate_id, version, fields)

    async def indexed(self, aggregate_id: str) -> dict[str, Any] | None:
        document: dict[str, Any] | None = await self._index.find_one({"_id": aggregate_id})
        return document
