"""Version-guarded writes and "at least version N" reads of read-model documents."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError


async def upsert_versioned(
    collection: AsyncCollection[Any],
    document_id: str,
    version: int,
    fields: Mapping[str, Any],
    *,
    extra_update: Mapping[str, Any] | None = None,
) -> bool:
    """Apply one event's changes unless the document already reflects this version or later.

    The filter matches only an older document; when none matches the upsert inserts, and a newer
    document with the same id turns that insert into a duplicate key, which means "already
    applied". So replaying events, or receiving one twice, never moves a document backwards.
    ``extra_update`` adds operators such as ``$push`` to the same atomic update.
    """
    update: dict[str, Any] = {"$set": {**fields, "version": version}}
    if extra_update:
        update.update(extra_update)
    try:
        await collection.update_one(
            {"_id": document_id, "version": {"$lt": version}}, update, upsert=True
        )
    except DuplicateKeyError:
        return False
    return True


async def wait_for_version(
    collection: AsyncCollection[Any],
    document_id: str,
    min_version: int,
    *,
    timeout_s: float,
    poll_s: float = 0.05,
) -> dict[str, Any] | None:
    """The document once its version is at least ``min_version``; None if that takes too long.

    With ``min_version`` 0 it returns whatever is there now (None when the document is absent).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        document: dict[str, Any] | None = await collection.find_one({"_id": document_id})
        if min_version == 0 or (document is not None and document["version"] >= min_version):
            return document
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(poll_s)


async def ensure_indexes(collection: AsyncCollection[Any], indexes: Sequence[IndexModel]) -> None:
    """Create the indexes a read model needs, skipping those that already exist.

    Projections call this on every start. It asks first rather than relying on
    ``create_indexes`` being a no-op for existing indexes: FerretDB 1.24 drops the connection
    when an existing compound index is created again.
    """
    existing = {tuple(spec["key"].items()) async for spec in await collection.list_indexes()}
    for index in indexes:
        if tuple(index.document["key"].items()) not in existing:
            await collection.create_indexes([index])
