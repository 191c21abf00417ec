"""Requests into queries: every problem named by field, no request value ever quoted."""

import uuid
from datetime import UTC, datetime

import pytest

from audit.application import PartitionVerification
from audit.domain.queries import MAX_PAGE_SIZE, Position
from audit.entrypoints.translate import (
    access_query,
    export_query,
    history_query,
    page_token,
    position_of,
    verification_to,
    verify_target,
)
from clinical.audit.v1 import audit_pb2 as pb
from clinical_platform.reads import InvalidPageToken
from clinical_platform.security.chain import VerificationReport
from clinical_platform.validation import InvalidRequest

pytestmark = pytest.mark.unit

PATIENT = str(uuid.uuid4())


def _window(since: int, until: int) -> pb.TimeRange:
    window = pb.TimeRange()
    window.since.FromSeconds(since)
    window.until.FromSeconds(until)
    return window


def _fields(problem: pytest.ExceptionInfo[InvalidRequest]) -> list[str]:
    return [violation.field for violation in problem.value.violations]


def test_a_history_query_takes_the_patient_window_and_page() -> None:
    token = page_token(Position(5, 1, "x"))
    request = pb.HistoryRequest(patient_id=PATIENT, recorded=_window(10, 20), page_size=5,
                                page_token=token)  # fmt: skip

    query = history_query(request)

    assert (query.patient_id, query.aggregate_id) == (PATIENT, "")
    assert (query.recorded.since_ns, query.recorded.until_ns) == (10 * 10**9, 20 * 10**9)
    assert (query.page.size, query.page.after) == (5, Position(5, 1, "x"))


def test_a_history_query_lists_every_problem_at_once() -> None:
    request = pb.HistoryRequest(recorded=_window(20, 10), page_token="forged")  # noqa: S106

    with pytest.raises(InvalidRequest) as problem:
        history_query(request)

    assert _fields(problem) == ["subject", "recorded.until", "page_token"]


def test_ids_must_be_uuids_and_the_value_is_never_quoted() -> None:
    with pytest.raises(InvalidRequest) as problem:
        history_query(pb.HistoryRequest(aggregate_id="Jane Doe 1970-01-01"))

    assert _fields(problem) == ["aggregate_id"]
    assert "Jane" not in str(problem.value.violations)


def test_a_history_query_of_a_type_takes_its_name_and_may_list_newest_first() -> None:
    query = history_query(pb.HistoryRequest(aggregate_type="LabResult", newest_first=True))

    assert (query.aggregate_type, query.patient_id, query.aggregate_id) == ("LabResult", "", "")
    assert query.newest_first
    assert not history_query(pb.HistoryRequest(aggregate_type="Patient")).newest_first


@pytest.mark.parametrize("name", ["", "Jane Doe", "1Patient", "Patient\n", "P" * 101, "Pätient"])
def test_an_aggregate_type_must_be_a_name_and_is_never_quoted(name: str) -> None:
    with pytest.raises(InvalidRequest) as problem:
        history_query(pb.HistoryRequest(aggregate_type=name))

    assert _fields(problem) == ["aggregate_type"]
    # The same words whatever was given: the value is never shown back.
    assert [v.description for v in problem.value.violations] == [
        "must be an aggregate type's name (e.g. Patient)"
    ]


def test_an_open_ended_window_is_allowed() -> None:
    window = pb.TimeRange()
    window.since.FromSeconds(10)

    query = access_query(pb.AccessLogRequest(patient_id=PATIENT, occurred=window))

    assert (query.occurred.since_ns, query.occurred.until_ns) == (10 * 10**9, None)


def test_an_access_log_query_needs_a_patient_or_a_user() -> None:
    with pytest.raises(InvalidRequest) as problem:
        access_query(pb.AccessLogRequest())

    assert _fields(problem) == ["patient_id"]
    assert access_query(pb.AccessLogRequest(actor_subject="dr-house")).actor_subject == "dr-house"


def test_break_glass_only_is_a_filter_of_its_own_or_narrows_a_patient_or_a_user() -> None:
    review_queue = access_query(pb.AccessLogRequest(break_glass_only=True))
    of_a_user = access_query(pb.AccessLogRequest(actor_subject="dr-house", break_glass_only=True))

    assert (review_queue.patient_id, review_queue.actor_subject) == ("", "")
    assert review_queue.break_glass_only
    assert (of_a_user.actor_subject, of_a_user.break_glass_only) == ("dr-house", True)
    assert not access_query(pb.AccessLogRequest(patient_id=PATIENT)).break_glass_only


def test_an_export_needs_a_patient() -> None:
    with pytest.raises(InvalidRequest) as problem:
        export_query(pb.ExportAuditEventsRequest(period=_window(1, 1)))

    assert _fields(problem) == ["patient_id", "period.until"]


def test_verify_needs_a_topic() -> None:
    with pytest.raises(InvalidRequest) as problem:
        verify_target(pb.VerifyRequest(partitions=[0]))

    assert _fields(problem) == ["topic"]
    assert verify_target(pb.VerifyRequest(topic="t", partitions=[2, 0])) == ("t", [2, 0])


def test_a_page_token_continues_exactly_after_its_position() -> None:
    position = Position(1_700_000_000_123_456_789, 7, "0b7c1a9e-5d2f-4c1e-9a57-3f0d8e6b2c41")

    assert position_of(page_token(position)) == position
    assert page_token(None) == ""


@pytest.mark.parametrize("token", ["forged", "cDE6eDp5Onc", "p1:1:2:x", "!!!", "WzEsMiwiIl0"])
def test_tokens_this_service_did_not_issue_are_refused(token: str) -> None:
    with pytest.raises(InvalidPageToken):
        position_of(token)


def test_page_size_zero_means_the_default_and_above_the_maximum_is_refused() -> None:
    assert history_query(pb.HistoryRequest(patient_id=PATIENT)).page.size == 100
    assert history_query(pb.HistoryRequest(patient_id=PATIENT, page_size=5)).page.size == 5
    with pytest.raises(InvalidRequest) as problem:
        history_query(pb.HistoryRequest(patient_id=PATIENT, page_size=MAX_PAGE_SIZE + 1))

    assert _fields(problem) == ["page_size"]


def test_ids_must_be_canonical_uuids() -> None:
    with pytest.raises(InvalidRequest) as problem:
        export_query(pb.ExportAuditEventsRequest(patient_id=PATIENT.upper()))

    assert _fields(problem) == ["patient_id"]


def test_a_verification_says_how_far_and_since_when_checkpoints_attest() -> None:
    signed = datetime(2026, 12, 7, 15, 0, 1, tzinfo=UTC)
    report = VerificationReport(attested_through=41, attested_at=signed, records=45, unattested=3)

    message = verification_to(PartitionVerification(2, report))
    unattested = verification_to(PartitionVerification(0, VerificationReport(records=1)))

    assert (message.partition, message.ok, message.attested_through) == (2, True, 41)
    assert message.attested_at.ToDatetime(tzinfo=UTC) == signed
    assert not unattested.HasField("attested_at")
    assert not unattested.HasField("attested_through")
