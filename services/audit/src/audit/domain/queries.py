"""What a reviewer asks the audit trail: whose trail, which time window, which page.

Every item of the trail has a position ``(at, seq, id)``: the time it was recorded in
nanoseconds since the epoch, the aggregate version (0 for access records) and its unique id.
Lists are ordered by position, and a page continues strictly after the position of the last
item of the page before (keyset paging), so items recorded meanwhile never shift a page; a
history may be listed in reverse (newest first), each page continuing strictly before the last
position of the page before. The entrypoints carry a position in an opaque page token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, order=True)
class Position:
    """Where an item sits in the trail's order."""

    at: int
    seq: int
    id: str


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
    """Up to ``size`` items after ``after`` (None: from the start)."""

    size: int = DEFAULT_PAGE_SIZE
    after: Position | None = None


@dataclass(frozen=True)
class HistoryQuery:
    """Changes to one aggregate, to every aggregate about one patient, or to every aggregate of
    one type (exactly one is set); ``newest_first`` pages in reverse trail order (``page.after``
    is then the position the page continues before)."""

    patient_id: str = ""
    aggregate_id: str = ""
    recorded: TimeWindow = field(default_factory=TimeWindow)
    page: PageRequest = field(default_factory=PageRequest)
    aggregate_type: str = ""
    newest_first: bool = False


@dataclass(frozen=True)
class AccessQuery:
    """Accesses to a patient's data, or by one user, or by break-glass only, or several of these
    at once (at least one is set)."""

    patient_id: str = ""
    actor_subject: str = ""
    break_glass_only: bool = False
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


def page_of(positioned: list[tuple[Position, T]], size: int) -> Page[T]:
    """The first ``size`` items; ``positioned`` holds up to one more, telling if more exist."""
    items = positioned[:size]
    more = len(positioned) > size
    return Page([item for _, item in items], items[-1][0] if more and items else None)
