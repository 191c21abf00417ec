"""What every query side shares: waiting for a version, page tokens, and the clock.

Page tokens are opaque to callers: URL-safe base64 of a JSON position. A token this service did
not hand out is refused as `InvalidPageToken` (INVALID_ARGUMENT on ``page_token``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Clock = Callable[[], datetime]
"""Where applications and projections read the time; tests pass a fixed one."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class ReadModelBehind(Exception):  # noqa: N818 - a state, not a failure of the caller
    """The read model did not reach the requested version in time (DEADLINE_EXCEEDED)."""

    def __init__(self, min_version: int) -> None:
        self.min_version = min_version
        super().__init__(f"the read model has not reached version {min_version} yet")


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
