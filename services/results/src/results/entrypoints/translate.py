"""Protobuf messages to application commands and queries, and views back to messages.

Parsing collects every malformed field as a `FieldViolation` named by its proto path, so one
INVALID_ARGUMENT lists them all. Messages never include the offending values.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from uuid import UUID

from google.protobuf.timestamp_pb2 import Timestamp

from clinical.results.v1 import results_pb2 as pb
from clinical_platform import validation
from clinical_platform.limits import PAGE_TOKEN_CHARS, TEXT_CHARS, RequestLimits, declare_limits
from clinical_platform.validation import FieldViolation
from clinical_platform.versions import optional_instant
from results.application import PostResult, ReviseResult
from results.domain.observation import (
    MAX_OBSERVATIONS,
    MAX_TEXT_CHARS,
    Coding,
    Interpretation,
    Observation,
    Quantity,
    ReferenceRange,
    ReportedObservation,
)
from results.domain.result import ResultStatus, RevisionKind
from results.ports import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    ResultQuery,
    ResultView,
    Revision,
)

MAX_LISTED_CODES = 20

LIMITS = declare_limits(
    pb.DESCRIPTOR,
    RequestLimits(
        chars={
            "text": MAX_TEXT_CHARS,
            "display": TEXT_CHARS,
            "reason": TEXT_CHARS,
            "page_token": PAGE_TOKEN_CHARS,
        },
        counts={
            "observations": MAX_OBSERVATIONS,
            "codes": MAX_LISTED_CODES,
            "report_codes": MAX_LISTED_CODES,
            "statuses": len(ResultStatus),
        },
    ),
)
"""Every other field of a clinical.results.v1 request: an identifier, code or number (128)."""

_KINDS = {
    pb.REVISION_KIND_AMENDMENT: RevisionKind.AMENDMENT,
    pb.REVISION_KIND_CORRECTION: RevisionKind.CORRECTION,
}
_INTERPRETATIONS = {
    Interpretation.NORMAL: pb.INTERPRETATION_NORMAL,
    Interpretation.LOW: pb.INTERPRETATION_LOW,
    Interpretation.HIGH: pb.INTERPRETATION_HIGH,
    Interpretation.CRITICAL_LOW: pb.INTERPRETATION_CRITICAL_LOW,
    Interpretation.CRITICAL_HIGH: pb.INTERPRETATION_CRITICAL_HIGH,
}
_STATUSES = {
    ResultStatus.FINAL: pb.RESULT_STATUS_FINAL,
    ResultStatus.AMENDED: pb.RESULT_STATUS_AMENDED,
    ResultStatus.CORRECTED: pb.RESULT_STATUS_CORRECTED,
}
_STATUS_OF = {number: status for status, number in _STATUSES.items()}


class Violations(validation.Violations):
    """The kernel's checks plus the results service's own."""

    def decimal(self, field: str, text: str) -> Decimal | None:
        try:
            value = Decimal(text)
        except InvalidOperation:
            self.append(FieldViolation(field, "must be a decimal number, e.g. 5.4"))
            return None
        if not value.is_finite():
            self.append(FieldViolation(field, "must be a finite decimal number"))
            return None
        return value

    def observations(self, observations: Iterable[pb.Observation]) -> list[ReportedObservation]:
        reported = []
        for index, observation in enumerate(observations):
            field = f"observations[{index}]"
            value = self._value(observation, field)
            limits = None
            if observation.HasField("reference_range"):
                limits = ReferenceRange(
                    self._limit(f"{field}.reference_range.low", observation.reference_range.low),
                    self._limit(f"{field}.reference_range.high", observation.reference_range.high),
                )
            if value is not None:
                reported.append(ReportedObservation(observation.code, value, limits))
        return reported

    def _value(self, observation: pb.Observation, field: str) -> Quantity | Coding | str | None:
        match observation.WhichOneof("value"):
            case "quantity":
                value = self.decimal(f"{field}.quantity.value", observation.quantity.value)
                return None if value is None else Quantity(value, observation.quantity.unit)
            case "coded":
                coded = observation.coded
                return Coding(system=coded.system, code=coded.code, display=coded.display)
            case "text":
                return observation.text
        self.append(FieldViolation(f"{field}.value", "must be a quantity, a coded value or text"))
        return None

    def _limit(self, field: str, text: str) -> Decimal | None:
        return self.decimal(field, text) if text else None


def revision_kind(kind: pb.RevisionKind.ValueType, violations: Violations) -> RevisionKind:
    if kind not in _KINDS:
        violations.append(FieldViolation("kind", "must be AMENDMENT or CORRECTION"))
        return RevisionKind.AMENDMENT
    return _KINDS[kind]


def post_result(request: pb.PostResultRequest) -> PostResult:
    violations = Violations()
    violations.request_id(request.request_id)
    LIMITS.check(request, violations)
    order_id = violations.uuid("order_id", request.order_id)
    observations = violations.observations(request.observations)
    violations.raise_if_any()
    return PostResult(
        order_id=order_id,
        observations=observations,
        effective_at=instant(request.effective_at) if request.HasField("effective_at") else None,
        order_min_version=request.order_min_version,
    )


def revise_result(request: pb.AmendResultRequest) -> ReviseResult:
    violations = Violations()
    violations.request_id(request.request_id)
    LIMITS.check(request, violations)
    command = ReviseResult(
        result_id=violations.uuid("result_id", request.result_id),
        kind=revision_kind(request.kind, violations),
        observations=violations.observations(request.observations),
        reason=request.reason,
        expected_version=request.expected_version if request.HasField("expected_version") else None,
    )
    violations.raise_if_any()
    return command


def result_listing(
    request: pb.ListResultsRequest, patient_id: str
) -> tuple[ResultQuery, tuple[UUID, int] | None]:
    """The page a list asks for, and the write (result id, version) to read after, if any."""
    violations = Violations()
    LIMITS.check(request, violations)
    if not (patient_id or request.order_id):
        violations.add("patient_id", "give a patient_id or an order_id")
    if patient_id:
        violations.uuid("patient_id", patient_id)
    if request.order_id:
        violations.uuid("order_id", request.order_id)
    if request.page_size > MAX_PAGE_SIZE:
        violations.add("page_size", f"must be at most {MAX_PAGE_SIZE}")
    statuses = [_STATUS_OF.get(number) for number in request.statuses]
    for unknown in (index for index, status in enumerate(statuses) if status is None):
        violations.add(f"statuses[{unknown}]", "must be FINAL, AMENDED or CORRECTED")
    effective_from = optional_instant(request, "effective_from")
    effective_to = optional_instant(request, "effective_to")
    if effective_from and effective_to and effective_from >= effective_to:
        violations.add("effective_to", "must be after effective_from")
    query = ResultQuery(
        patient_id=patient_id,
        order_id=request.order_id,
        page_size=request.page_size or DEFAULT_PAGE_SIZE,
        page_token=request.page_token,
        codes=tuple(dict.fromkeys(request.codes)),
        report_codes=tuple(dict.fromkeys(request.report_codes)),
        effective_from=effective_from,
        effective_to=effective_to,
        statuses=tuple(dict.fromkeys(s for s in statuses if s is not None)),
    )
    after = None
    if request.min_version:
        result_id = violations.uuid("min_version_result_id", request.min_version_result_id)
        after = (result_id, request.min_version)
    violations.raise_if_any()
    return query, after


def result_id_from(request: pb.GetResultRequest) -> UUID:
    violations = Violations()
    LIMITS.check(request, violations)
    result_id = violations.uuid("result_id", request.result_id)
    violations.raise_if_any()
    return result_id


def instant(timestamp: Timestamp) -> datetime:
    """A Timestamp within `clinical_platform.limits` (years 0001-9999) as a UTC datetime."""
    return timestamp.ToDatetime(tzinfo=UTC)


def result_message(view: ResultView) -> pb.Result:
    return pb.Result(
        result_id=view.result_id,
        version=view.version,
        order_id=view.order_id,
        patient_id=view.patient_id,
        status=_STATUSES[view.status],
        observations=[observation_message(o) for o in view.observations],
        performer=view.performer,
        effective_at=_timestamp(view.effective_at),
        issued_at=_timestamp(view.issued_at),
        revisions=[_revision_message(r) for r in view.revisions],
        recorded_at=_timestamp(view.recorded_at),
    )


def observation_message(observation: Observation) -> pb.Observation:
    message = pb.Observation(code=observation.code, display=observation.display)
    if observation.quantity is not None:
        message.quantity.CopyFrom(
            pb.Quantity(value=str(observation.quantity.value), unit=observation.quantity.unit)
        )
    elif observation.coded is not None:
        coded = observation.coded
        message.coded.CopyFrom(
            pb.Coding(system=coded.system, code=coded.code, display=coded.display)
        )
    elif observation.text is not None:
        message.text = observation.text
    limits = observation.reference_range
    if limits is not None:
        message.reference_range.CopyFrom(
            pb.ReferenceRange(low=_text(limits.low), high=_text(limits.high))
        )
    if observation.interpretation is not None:
        message.interpretation = _INTERPRETATIONS[observation.interpretation]
        message.critical = observation.interpretation.critical
    return message


def _revision_message(revision: Revision) -> pb.Revision:
    return pb.Revision(
        version=revision.version,
        status=_STATUSES[revision.status],
        observations=[observation_message(o) for o in revision.observations],
        recorded_by=revision.recorded_by,
        recorded_at=_timestamp(revision.recorded_at),
        reason=revision.reason,
    )


def _text(value: Decimal | None) -> str:
    return "" if value is None else str(value)


def _timestamp(moment: datetime) -> Timestamp:
    timestamp = Timestamp()
    timestamp.FromDatetime(moment)
    return timestamp
