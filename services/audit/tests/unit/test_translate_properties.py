"""Property-based fuzzing of the audit translators: any request parses or is InvalidRequest.

Requests are drawn from the protos' descriptors (`clinical_testing.strategies`): any string,
any number, Timestamps out of range (finding 7 of issue 13: they raised ValueError and the
RPC answered UNKNOWN), repeated fields past their caps.
"""

from __future__ import annotations

import pytest
from clinical_testing.strategies import FUZZ, parsed_or_refused, requests
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given

from audit.domain.queries import Position
from audit.entrypoints import translate
from clinical.audit.v1 import audit_pb2 as pb
from clinical_platform.validation import InvalidRequest

pytestmark = pytest.mark.unit

PATIENT = "0b6f9a6e-3f0e-4a53-9a50-0d5d4f1f6b1e"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@FUZZ
@given(requests(pb.HistoryRequest))
def test_history_queries_parse_or_are_refused(request: pb.HistoryRequest) -> None:
    query = parsed_or_refused(lambda: translate.history_query(request))
    if query is not None:
        window = query.recorded
        for end in (window.since_ns, window.until_ns):
            assert end is None or INT64_MIN <= end <= INT64_MAX


@FUZZ
@given(requests(pb.AccessLogRequest))
def test_access_queries_parse_or_are_refused(request: pb.AccessLogRequest) -> None:
    parsed_or_refused(lambda: translate.access_query(request))


@FUZZ
@given(requests(pb.ExportAuditEventsRequest))
def test_export_queries_parse_or_are_refused(request: pb.ExportAuditEventsRequest) -> None:
    parsed_or_refused(lambda: translate.export_query(request))


@FUZZ
@given(requests(pb.VerifyRequest))
def test_verifications_parse_or_are_refused(request: pb.VerifyRequest) -> None:
    parsed_or_refused(lambda: translate.verify_target(request))


@pytest.mark.parametrize(
    ("since", "field"),
    [
        (Timestamp(seconds=253_402_300_800), "occurred.since"),
        (Timestamp(seconds=-62_135_596_801), "occurred.since"),
        (Timestamp(seconds=0, nanos=1_000_000_000), "occurred.since"),
    ],
    ids=["after-9999", "before-0001", "nanos-past-a-second"],
)
def test_a_time_out_of_range_is_a_field_violation(since: Timestamp, field: str) -> None:
    request = pb.AccessLogRequest(patient_id=PATIENT, occurred=pb.TimeRange(since=since))

    with pytest.raises(InvalidRequest) as refused:
        translate.access_query(request)

    assert [violation.field for violation in refused.value.violations] == [field]


def test_a_window_beyond_the_trails_nanoseconds_is_brought_within_them() -> None:
    # Year 9999 and year 0001 are valid times, but no int64 of nanoseconds holds them.
    request = pb.ExportAuditEventsRequest(
        patient_id=PATIENT,
        period=pb.TimeRange(
            since=Timestamp(seconds=-62_135_596_800), until=Timestamp(seconds=253_402_300_799)
        ),
    )

    window = translate.export_query(request).period

    assert (window.since_ns, window.until_ns) == (INT64_MIN, INT64_MAX)


def test_a_page_token_holding_numbers_past_64_bits_is_refused() -> None:
    token = translate.page_token(Position(2**70, 0, "x"))

    with pytest.raises(InvalidRequest) as refused:
        translate.history_query(pb.HistoryRequest(patient_id=PATIENT, page_token=token))

    assert [violation.field for violation in refused.value.violations] == ["page_token"]
