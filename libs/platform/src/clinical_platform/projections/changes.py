"""Events as version-guarded document changes, written a poll's worth at a time.

A projection that can say what an event changes without reading anything (`ChangeProjection`)
lets its runner write a whole batch of events at once: its new documents in one unordered
``insert`` command per collection, its updates as concurrent single-statement commands,
instead of one awaited upsert after another. Each change keeps `upsert_versioned`'s guard: it
applies only to a document older than its version, and a newer document turns it into a
duplicate key, meaning "already applied".
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pymongo.asynchronous.database import AsyncDatabase

from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.security.forgetting import FORGOTTEN_FIELD

DUPLICATE_KEY = 11000
# Well under MongoDB's maxWriteBatchSize (100,000) and, for read-model documents, 16 MiB.
STATEMENTS_PER_COMMAND = 1000
UPDATES_IN_FLIGHT = 16


@dataclass(frozen=True)
class VersionedChange:
    """Set ``fields`` (and apply ``extra_update``, e.g. a ``$push``) on one document, unless it
    already reflects ``version`` or later."""

    collection: str
    document_id: str
    version: int
    fields: Mapping[str, Any]
    extra_update: Mapping[str, Any] | None = None

    def update(self) -> dict[str, Any]:
        update: dict[str, Any] = {"$set": {**self.fields, "version": self.version}}
        if self.extra_update:
            update.update(self.extra_update)
        return update

    def guard(self) -> dict[str, Any]:
        """Matches only an older document that is no forgotten patient's marker (or none: then
        the upsert inserts). A marker is overwritten only by a newer marker: a lagging
        projection must not write a forgotten patient's PHI back over it (the insert meets the
        marker's ``_id`` and counts as already applied), while the marker's version still
        reaches the patient's last event, whichever of their events a replay marked first."""
        guard: dict[str, Any] = {"_id": self.document_id, "version": {"$lt": self.version}}
        if self.fields.get(FORGOTTEN_FIELD) is not True:
            guard[FORGOTTEN_FIELD] = {"$ne": True}
        return guard

    @property
    def creates(self) -> bool:
        """Version 1 is an aggregate's first event: the document can only be new (or, on a
        replay, exist already), so an insert does, and the unique ``_id`` index decides."""
        return self.version == 1 and not self.extra_update

    def document(self) -> dict[str, Any]:
        """The document this change creates (see `creates`)."""
        return {"_id": self.document_id, **self.fields, "version": self.version}

    def statement(self) -> dict[str, Any]:
        """This change as one statement of an ``update`` command."""
        return {"q": self.guard(), "u": self.update(), "upsert": True}


@runtime_checkable
class ChangeProjection(Protocol):
    """A projection whose events translate to changes with no read: its runner batches them.

    ``changes`` raising marks the event as poison, like ``apply`` raising. ``None`` says this
    event needs reads: the runner writes the batch so far, then hands the event to ``apply``
    on its own, so a projection batches its common events and reads only for the rare ones.
    """

    def changes(self, envelope: Envelope) -> Sequence[VersionedChange] | None: ...


class ChangeRefusedError(Exception):
    """MongoDB refused a change (not a duplicate key): the event is poison."""


async def apply_changes(db: AsyncDatabase[Any], changes: Sequence[VersionedChange]) -> None:
    """One event's changes, written: a `ChangeProjection`'s ``apply`` (for events it returns
    changes for)."""
    if await write_changes(db, changes):
        raise ChangeRefusedError


async def write_changes(db: AsyncDatabase[Any], changes: Sequence[VersionedChange]) -> set[int]:
    """Write ``changes`` in order per document; return the positions of changes MongoDB refused
    (a duplicate key is not a refusal: that change was applied before).

    Unordered bulk writes may apply their operations in any order, so a document's changes go
    in successive rounds: round n holds each document's n-th change of the batch. A batch with
    one event per aggregate is one round.
    """
    rounds: list[dict[str, list[int]]] = []
    seen: dict[tuple[str, str], int] = defaultdict(int)
    for position, change in enumerate(changes):
        key = (change.collection, change.document_id)
        number = seen[key]
        seen[key] += 1
        if number == len(rounds):
            rounds.append(defaultdict(list))
        rounds[number][change.collection].append(position)
    refused: set[int] = set()
    for by_collection in rounds:
        for collection, positions in by_collection.items():
            inserts = [p for p in positions if changes[p].creates]
            updates = [p for p in positions if not changes[p].creates]
            for start in range(0, len(positions), STATEMENTS_PER_COMMAND):
                for kind, of_kind in (("insert", inserts), ("update", updates)):
                    chunk = of_kind[start : start + STATEMENTS_PER_COMMAND]
                    if chunk:
                        refused |= await _write(db, kind, collection, changes, chunk)
    return refused


async def _write(
    db: AsyncDatabase[Any],
    kind: str,
    collection: str,
    changes: Sequence[VersionedChange],
    positions: Sequence[int],
) -> set[int]:
    # Commands rather than ``bulk_write``: pymongo's bulk result expects an ``nModified`` that
    # FerretDB leaves out when every statement of a batch was a duplicate. Inserts apart (an
    # insert only probes the unique ``_id`` index), in one command.
    if kind == "insert":
        command = {"insert": collection, "documents": [changes[p].document() for p in positions]}
        return _refused(await db.command({**command, "ordered": False}), positions)
    # Updates one statement per command, a few commands in flight: FerretDB 1.24 on PostgreSQL
    # holds a connection for every statement of an update command until the command ends, so
    # one command of more statements than its pool has connections never ends.
    refused: set[int] = set()
    for start in range(0, len(positions), UPDATES_IN_FLIGHT):
        chunk = positions[start : start + UPDATES_IN_FLIGHT]
        commands = [{"update": collection, "updates": [changes[p].statement()]} for p in chunk]
        replies = await asyncio.gather(*(db.command(command) for command in commands))
        for position, reply in zip(chunk, replies, strict=True):
            refused |= _refused(reply, [position])
    return refused


def _refused(reply: Mapping[str, Any], positions: Sequence[int]) -> set[int]:
    return {
        positions[failure["index"]]
        for failure in reply.get("writeErrors", ())
        if failure.get("code") != DUPLICATE_KEY
    }
