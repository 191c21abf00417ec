"""Property-based fuzzing of the orders translators: any request parses or is InvalidRequest.

Requests are drawn from the protos' descriptors (`clinical_testing.strategies`): any string,
any number, unknown enum numbers, repeated fields past their caps.
"""

from __future__ import annotations

import pytest
from clinical_testing.strategies import FUZZ, parsed_or_refused, requests, texts
from hypothesis import given

from clinical.orders.v1 import orders_pb2 as pb
from clinical_platform.validation import InvalidRequest, Violations
from orders.entrypoints import translate

pytestmark = pytest.mark.unit


def _place(request: pb.PlaceOrderRequest) -> object:
    violations = Violations()
    command = translate.place_order(request, violations)
    violations.raise_if_any()
    return command


@FUZZ
@given(requests(pb.PlaceOrderRequest))
def test_placements_parse_or_are_refused(request: pb.PlaceOrderRequest) -> None:
    parsed_or_refused(lambda: _place(request))


@FUZZ
@given(requests(pb.SignOrderRequest) | requests(pb.CancelOrderRequest))
def test_signatures_and_cancellations_parse_or_are_refused(request: pb.SignOrderRequest) -> None:
    parsed_or_refused(lambda: translate.order_change(request))


@FUZZ
@given(requests(pb.GetOrderRequest))
def test_reads_parse_or_are_refused(request: pb.GetOrderRequest) -> None:
    parsed_or_refused(lambda: translate.order_id_from(request))


@FUZZ
@given(requests(pb.ListOrdersRequest), texts())
def test_listings_parse_or_are_refused(request: pb.ListOrdersRequest, patient_id: str) -> None:
    parsed_or_refused(lambda: translate.order_listing(request, patient_id))


def test_an_unknown_status_is_refused_not_read_as_every_status() -> None:
    request = pb.ListOrdersRequest(status=42)  # type: ignore[arg-type]

    with pytest.raises(InvalidRequest) as refused:
        translate.order_listing(request, "0b6f9a6e-3f0e-4a53-9a50-0d5d4f1f6b1e")

    assert [violation.field for violation in refused.value.violations] == ["status"]
    every_status, _ = translate.order_listing(
        pb.ListOrdersRequest(), "0b6f9a6e-3f0e-4a53-9a50-0d5d4f1f6b1e"
    )
    assert every_status.status is None
