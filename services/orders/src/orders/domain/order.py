"""The Order aggregate: a laboratory test ordered for a patient, then signed, cancelled or resulted.

    draft ──sign──▶ signed ──result──▶ resulted
      └──cancel──▶ cancelled ◀──cancel──┘

Command methods check the invariants and then record one event through a private ``@event``
method, so replaying history never re-checks rules that may have changed since.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from clinical_platform.terminology import icd10_problem, loinc_problem, snomed_concept_problem
from clinical_platform.validation import FieldViolation
from orders.domain.errors import (
    InvalidOrder,
    OrderNotCancellable,
    OrderNotResultable,
    OrderNotSignable,
    SignatureWithoutMfa,
)

MAX_REASON_CODES = 10
MAX_CANCELLATION_REASON_CHARS = 1000


class OrderStatus(StrEnum):
    DRAFT = "draft"
    SIGNED = "signed"
    RESULTED = "resulted"
    CANCELLED = "cancelled"


class Priority(StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"
    STAT = "stat"


class CodeSystem(StrEnum):
    ICD10 = "icd-10"
    SNOMED_CT = "snomed-ct"


@dataclass(frozen=True)
class OrderedTest:
    """A laboratory test as the catalogue names it: a LOINC code and its display name."""

    code: str
    display: str


@dataclass(frozen=True)
class ReasonCode:
    """Why the test is ordered: an ICD-10 code or a SNOMED CT concept."""

    system: CodeSystem
    code: str

    def problem(self) -> str | None:
        if self.system is CodeSystem.ICD10:
            return icd10_problem(self.code)
        return snomed_concept_problem(self.code)


@dataclass(frozen=True)
class OrderSignature:
    """An electronic signature: who signed, when, and that the signer's login was multi-factor."""

    signer: str
    signed_at: datetime
    mfa: bool


class LabTestCatalogue(Protocol):
    """The tests that can be ordered."""

    def find(self, code: str) -> OrderedTest | None: ...


class Order(Aggregate):
    """A laboratory order for one patient and one test."""

    @classmethod
    def place(
        cls,
        *,
        order_id: UUID,
        patient_id: UUID,
        test_code: str,
        priority: Priority,
        reasons: Sequence[ReasonCode],
        orderer: str,
        at: datetime,
        catalogue: LabTestCatalogue,
    ) -> Order:
        """A draft order; raises InvalidOrder listing every broken rule."""
        violations = _reason_violations(reasons)
        problem = loinc_problem(test_code)
        test = None if problem else catalogue.find(test_code)
        if problem:
            violations.insert(0, FieldViolation("test_code", problem))
        elif test is None:
            violations.insert(0, FieldViolation("test_code", "is not in the test catalogue"))
        if not orderer:
            violations.append(FieldViolation("orderer", "must name the ordering clinician"))
        if violations or test is None:
            raise InvalidOrder(violations)
        return cls(
            id=order_id, patient_id=patient_id, test=test, priority=priority,
            reasons=tuple(reasons), orderer=orderer, placed_at=at,
        )  # fmt: skip

    @event("OrderPlaced")
    def __init__(
        self,
        id: UUID,
        *,
        patient_id: UUID,
        test: OrderedTest,
        priority: Priority,
        reasons: tuple[ReasonCode, ...],
        orderer: str,
        placed_at: datetime,
    ) -> None:
        self.patient_id = patient_id
        self.test = test
        self.priority = priority
        self.reasons = reasons
        self.orderer = orderer
        self.placed_at = placed_at
        self.status = OrderStatus.DRAFT
        self.signature: OrderSignature | None = None
        self.cancelled_by: str | None = None
        self.cancellation_reason: str | None = None
        self.result_id: UUID | None = None

    def sign(self, *, signer: str, at: datetime, mfa: bool) -> None:
        """Sign a draft order electronically; the signer must have logged in with MFA."""
        if self.status is not OrderStatus.DRAFT:
            raise OrderNotSignable(self.id, self.status)
        if not mfa:
            raise SignatureWithoutMfa
        self._record_signature(signature=OrderSignature(signer=signer, signed_at=at, mfa=mfa))

    @event("OrderSigned")
    def _record_signature(self, signature: OrderSignature) -> None:
        self.signature = signature
        self.status = OrderStatus.SIGNED

    def cancel(self, *, by: str, reason: str, at: datetime) -> None:
        """Cancel a draft or signed order; a reason is required."""
        if self.status not in (OrderStatus.DRAFT, OrderStatus.SIGNED):
            raise OrderNotCancellable(self.id, self.status)
        reason = reason.strip()
        if not reason:
            raise InvalidOrder([FieldViolation("reason", "must say why the order is cancelled")])
        if len(reason) > MAX_CANCELLATION_REASON_CHARS:
            limit = f"must be at most {MAX_CANCELLATION_REASON_CHARS} characters"
            raise InvalidOrder([FieldViolation("reason", limit)])
        self._record_cancellation(cancelled_by=by, reason=reason, cancelled_at=at)

    @event("OrderCancelled")
    def _record_cancellation(self, cancelled_by: str, reason: str, cancelled_at: datetime) -> None:
        self.cancelled_by = cancelled_by
        self.cancellation_reason = reason
        self.status = OrderStatus.CANCELLED

    def record_result(self, *, result_id: UUID, at: datetime) -> None:
        """The results service reported a result: a signed order becomes resulted.

        Hearing of the same result again changes nothing (the report may be redelivered).
        """
        if self.status is OrderStatus.RESULTED and self.result_id == result_id:
            return
        if self.status is not OrderStatus.SIGNED:
            raise OrderNotResultable(self.id, self.status)
        self._record_result(result_id=result_id, resulted_at=at)

    @event("OrderResulted")
    def _record_result(self, result_id: UUID, resulted_at: datetime) -> None:
        self.result_id = result_id
        self.status = OrderStatus.RESULTED


def _reason_violations(reasons: Sequence[ReasonCode]) -> list[FieldViolation]:
    if not reasons:
        return [FieldViolation("reason_codes", "must give at least one reason")]
    if len(reasons) > MAX_REASON_CODES:
        return [FieldViolation("reason_codes", f"must be at most {MAX_REASON_CODES}")]
    violations = []
    for index, reason in enumerate(reasons):
        problem = reason.problem()
        if problem:
            violations.append(FieldViolation(f"reason_codes[{index}].code", problem))
    return violations
