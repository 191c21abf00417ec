"""What a read model declares: its topics, its collections, its indexes, and how events apply."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from google.protobuf.message import Message
from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.projections.documents import ensure_indexes

MessageT = TypeVar("MessageT", bound=Message)


class Projection(Protocol):
    """Turns envelopes into documents. ``apply`` must be idempotent (use `upsert_versioned`).

    Raising from ``apply`` marks the event as poison: it goes to the dead-letter topic and the
    projection moves on. Infrastructure failures (MongoDB unreachable) are retried instead.
    A projection that uses only the clear envelope sets ``reads_payload = False``: the runner
    then opens no payload (and still refuses a patient's event in clear). One that reads a few
    event types names them in ``payload_event_types``: the runner opens only those.
    """

    @property
    def name(self) -> str:
        """Stable name; the consumer group is ``projection.<name>``."""
        ...

    @property
    def topics(self) -> Sequence[str]: ...

    @property
    def collections(self) -> Sequence[str]:
        """The collections this projection owns (a rebuild drops them)."""
        ...

    async def setup(self, db: AsyncDatabase[Any]) -> None:
        """Create indexes; called before the first event is applied."""
        ...

    async def apply(self, envelope: Envelope, db: AsyncDatabase[Any]) -> None: ...


@runtime_checkable
class ForgettingProjection(Protocol):
    """A projection with its own "forgotten" marker for an event it can no longer read.

    The runner calls ``apply_forgotten`` instead of ``apply`` when the event's payload is
    encrypted under the key of a forgotten patient. Projections without it get the default:
    every document about the patient in their collections becomes a marker.
    """

    async def apply_forgotten(self, envelope: Envelope, db: AsyncDatabase[Any]) -> None: ...


@runtime_checkable
class MessageProjection(Protocol[MessageT]):
    """A read model of a topic whose records are not Envelopes, e.g. the access records.

    Like `Projection` in everything else; ``decode`` turns a record's value into the message
    ``apply`` takes, and a value it cannot decode is poison.
    """

    @property
    def name(self) -> str: ...

    @property
    def topics(self) -> Sequence[str]: ...

    @property
    def collections(self) -> Sequence[str]: ...

    async def setup(self, db: AsyncDatabase[Any]) -> None: ...

    def decode(self, value: bytes) -> MessageT: ...

    async def apply(self, message: MessageT, db: AsyncDatabase[Any]) -> None: ...


class TopicProjection:
    """What most projections share: a name (its consumer group), the one topic it reads, the
    collection it owns (if any) and that collection's indexes.

    Subclasses set `INDEXES` and write ``apply`` (or ``changes``, for a `ChangeProjection`).
    """

    INDEXES: Sequence[IndexModel] = ()

    def __init__(self, *, name: str, topic: str, collection: str | None = None) -> None:
        self._name = name
        self._topic = topic
        self._collection = collection

    @property
    def name(self) -> str:
        return self._name

    @property
    def topics(self) -> Sequence[str]:
        return (self._topic,)

    @property
    def collections(self) -> Sequence[str]:
        return () if self._collection is None else (self._collection,)

    @property
    def collection(self) -> str:
        """The collection it owns (for projections that own one)."""
        if self._collection is None:
            msg = f"projection {self._name} owns no collection"
            raise TypeError(msg)
        return self._collection

    async def setup(self, db: AsyncDatabase[Any]) -> None:
        """The collection's indexes (none beyond the primary key unless `INDEXES` says)."""
        if self._collection is not None and self.INDEXES:
            await ensure_indexes(db[self._collection], self.INDEXES)
