"""Requests into queries (every problem listed by field, never quoting a value) and results
into responses."""

from __future__ import annotations

from collections.abc import Sequence

from audit.application import PartitionVerification
from audit.domain.queries import (
    AccessQuery,
    ExportQuery,
    HistoryQuery,
    InvalidPageToken,
    PageRequest,
    TimeWindow,
)
from clinical.audit.v1 import audit_pb2 as pb
from clinical_platform.access.records import is_uuid
from clinical_platform.validation import FieldViolation

MAX_FINDINGS = 100
_MAX_SUBJECT_CHARS = 256
_UUID = "must be a lowercase hyphenated UUID"


class InvalidRequest(Exception):  # noqa: N818 - the request is what is invalid
    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        super().__init__(", ".join(v.field for v in violations))
        self.violations = list(violations)


def history_query(request: pb.HistoryRequest) -> HistoryQuery:
    violations: list[FieldViolation] = []
    subject = request.WhichOneof("subject")
    if subject is None:
        violations.append(FieldViolation("subject", "patient_id or aggregate_id is required"))
    elif not is_uuid(getattr(request, subject)):
        violations.append(FieldViolation(subject, _UUID))
    window = _window("recorded", request.recorded, request.HasField("recorded"), violations)
    page = _page(request.page_size, request.page_token, violations)
    _raise_if_any(violations)
    return HistoryQuery(request.patient_id, request.aggregate_id, window, page)


def access_query(request: pb.AccessLogRequest) -> AccessQuery:
    violations: list[FieldViolation] = []
    if not (request.patient_id or request.actor_subject):
        violations.append(FieldViolation("patient_id", "patient_id or actor_subject is required"))
    if request.patient_id and not is_uuid(request.patient_id):
        violations.append(FieldViolation("patient_id", _UUID))
    subject = request.actor_subject
    if len(subject) > _MAX_SUBJECT_CHARS or not subject.isprintable():
        violations.append(FieldViolation("actor_subject", "must be a token subject"))
    window = _window("occurred", request.occurred, request.HasField("occurred"), violations)
    page = _page(request.page_size, request.page_token, violations)
    _raise_if_any(violations)
    return AccessQuery(request.patient_id, subject, window, page)


def export_query(request: pb.ExportAuditEventsRequest) -> ExportQuery:
    violations: list[FieldViolation] = []
    if not is_uuid(request.patient_id):
        violations.append(FieldViolation("patient_id", f"is required and {_UUID}"))
    window = _window("period", request.period, request.HasField("period"), violations)
    page = _page(request.page_size, request.page_token, violations)
    _raise_if_any(violations)
    return ExportQuery(request.patient_id, window, page)


def verify_target(request: pb.VerifyRequest) -> tuple[str, list[int]]:
    if not request.topic:
        raise InvalidRequest([FieldViolation("topic", "is required")])
    return request.topic, list(request.partitions)


def verification_to(verification: PartitionVerification) -> pb.PartitionVerification:
    report = verification.report
    message = pb.PartitionVerification(
        partition=verification.partition,
        ok=report.ok,
        reason=report.reason or "",
        records=report.records,
        unattested=report.unattested,
        findings=[
            pb.VerificationFinding(offset=finding.offset, reason=finding.reason)
            for finding in report.findings[:MAX_FINDINGS]
        ],
    )
    if report.first_bad_offset is not None:
        message.first_bad_offset = report.first_bad_offset
    if report.attested_through is not None:
        message.attested_through = report.attested_through
    return message


def _window(
    field: str, time_range: pb.TimeRange, present: bool, violations: list[FieldViolation]
) -> TimeWindow:
    if not present:
        return TimeWindow()
    window = TimeWindow(
        time_range.since.ToNanoseconds() if time_range.HasField("since") else None,
        time_range.until.ToNanoseconds() if time_range.HasField("until") else None,
    )
    if not window.is_valid:
        violations.append(FieldViolation(f"{field}.until", "must be after since"))
    return window


def _page(size: int, token: str, violations: list[FieldViolation]) -> PageRequest:
    try:
        return PageRequest.of(size, token)
    except InvalidPageToken:
        violations.append(FieldViolation("page_token", "is not a page token of this service"))
        return PageRequest()


def _raise_if_any(violations: list[FieldViolation]) -> None:
    if violations:
        raise InvalidRequest(violations)
