"""The ports of the orders application: its repository, its read model and what queries return."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from clinical_platform.eventlog.appends import AppendResult
from clinical_platform.eventlog.context import CommandContext
from clinical_platform.reads import RecordedVersions
from clinical_platform.versions import VersionWanted
from orders.domain.order import (
    Order,
    OrderedTest,
    OrderSignature,
    OrderStatus,
    Priority,
    ReasonCode,
)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class Cancellation:
    cancelled_by: str
    reason: str
    cancelled_at: datetime


@dataclass(frozen=True)
class OrderView:
    """An order as the read model shows it, at ``version``."""

    order_id: str
    version: int
    patient_id: str
    test: OrderedTest
    priority: Priority
    reasons: tuple[ReasonCode, ...]
    orderer: str
    placed_at: datetime
    status: OrderStatus
    signature: OrderSignature | None
    cancellation: Cancellation | None
    result_id: str | None
    resulted_at: datetime | None
    # When this version was recorded (None in a document projected before it was kept).
    recorded_at: datetime | None = None


@dataclass(frozen=True)
class OrderQuery:
    """One page of a patient's orders, newest first, optionally in one status, of some tests
    and placed in [authored_from, authored_to)."""

    patient_id: str
    status: OrderStatus | None = None
    page_size: int = DEFAULT_PAGE_SIZE
    page_token: str = ""
    test_codes: tuple[str, ...] = ()
    authored_from: datetime | None = None
    authored_to: datetime | None = None


@dataclass(frozen=True)
class OrderPage:
    orders: tuple[OrderView, ...]
    next_page_token: str
    total: int = 0  # matches on every page


class OrderReadModel(Protocol):
    """The orders read model (fed by the orders projection)."""

    async def get(
        self, order_id: str, *, min_version: int, wait_s: float, wanted: VersionWanted = None
    ) -> OrderView | None:
        """The order once at ``min_version`` or later, shown at ``wanted``; None if absent or
        behind after waiting. VersionNotRecorded for a version it does not hold, OrderNotFound
        for an instant before the order was placed."""
        ...

    async def list(self, query: OrderQuery) -> OrderPage: ...


class OrderRepository(RecordedVersions, Protocol):
    """Loads orders and records their events (the kernel's AggregateRepository[Order])."""

    async def execute(
        self,
        aggregate_id: UUID,
        context: CommandContext,
        command: Callable[[Order | None], Order],
        *,
        expected_version: int | None = None,
    ) -> AppendResult: ...
