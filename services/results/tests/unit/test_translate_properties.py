"""Property-based fuzzing of the results translators: any request parses or is InvalidRequest.

Requests are drawn from the protos' descriptors (`clinical_testing.strategies`): any string,
any number, unknown enum numbers, Timestamps out of range, repeated fields past their caps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from clinical_testing.strategies import FUZZ, requests, texts
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given

from clinical.results.v1 import results_pb2 as pb
from clinical_platform.validation import InvalidRequest
from results.entrypoints import translate

pytestmark = pytest.mark.unit

ORDER = "0b6f9a6e-3f0e-4a53-9a50-0d5d4f1f6b1e"


def _parses_or_refuses(parse: Callable[[], object]) -> None:
    with contextlib.suppress(InvalidRequest):
        parse()


@FUZZ
@given(requests(pb.PostResultRequest))
def test_posts_parse_or_are_refused(request: pb.PostResultRequest) -> None:
    _parses_or_refuses(lambda: translate.post_result(request))


@FUZZ
@given(requests(pb.AmendResultRequest))
def test_revisions_parse_or_are_refused(request: pb.AmendResultRequest) -> None:
    _parses_or_refuses(lambda: translate.revise_result(request))


@FUZZ
@given(requests(pb.GetResultRequest))
def test_reads_parse_or_are_refused(request: pb.GetResultRequest) -> None:
    _parses_or_refuses(lambda: translate.result_id_from(request))


@FUZZ
@given(requests(pb.ListResultsRequest), texts())
def test_listings_parse_or_are_refused(request: pb.ListResultsRequest, patient_id: str) -> None:
    _parses_or_refuses(lambda: translate.result_listing(request, patient_id))


@pytest.mark.parametrize(
    "effective_at",
    [Timestamp(seconds=253_402_300_800), Timestamp(seconds=-62_135_596_801), Timestamp(nanos=-1)],
    ids=["after-9999", "before-0001", "negative-nanos"],
)
def test_an_effective_time_out_of_range_is_a_field_violation(effective_at: Timestamp) -> None:
    request = pb.PostResultRequest(request_id="r-1", order_id=ORDER, effective_at=effective_at)
    request.observations.add(code="2823-3", text="haemolysed")

    with pytest.raises(InvalidRequest) as refused:
        translate.post_result(request)

    assert [violation.field for violation in refused.value.violations] == ["effective_at"]
