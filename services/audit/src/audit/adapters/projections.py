"""The projections that fill the read model: every event topic's changes, and the accesses.

Both insert each message once under its id, so a redelivered or replayed message (the access
log delivers at least once) is recorded once: ``apply`` is idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from audit.adapters.documents import (
    ACCESS_COLLECTION,
    HISTORY_COLLECTION,
    access_document,
    history_document,
)
from clinical.audit.v1.access_pb2 import AccessRecord
from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.clients.mongo import MongoDocument
from clinical_platform.projections import ensure_indexes

_POSITION = [("at", ASCENDING), ("seq", ASCENDING), ("_id", ASCENDING)]


class ChangeHistory:
    """Every event of every event topic, by its clear envelope (a `Projection`).

    Its topics are found by the runner's topic pattern, so ``topics`` is empty.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.topics: Sequence[str] = ()
        self.collections: Sequence[str] = (HISTORY_COLLECTION,)

    async def setup(self, db: AsyncDatabase[Any]) -> None:
        await ensure_indexes(
            db[HISTORY_COLLECTION],
            [
                IndexModel([("patient_id", ASCENDING), *_POSITION]),
                IndexModel([("aggregate_id", ASCENDING), *_POSITION]),
                # A type's history (History by aggregate_type), read backwards newest first.
                IndexModel([("aggregate_type", ASCENDING), *_POSITION]),
            ],
        )

    async def apply(self, envelope: Envelope, db: AsyncDatabase[Any]) -> None:
        if not envelope.event_id:
            raise ValueError("an event without an event_id")
        await insert_once(db[HISTORY_COLLECTION], history_document(envelope))


class AccessLog:
    """Every access record of the access topic (a `MessageProjection[AccessRecord]`)."""

    def __init__(self, name: str, topic: str) -> None:
        self.name = name
        self.topics: Sequence[str] = (topic,)
        self.collections: Sequence[str] = (ACCESS_COLLECTION,)

    async def setup(self, db: AsyncDatabase[Any]) -> None:
        await ensure_indexes(
            db[ACCESS_COLLECTION],
            [
                IndexModel([("patient_id", ASCENDING), *_POSITION]),
                IndexModel([("actor_subject", ASCENDING), *_POSITION]),
                # The review queue of break-glass reads across patients (AccessLog's
                # break_glass_only alone); with a patient or user, their index narrows first.
                IndexModel([("break_glass", ASCENDING), *_POSITION]),
            ],
        )

    def decode(self, value: bytes) -> AccessRecord:
        return AccessRecord.FromString(value)

    async def apply(self, message: AccessRecord, db: AsyncDatabase[Any]) -> None:
        if not message.record_id:
            raise ValueError("an access record without a record_id")
        await insert_once(db[ACCESS_COLLECTION], access_document(message))


async def insert_once(collection: AsyncCollection[Any], document: MongoDocument) -> None:
    """Insert unless a document with the same id exists: the message was seen before."""
    try:
        await collection.insert_one(document)
    except DuplicateKeyError:
        return
