"""The LabResult aggregate: the laboratory's report for one order, with every revision kept.

A result is posted once per order (its id is derived from the order id, so the single writer of
its partition refuses a second one); amendments and corrections record a new set of observations
with a reason, and the earlier ones stay in the history. Command methods check the invariants and
then record one event through a private ``@event`` method, so a replay never re-checks rules.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from clinical_platform.validation import FieldViolation
from results.domain.errors import InvalidResult, OrderNotResultable
from results.domain.observation import (
    Observation,
    ReportedObservation,
    TestCatalogue,
    record_observations,
)

MAX_REASON_CHARS = 1000
# Clocks of the laboratory's systems and ours differ a little; more than this is a mistake.
ALLOWED_CLOCK_SKEW = timedelta(minutes=5)
_RESULT_IDS = uuid.UUID("5f0c8f3e-3d0a-4c59-9a51-2f6f2a1c7e10")


def result_id_for(order_id: UUID) -> UUID:
    """The id of an order's result: one result per order, and a retry lands on the same one."""
    return uuid.uuid5(_RESULT_IDS, str(order_id))


class OrderStatus(StrEnum):
    """An order's state as the results service learns it from the orders event topic."""

    DRAFT = "draft"
    SIGNED = "signed"
    RESULTED = "resulted"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class OrderState:
    """What the results service knows about an order."""

    order_id: UUID
    patient_id: UUID
    status: OrderStatus
    version: int


class ResultStatus(StrEnum):
    FINAL = "final"
    AMENDED = "amended"
    CORRECTED = "corrected"


class RevisionKind(StrEnum):
    AMENDMENT = "amendment"
    CORRECTION = "correction"


@dataclass(frozen=True)
class RevisionNote:
    """Who revised a result, when, and why."""

    revised_by: str
    revised_at: datetime
    reason: str


class LabResult(Aggregate):
    """The result of one laboratory order."""

    @classmethod
    def post(
        cls,
        *,
        order: OrderState,
        observations: Sequence[ReportedObservation],
        performer: str,
        effective_at: datetime,
        at: datetime,
        catalogue: TestCatalogue,
    ) -> LabResult:
        """The order's result; the order must be signed (and so not cancelled or resulted)."""
        if order.status is not OrderStatus.SIGNED:
            raise OrderNotResultable(order.order_id, order.status)
        recorded = record_observations(observations, catalogue)
        if effective_at > at + ALLOWED_CLOCK_SKEW:
            raise InvalidResult([FieldViolation("effective_at", "must not be in the future")])
        return cls(
            id=result_id_for(order.order_id), order_id=order.order_id,
            patient_id=order.patient_id, observations=recorded, performer=performer,
            effective_at=effective_at, issued_at=at,
        )  # fmt: skip

    @event("ResultPosted")
    def __init__(
        self,
        id: UUID,
        *,
        order_id: UUID,
        patient_id: UUID,
        observations: tuple[Observation, ...],
        performer: str,
        effective_at: datetime,
        issued_at: datetime,
    ) -> None:
        self.order_id = order_id
        self.patient_id = patient_id
        self.observations = observations
        self.performer = performer
        self.effective_at = effective_at
        self.issued_at = issued_at
        self.status = ResultStatus.FINAL
        self.earlier_observations: list[tuple[Observation, ...]] = []

    def revise(
        self,
        *,
        kind: RevisionKind,
        observations: Sequence[ReportedObservation],
        reason: str,
        by: str,
        at: datetime,
        catalogue: TestCatalogue,
    ) -> None:
        """Amend (new information) or correct (an error) the result, saying why."""
        reason = reason.strip()
        violations = []
        if not reason or len(reason) > MAX_REASON_CHARS:
            violations.append(
                FieldViolation("reason", f"must be 1 to {MAX_REASON_CHARS} characters")
            )
        try:
            recorded = record_observations(observations, catalogue)
        except InvalidResult as invalid:
            violations += invalid.violations
        if violations:
            raise InvalidResult(violations)
        note = RevisionNote(revised_by=by, revised_at=at, reason=reason)
        if kind is RevisionKind.AMENDMENT:
            self._record_amendment(revision=note, observations=recorded)
        else:
            self._record_correction(revision=note, observations=recorded)

    @event("ResultAmended")
    def _record_amendment(
        self, revision: RevisionNote, observations: tuple[Observation, ...]
    ) -> None:
        self._replace(observations, ResultStatus.AMENDED)

    @event("ResultCorrected")
    def _record_correction(
        self, revision: RevisionNote, observations: tuple[Observation, ...]
    ) -> None:
        self._replace(observations, ResultStatus.CORRECTED)

    def _replace(self, observations: tuple[Observation, ...], status: ResultStatus) -> None:
        self.earlier_observations.append(self.observations)
        self.observations = observations
        self.status = status
