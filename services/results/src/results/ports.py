"""What result queries return, and the read-model ports that answer them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from clinical_platform.eventlog.appends import AppendResult
from clinical_platform.eventlog.context import CommandContext
from clinical_platform.reads import RecordedVersions
from results.domain.observation import Observation
from results.domain.result import LabResult, OrderState, ResultStatus

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class Revision:
    """The observations as one post, amendment or correction recorded them."""

    version: int
    status: ResultStatus
    observations: tuple[Observation, ...]
    recorded_by: str
    recorded_at: datetime
    reason: str


@dataclass(frozen=True)
class ResultView:
    """A result as the read model shows it, at ``version``, with every revision."""

    result_id: str
    version: int
    order_id: str
    patient_id: str
    status: ResultStatus
    observations: tuple[Observation, ...]
    performer: str
    effective_at: datetime
    issued_at: datetime
    revisions: tuple[Revision, ...]


@dataclass(frozen=True)
class ResultQuery:
    """One page of results, newest first, by patient and/or order (at least one is set)."""

    patient_id: str = ""
    order_id: str = ""
    page_size: int = DEFAULT_PAGE_SIZE
    page_token: str = ""


@dataclass(frozen=True)
class ResultPage:
    results: tuple[ResultView, ...]
    next_page_token: str


class ResultReadModel(Protocol):
    """The results read model (fed by the results projection)."""

    async def get(self, result_id: str, *, min_version: int, wait_s: float) -> ResultView | None:
        """The result once at ``min_version`` or later; None if absent or behind after waiting."""
        ...

    async def list(self, query: ResultQuery) -> ResultPage: ...


class OrderStates(Protocol):
    """The results service's own view of orders (fed from the orders event topic)."""

    async def get(self, order_id: str, *, min_version: int, wait_s: float) -> OrderState | None:
        """The order once at ``min_version`` or later; None if unknown or behind after waiting."""
        ...


class ResultRepository(RecordedVersions, Protocol):
    """Loads results and records their events (the kernel's AggregateRepository[LabResult])."""

    async def execute(
        self,
        aggregate_id: UUID,
        context: CommandContext,
        command: Callable[[LabResult | None], LabResult],
        *,
        expected_version: int | None = None,
    ) -> AppendResult: ...
