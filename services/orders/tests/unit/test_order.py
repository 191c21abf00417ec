"""The Order aggregate: what it records, and every rule it enforces."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from clinical_platform.eventlog.codec import replay
from clinical_platform.eventlog.snapshots import aggregate_from_snapshot, snapshot_to_bytes
from orders.adapters.event_catalog import ORDER_EVENTS
from orders.adapters.lab_test_catalogue import CsvLabTestCatalogue
from orders.domain.errors import (
    InvalidOrder,
    OrderNotCancellable,
    OrderNotResultable,
    OrderNotSignable,
    SignatureWithoutMfa,
)
from orders.domain.order import CodeSystem, Order, OrderStatus, Priority, ReasonCode

pytestmark = pytest.mark.unit

CATALOGUE = CsvLabTestCatalogue.bundled()
NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
DIABETES = ReasonCode(CodeSystem.ICD10, "E11.9")
DIABETES_SNOMED = ReasonCode(CodeSystem.SNOMED_CT, "44054006")


def place(
    test_code: str = "2345-7", reasons: tuple[ReasonCode, ...] = (DIABETES,), orderer: str = "dr-a"
) -> Order:
    return Order.place(
        order_id=uuid4(), patient_id=uuid4(), test_code=test_code, priority=Priority.URGENT,
        reasons=reasons, orderer=orderer, at=NOW, catalogue=CATALOGUE,
    )  # fmt: skip


def signed() -> Order:
    order = place()
    order.sign(signer="dr-b", at=NOW, mfa=True)
    return order


def cancelled() -> Order:
    order = place()
    order.cancel(by="dr-a", reason="duplicate order", at=NOW)
    return order


def resulted(result_id: UUID) -> Order:
    order = signed()
    order.record_result(result_id=result_id, at=NOW)
    return order


def fields(error: InvalidOrder) -> list[str]:
    return [violation.field for violation in error.violations]


def test_a_placed_order_is_a_draft_naming_the_catalogued_test_and_its_orderer() -> None:
    order = place()

    assert order.status is OrderStatus.DRAFT
    assert order.test.code == "2345-7"
    assert order.test.display == "Glucose [Mass/volume] in Serum or Plasma"
    assert order.orderer == "dr-a"
    assert [type(e).__name__ for e in order.collect_events()] == ["OrderPlaced"]


def test_a_test_code_that_is_not_loinc_is_refused() -> None:
    with pytest.raises(InvalidOrder) as refused:
        place(test_code="glucose")
    assert fields(refused.value) == ["test_code"]


def test_a_loinc_code_with_a_wrong_check_digit_is_refused() -> None:
    with pytest.raises(InvalidOrder) as refused:
        place(test_code="2345-6")
    assert refused.value.violations[0].description == "has a wrong LOINC check digit"


def test_a_valid_loinc_code_outside_the_catalogue_is_refused() -> None:
    with pytest.raises(InvalidOrder) as refused:
        place(test_code="1-8")  # valid check digit, not a lab test we offer
    assert refused.value.violations[0].description == "is not in the test catalogue"


def test_an_order_needs_a_reason() -> None:
    with pytest.raises(InvalidOrder) as refused:
        place(reasons=())
    assert fields(refused.value) == ["reason_codes"]


def test_an_order_takes_at_most_ten_reasons() -> None:
    with pytest.raises(InvalidOrder) as refused:
        place(reasons=(DIABETES,) * 11)
    assert fields(refused.value) == ["reason_codes"]


def test_reasons_may_be_icd10_codes_or_snomed_ct_concepts() -> None:
    assert place(reasons=(DIABETES, DIABETES_SNOMED)).reasons == (DIABETES, DIABETES_SNOMED)


@pytest.mark.parametrize(
    "reason",
    [
        ReasonCode(CodeSystem.ICD10, "diabetes"),
        ReasonCode(CodeSystem.SNOMED_CT, "44054007"),  # Verhoeff check digit wrong
        ReasonCode(CodeSystem.SNOMED_CT, "E11.9"),
    ],
)
def test_a_malformed_reason_code_is_refused_by_position(reason: ReasonCode) -> None:
    with pytest.raises(InvalidOrder) as refused:
        place(reasons=(DIABETES, reason))
    assert fields(refused.value) == ["reason_codes[1].code"]


def test_every_broken_rule_is_listed_at_once() -> None:
    with pytest.raises(InvalidOrder) as refused:
        place(test_code="2345-6", reasons=(ReasonCode(CodeSystem.ICD10, "x"),), orderer="")
    assert fields(refused.value) == ["test_code", "reason_codes[0].code", "orderer"]


def test_signing_a_draft_records_the_signer_time_and_mfa() -> None:
    order = signed()

    assert order.status is OrderStatus.SIGNED
    assert order.signature is not None
    assert (order.signature.signer, order.signature.signed_at, order.signature.mfa) == (
        "dr-b", NOW, True,
    )  # fmt: skip


def test_a_signature_without_multi_factor_authentication_is_refused() -> None:
    order = place()
    with pytest.raises(SignatureWithoutMfa):
        order.sign(signer="dr-b", at=NOW, mfa=False)
    assert order.status is OrderStatus.DRAFT


def test_a_signed_order_cannot_be_signed_again() -> None:
    with pytest.raises(OrderNotSignable):
        signed().sign(signer="dr-c", at=NOW, mfa=True)


def test_a_cancelled_order_cannot_be_signed() -> None:
    with pytest.raises(OrderNotSignable, match="is cancelled and cannot be signed"):
        cancelled().sign(signer="dr-b", at=NOW, mfa=True)


@pytest.mark.parametrize("make", [place, signed], ids=["draft", "signed"])
def test_a_draft_or_signed_order_can_be_cancelled_with_a_reason(make: Callable[[], Order]) -> None:
    order = make()
    order.cancel(by="dr-a", reason="  patient declined  ", at=NOW)

    assert order.status is OrderStatus.CANCELLED
    assert (order.cancelled_by, order.cancellation_reason) == ("dr-a", "patient declined")


def test_a_cancelled_order_cannot_be_cancelled_again() -> None:
    with pytest.raises(OrderNotCancellable):
        cancelled().cancel(by="dr-a", reason="again", at=NOW)


def test_a_resulted_order_cannot_be_cancelled() -> None:
    with pytest.raises(OrderNotCancellable, match="is resulted"):
        resulted(uuid4()).cancel(by="dr-a", reason="too late", at=NOW)


@pytest.mark.parametrize("reason", ["", "   ", "x" * 1001])
def test_a_cancellation_needs_a_reason_of_at_most_1000_characters(reason: str) -> None:
    with pytest.raises(InvalidOrder) as refused:
        place().cancel(by="dr-a", reason=reason, at=NOW)
    assert fields(refused.value) == ["reason"]


def test_a_signed_order_becomes_resulted_by_a_result() -> None:
    result_id = uuid4()
    order = resulted(result_id)

    assert order.status is OrderStatus.RESULTED
    assert order.result_id == result_id


def test_hearing_of_the_same_result_again_records_nothing() -> None:
    result_id = uuid4()
    order = resulted(result_id)
    order.collect_events()

    order.record_result(result_id=result_id, at=NOW)

    assert order.collect_events() == []


@pytest.mark.parametrize("make", [place, cancelled], ids=["draft", "cancelled"])
def test_only_a_signed_order_can_be_resulted(make: Callable[[], Order]) -> None:
    with pytest.raises(OrderNotResultable):
        make().record_result(result_id=uuid4(), at=NOW)


def test_a_resulted_order_takes_no_second_result() -> None:
    with pytest.raises(OrderNotResultable):
        resulted(uuid4()).record_result(result_id=uuid4(), at=NOW)


def test_events_survive_the_payload_round_trip_and_replay_to_the_same_order() -> None:
    order = resulted(uuid4())
    stored = [
        ORDER_EVENTS.from_stored(
            str(e.originator_id), e.originator_version, e.timestamp, type(e).__name__,
            ORDER_EVENTS.to_payload(e).SerializeToString(),
        )
        for e in order.collect_events()
    ]  # fmt: skip

    replayed = replay(ORDER_EVENTS, stored)

    assert replayed is not None
    assert vars(replayed) == vars(order)


def test_a_snapshot_restores_the_same_order() -> None:
    order = signed()
    order.collect_events()
    _, state = snapshot_to_bytes(order)

    restored = aggregate_from_snapshot(state)

    assert isinstance(restored, Order)
    assert vars(restored) == vars(order)
    assert restored.status is OrderStatus.SIGNED
