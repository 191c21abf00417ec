"""What a reviewer asks the audit trail: whose trail, which time window, which page.

Every item of the trail has a position ``(at, seq, id)``: the time it was recorded in
nanoseconds since the epoch, the aggregate version (0 for access records) and its unique id.
Lists are ordered by position, and a page continues strictly after the position of the last
item of the page before (keyset paging), so items recorded meanwhile never shift a page.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_TOKEN_VERSION = "p1"  # noqa: S105 - the page token's format tag, not a secret


class InvalidPageToken(ValueError):  # noqa: N818 - named like the request field it refers to
    """The page token was not issued by this service."""


@dataclass(frozen=True, order=True)
class Position:
    """Where an item sits in the trail's order."""

    at: int
    seq: int
    id: str

    def token(self) -> str:
        """The opaque page token that continues after this position."""
        text = f"{_TOKEN_VERSION}:{self.at}:{self.seq}:{self.id}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def from_token(cls, token: str) -> Position:
        try:
            text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            version, at, seq, item_id = text.split(":", 3)
            if version != _TOKEN_VERSION or not item_id:
                raise ValueError(version)
            return cls(int(at), int(seq), item_id)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidPageToken("not a page token of this service") from None


@dataclass(frozen=True)
class TimeWindow:
    """Instants t with ``since_ns <= t < until_ns``; None leaves that end open."""

    since_ns: int | None = None
    until_ns: int | None = None

    @property
    def is_valid(self) -> bool:
        return self.since_ns is None or self.until_ns is None or self.since_ns < self.until_ns


@dataclass(frozen=True)
class PageRequest:
    size: int = DEFAULT_PAGE_SIZE
    after: Position | None = None

    @classmethod
    def of(cls, size: int, token: str) -> PageRequest:
        """0 means the default size, anything above the maximum the maximum (AIP-158)."""
        size = DEFAULT_PAGE_SIZE if size == 0 else min(size, MAX_PAGE_SIZE)
        return cls(size, Position.from_token(token) if token else None)


@dataclass(frozen=True)
class HistoryQuery:
    """Changes to one aggregate, or to every aggregate about one patient (exactly one is set)."""

    patient_id: str = ""
    aggregate_id: str = ""
    recorded: TimeWindow = field(default_factory=TimeWindow)
    page: PageRequest = field(default_factory=PageRequest)


@dataclass(frozen=True)
class AccessQuery:
    """Accesses to a patient's data, or by one user, or both (at least one is set)."""

    patient_id: str = ""
    actor_subject: str = ""
    occurred: TimeWindow = field(default_factory=TimeWindow)
    page: PageRequest = field(default_factory=PageRequest)


@dataclass(frozen=True)
class ExportQuery:
    """A patient's whole trail (changes and accesses) in a time window."""

    patient_id: str
    period: TimeWindow = field(default_factory=TimeWindow)
    page: PageRequest = field(default_factory=PageRequest)


@dataclass(frozen=True)
class Page(Generic[T]):
    """Items in trail order; ``next`` continues after them (None: nothing more)."""

    items: list[T]
    next: Position | None = None

    @property
    def next_page_token(self) -> str:
        return self.next.token() if self.next else ""


def page_of(positioned: list[tuple[Position, T]], size: int) -> Page[T]:
    """The first ``size`` items; ``positioned`` holds up to one more, telling if more exist."""
    items = positioned[:size]
    more = len(positioned) > size
    return Page([item for _, item in items], items[-1][0] if more and items else None)
