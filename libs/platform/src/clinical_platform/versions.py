"""Reading a record at an earlier version: an exact version, or the version current at an
instant, as reads ask for them (``version``, ``as_of``); and the time windows list filters take.

A read of an exact version waits for the read model to reach it, like ``min_version``, and a
version the event log does not hold is refused at once (`require_recorded`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from clinical_platform.reads import RecordedVersions, require_recorded
from clinical_platform.validation import Violations

VersionWanted = int | datetime | None
"""An exact version, the version current at an instant, or None: the current version."""


def version_wanted(request: Message) -> VersionWanted:
    """The exact ``version`` or the ``as_of`` instant a read asks for; InvalidRequest when it
    gives both."""
    version = int(getattr(request, "version", 0))
    as_of = optional_instant(request, "as_of")
    if version and as_of is not None:
        violations = Violations()
        violations.add("as_of", "give version or as_of, not both")
        violations.raise_if_any()
    return version or as_of


def optional_instant(request: Message, field: str) -> datetime | None:
    """A Timestamp field as a UTC datetime; None when it is not set."""
    if not request.HasField(field):
        return None
    timestamp: Timestamp = getattr(request, field)
    return timestamp.ToDatetime(tzinfo=UTC)


def version_to_wait_for(
    versions: RecordedVersions, aggregate_id: UUID, min_version: int, wanted: VersionWanted
) -> int:
    """The version a read waits for: ``min_version``, or the exact version it asks for if
    later. VersionNotRecorded at once for either beyond the event log."""
    require_recorded(versions, aggregate_id, min_version)
    if isinstance(wanted, int):
        require_recorded(versions, aggregate_id, wanted, field="version")
        return max(min_version, wanted)
    return min_version


def time_window(start: datetime | None, end: datetime | None) -> dict[str, Any]:
    """A read-model filter for instants in [start, end) (either end open when None)."""
    window: dict[str, Any] = {}
    if start is not None:
        window["$gte"] = start
    if end is not None:
        window["$lt"] = end
    return window
