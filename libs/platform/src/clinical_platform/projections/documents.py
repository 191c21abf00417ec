"""Version-guarded writes and "at least version N" reads of read-model documents."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from clinical_platform.projections.applied import applied_versions
from clinical_platform.projections.changes import VersionedChange


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
    change = VersionedChange(collection.name, document_id, version, fields, extra_update)
    try:
        await collection.update_one(change.guard(), change.update(), upsert=True)
    except DuplicateKeyError:
        return False
    return True


async def wait_for_version(
    collection: AsyncCollection[Any],
    document_id: str,
    min_version: int,
    *,
    timeout_s: float,
) -> dict[str, Any] | None:
    """The document once its version is at least ``min_version``; None if that takes too long.

    With ``min_version`` 0 it returns whatever is there now (None when the document is absent).
    The wait ends as soon as a runner of this process announces the version applied (see
    `AppliedVersions`); for a partition consumed elsewhere it re-reads at growing intervals.
    """

    async def read() -> dict[str, Any] | None:
        document: dict[str, Any] | None = await collection.find_one({"_id": document_id})
        return document

    return await applied_versions(collection.full_name).read_at_least(
        document_id, min_version, read, _version_of, timeout_s=timeout_s
    )


def _version_of(document: dict[str, Any] | None) -> int:
    version: int = 0 if document is None else document["version"]
    return version


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
