"""What every query side shares: waiting for a version, page tokens, and the clock.

A read "at least version N" waits (bounded) for the read model to catch up with the log; a
version the log does not hold yet is refused at once where the writer can tell
(`require_recorded`), instead of waiting for a version that may never come.

Page tokens are opaque to callers: URL-safe base64 of a JSON position. A token this service did
not hand out is refused as `InvalidPageToken` (INVALID_ARGUMENT on ``page_token``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from clinical_platform.eventlog.errors import EventLogError

Clock = Callable[[], datetime]
"""Where applications and projections read the time; tests pass a fixed one."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class ReadModelBehind(Exception):  # noqa: N818 - a state, not a failure of the caller
    """The read model did not reach the requested version in time (DEADLINE_EXCEEDED)."""

    def __init__(self, min_version: int) -> None:
        self.min_version = min_version
        super().__init__(f"the read model has not reached version {min_version} yet")


class VersionNotRecorded(Exception):  # noqa: N818 - named after what the caller asked for
    """``min_version`` is beyond the aggregate's version in the log (OUT_OF_RANGE on ``field``).

    The message names neither the aggregate nor its version: a caller learns no more than
    that the version it asked for has not been written.
    """

    def __init__(self, min_version: int, field: str = "min_version") -> None:
        self.min_version = min_version
        self.field = field
        super().__init__("is beyond the version the event log holds for this record")


class RecordedVersions(Protocol):
    """What knows an aggregate's version in the log: the kernel's AggregateRepository."""

    def current_version(self, aggregate_id: UUID) -> int:
        """The aggregate's recorded version (0: none); an EventLogError when this replica
        cannot tell (another replica owns its partition)."""
        ...


def require_recorded(
    versions: RecordedVersions, aggregate_id: UUID, min_version: int, field: str = "min_version"
) -> None:
    """Raise `VersionNotRecorded` when ``min_version`` is beyond the aggregate's version in the log.

    The partition's writer applies a commit to its store before it answers the command, so a
    version any caller was told of is never refused here. Where this replica does not own the
    partition, it cannot tell: the read waits, bounded by its deadline, as before.
    """
    if min_version <= 0:
        return
    try:
        recorded = versions.current_version(aggregate_id)
    except EventLogError:
        return
    if min_version > recorded:
        raise VersionNotRecorded(min_version, field)


class InvalidPageToken(ValueError):  # noqa: N818 - named after the request field it refers to
    """The page token was not one this service handed out (INVALID_ARGUMENT)."""

    def __init__(self) -> None:
        super().__init__("is not a page token this service handed out")


def encode_page_token(position: Any) -> str:
    """An opaque token for ``position`` (anything JSON can hold)."""
    text = json.dumps(position, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_page_token(token: str) -> Any:
    """The position a token stands for; `InvalidPageToken` for anything else."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        return json.loads(text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidPageToken from None


def encode_keyset_token(at: datetime, record_id: str) -> str:
    """A token for the page after the record at (``at``, ``record_id``) in a newest-first list."""
    return encode_page_token({"at": at.isoformat(), "id": record_id})


def decode_keyset_token(token: str) -> tuple[datetime, str]:
    """The (instant, record id) a keyset token stands for; `InvalidPageToken` for anything else."""
    position = decode_page_token(token)
    try:
        return datetime.fromisoformat(position["at"]), str(position["id"])
    except (ValueError, KeyError, TypeError):
        raise InvalidPageToken from None
