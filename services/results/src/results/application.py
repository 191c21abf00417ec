"""The results application: one method per command and query; load, decide, save, answer.

PostResult decides on the results service's own view of the order (fed from the orders topic),
never by calling the orders service: a result needs the order to be signed and not cancelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from clinical_platform.eventlog.context import CommandContext
from clinical_platform.reads import Clock, ReadModelBehind, require_recorded, utc_now
from clinical_platform.versions import VersionWanted, version_to_wait_for
from results.domain.errors import OrderNotFound, ResultAlreadyPosted, ResultNotFound
from results.domain.observation import ReportedObservation, TestCatalogue
from results.domain.result import LabResult, RevisionKind, result_id_for
from results.ports import (
    OrderStates,
    ResultPage,
    ResultQuery,
    ResultReadModel,
    ResultRepository,
    ResultView,
)


@dataclass(frozen=True)
class PostResult:
    order_id: UUID
    observations: Sequence[ReportedObservation]
    effective_at: datetime | None = None
    order_min_version: int = 0


@dataclass(frozen=True)
class ReviseResult:
    result_id: UUID
    kind: RevisionKind
    observations: Sequence[ReportedObservation]
    reason: str
    expected_version: int | None = None


@dataclass(frozen=True)
class PostedResult:
    result_id: UUID
    version: int


class ResultsApp:
    """Posts and revises results and answers result queries."""

    def __init__(
        self,
        results: ResultRepository,
        catalogue: TestCatalogue,
        orders: OrderStates,
        read_model: ResultReadModel,
        clock: Clock = utc_now,
    ) -> None:
        self._results = results
        self._catalogue = catalogue
        self._orders = orders
        self._read_model = read_model
        self._clock = clock

    async def post_result(
        self, command: PostResult, context: CommandContext, *, wait_s: float = 0.0
    ) -> PostedResult:
        """Post the order's result as the caller (the performer); one result per order."""
        order = await self._orders.get(
            str(command.order_id), min_version=command.order_min_version, wait_s=wait_s
        )
        if order is None:
            if command.order_min_version:
                raise ReadModelBehind(command.order_min_version)
            raise OrderNotFound(command.order_id)
        result_id = result_id_for(command.order_id)

        def post(current: LabResult | None) -> LabResult:
            if current is not None:
                raise ResultAlreadyPosted(result_id)
            now = self._clock()
            return LabResult.post(
                order=order, observations=command.observations, performer=context.actor.subject,
                effective_at=command.effective_at or now, at=now, catalogue=self._catalogue,
            )  # fmt: skip

        result = await self._results.execute(result_id, context, post)
        return PostedResult(result_id, result.version)

    async def revise_result(self, command: ReviseResult, context: CommandContext) -> int:
        """Amend or correct a result as the caller; the earlier revision is kept."""

        def revise(current: LabResult | None) -> LabResult:
            if current is None:
                raise ResultNotFound(command.result_id)
            current.revise(
                kind=command.kind, observations=command.observations, reason=command.reason,
                by=context.actor.subject, at=self._clock(), catalogue=self._catalogue,
            )  # fmt: skip
            return current

        result = await self._results.execute(
            command.result_id, context, revise, expected_version=command.expected_version
        )
        return result.version

    async def get_result(
        self, result_id: UUID, *, min_version: int, wait_s: float, wanted: VersionWanted = None
    ) -> ResultView:
        """The result at ``min_version`` or later, waiting up to ``wait_s`` for the read model;
        shown at ``wanted`` (an exact version or an instant) when given.

        A ``min_version`` or exact version the event log does not hold raises
        VersionNotRecorded at once; an instant before the result was posted ResultNotFound.
        """
        min_version = version_to_wait_for(self._results, result_id, min_version, wanted)
        view = await self._read_model.get(str(result_id), min_version=min_version, wait_s=wait_s)
        if view is not None:
            return view if wanted is None else view.at(wanted)
        if min_version:
            raise ReadModelBehind(min_version)
        raise ResultNotFound(result_id)

    async def list_results(
        self, query: ResultQuery, *, after: tuple[UUID, int] | None = None, wait_s: float = 0.0
    ) -> ResultPage:
        """A page of results; ``after`` = (result id, version) to read after that write first."""
        if after is not None:
            result_id, min_version = after
            require_recorded(self._results, result_id, min_version)
            reached = await self._read_model.get(
                str(result_id), min_version=min_version, wait_s=wait_s
            )
            if reached is None:
                raise ReadModelBehind(min_version)
        return await self._read_model.list(query)
