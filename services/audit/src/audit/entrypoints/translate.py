"""Requests into queries (every problem listed by field, never quoting a value) and results
into responses."""

from __future__ import annotations

import re

from audit.application import PartitionVerification
from audit.domain.queries import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    AccessQuery,
    ExportQuery,
    HistoryQuery,
    PageRequest,
    Position,
    TimeWindow,
)
from clinical.audit.v1 import audit_pb2 as pb
from clinical_platform.limits import PAGE_TOKEN_CHARS, RequestLimits, declare_limits
from clinical_platform.reads import InvalidPageToken, decode_page_token, encode_page_token
from clinical_platform.validation import Violations

MAX_FINDINGS = 100
_MAX_SUBJECT_CHARS = 256
MAX_TOPIC_CHARS = 249  # Kafka's own limit on a topic name
MAX_PARTITIONS = 1000
# The envelopes' aggregate types are class-like names ("Patient", "LabResult").
_AGGREGATE_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,99}")
# Trail positions are nanoseconds since the epoch in a signed 64-bit integer (1677 to 2262):
# a window's end beyond that range is as good as open.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

LIMITS = declare_limits(
    pb.DESCRIPTOR,
    RequestLimits(
        chars={
            "actor_subject": _MAX_SUBJECT_CHARS,
            "topic": MAX_TOPIC_CHARS,
            "page_token": PAGE_TOKEN_CHARS,
        },
        counts={"partitions": MAX_PARTITIONS},
    ),
)
"""Every other field of a clinical.audit.v1 request: an identifier (128)."""


def history_query(request: pb.HistoryRequest) -> HistoryQuery:
    violations = Violations()
    LIMITS.check(request, violations)
    subject = request.WhichOneof("subject")
    if subject is None:
        violations.add("subject", "patient_id, aggregate_id or aggregate_type is required")
    elif subject == "aggregate_type":
        if not _AGGREGATE_TYPE.fullmatch(request.aggregate_type):
            violations.add("aggregate_type", "must be an aggregate type's name (e.g. Patient)")
    else:
        violations.uuid(subject, getattr(request, subject))
    window = _window("recorded", request.recorded, request.HasField("recorded"), violations)
    page = _page(request.page_size, request.page_token, violations)
    violations.raise_if_any()
    return HistoryQuery(request.patient_id, request.aggregate_id, window, page,
                        request.aggregate_type, request.newest_first)  # fmt: skip


def access_query(request: pb.AccessLogRequest) -> AccessQuery:
    violations = Violations()
    LIMITS.check(request, violations)
    if not (request.patient_id or request.actor_subject or request.break_glass_only):
        violations.add("patient_id", "patient_id, actor_subject or break_glass_only is required")
    if request.patient_id:
        violations.uuid("patient_id", request.patient_id)
    subject = request.actor_subject
    if len(subject) > _MAX_SUBJECT_CHARS or not subject.isprintable():
        violations.add("actor_subject", "must be a token subject")
    window = _window("occurred", request.occurred, request.HasField("occurred"), violations)
    page = _page(request.page_size, request.page_token, violations)
    violations.raise_if_any()
    return AccessQuery(request.patient_id, subject, request.break_glass_only, window, page)


def export_query(request: pb.ExportAuditEventsRequest) -> ExportQuery:
    violations = Violations()
    LIMITS.check(request, violations)
    if not request.patient_id:
        violations.add("patient_id", "is required")
    else:
        violations.uuid("patient_id", request.patient_id)
    window = _window("period", request.period, request.HasField("period"), violations)
    page = _page(request.page_size, request.page_token, violations)
    violations.raise_if_any()
    return ExportQuery(request.patient_id, window, page)


def verify_target(request: pb.VerifyRequest) -> tuple[str, list[int]]:
    violations = Violations()
    LIMITS.check(request, violations)
    if not request.topic:
        violations.add("topic", "is required")
    violations.raise_if_any()
    return request.topic, list(request.partitions)


def page_token(after: Position | None) -> str:
    """The token of the page after ``after`` (a page's ``next``; "" when nothing follows)."""
    if after is None:
        return ""
    return encode_page_token([after.at, after.seq, after.id])


def position_of(token: str) -> Position:
    """The position a token of `page_token` continues after; `InvalidPageToken` otherwise."""
    match decode_page_token(token):
        case [int(at), int(seq), str(item_id)] if item_id and _int64(at) and _int64(seq):
            return Position(at, seq, item_id)
    raise InvalidPageToken


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
    if report.attested_at is not None:
        message.attested_at.FromDatetime(report.attested_at)
    return message


def _window(
    field: str, time_range: pb.TimeRange, present: bool, violations: Violations
) -> TimeWindow:
    """The window of a request's time range. Its ends (in the years 0001-9999, as `LIMITS`
    checked) are brought within the trail's signed 64-bit nanoseconds: an end before 1677 or
    after 2262 selects what the range's own end would, and the store never sees a wider int."""
    if not present:
        return TimeWindow()
    window = TimeWindow(
        time_range.since.ToNanoseconds() if time_range.HasField("since") else None,
        time_range.until.ToNanoseconds() if time_range.HasField("until") else None,
    )
    if not window.is_valid:
        violations.add(f"{field}.until", "must be after since")
    return TimeWindow(_within_int64(window.since_ns), _within_int64(window.until_ns))


def _within_int64(nanoseconds: int | None) -> int | None:
    if nanoseconds is None:
        return None
    return min(max(nanoseconds, _INT64_MIN), _INT64_MAX)


def _int64(number: int) -> bool:
    return _INT64_MIN <= number <= _INT64_MAX


def _page(size: int, token: str, violations: Violations) -> PageRequest:
    size = violations.page_size(size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    if not token:
        return PageRequest(size)
    try:
        return PageRequest(size, position_of(token))
    except InvalidPageToken as invalid:
        violations.add("page_token", str(invalid))
        return PageRequest(size)
