"""What result queries return, and the read-model ports that answer them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol
from uuid import UUID

from clinical_platform.eventlog.appends import AppendResult
from clinical_platform.eventlog.context import CommandContext
from clinical_platform.reads import RecordedVersions, VersionNotRecorded
from results.domain.errors import ResultNotFound
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

    @property
    def recorded_at(self) -> datetime:
        """When this version was recorded (its revision's time)."""
        return self.revisions[-1].recorded_at if self.revisions else self.issued_at

    def at(self, wanted: int | datetime) -> ResultView:
        """The result as it was at version ``wanted`` or at instant ``wanted``, its revisions
        up to then. VersionNotRecorded for a version it does not hold, ResultNotFound for an
        instant before it was posted."""
        if isinstance(wanted, datetime):
            upto = [r for r in self.revisions if r.recorded_at <= wanted]
            if not upto:
                raise ResultNotFound(UUID(self.result_id))
        else:
            upto = [r for r in self.revisions if r.version <= wanted]
            if not upto or upto[-1].version != wanted:
                raise VersionNotRecorded(wanted, "version")
        shown = upto[-1]
        return replace(self, version=shown.version, status=shown.status,
                       observations=shown.observations, revisions=tuple(upto))  # fmt: skip


@dataclass(frozen=True)
class ResultQuery:
    """One page of results, newest first, by patient and/or order (at least one is set), and
    optionally by observation or report codes, effective time [from, to) and statuses."""

    patient_id: str = ""
    order_id: str = ""
    page_size: int = DEFAULT_PAGE_SIZE
    page_token: str = ""
    codes: tuple[str, ...] = ()
    report_codes: tuple[str, ...] = ()
    effective_from: datetime | None = None
    effective_to: datetime | None = None
    statuses: tuple[ResultStatus, ...] = ()


@dataclass(frozen=True)
class ResultPage:
    results: tuple[ResultView, ...]
    next_page_token: str
    total: int = 0  # matches on every page


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
