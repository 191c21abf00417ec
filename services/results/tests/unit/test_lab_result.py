"""The LabResult aggregate: posted once for a signed order, revised with every revision kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest

from clinical_platform.eventlog.codec import replay
from clinical_platform.eventlog.snapshots import aggregate_from_snapshot, snapshot_to_bytes
from results.adapters.event_catalog import RESULT_EVENTS
from results.adapters.lab_catalogue import CsvLabCatalogue
from results.domain.errors import InvalidResult, OrderNotResultable
from results.domain.observation import Interpretation, Quantity, ReportedObservation
from results.domain.result import (
    LabResult,
    OrderState,
    OrderStatus,
    ResultStatus,
    RevisionKind,
    result_id_for,
)

pytestmark = pytest.mark.unit

CATALOGUE = CsvLabCatalogue.bundled()
NOW = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)


def order(status: OrderStatus = OrderStatus.SIGNED) -> OrderState:
    return OrderState(order_id=uuid4(), patient_id=uuid4(), status=status, version=2)


def potassium(value: str) -> ReportedObservation:
    return ReportedObservation("2823-3", Quantity(Decimal(value), "mmol/L"))


def post(state: OrderState | None = None, effective_at: datetime = NOW) -> LabResult:
    return LabResult.post(
        order=state or order(), observations=[potassium("4.2")], performer="lab-1",
        effective_at=effective_at, at=NOW, catalogue=CATALOGUE,
    )  # fmt: skip


def revise(
    result: LabResult, kind: RevisionKind, value: str = "6.8", reason: str = "re-run"
) -> None:
    result.revise(
        kind=kind, observations=[potassium(value)], reason=reason, by="lab-2", at=NOW,
        catalogue=CATALOGUE,
    )  # fmt: skip


def test_a_result_for_a_signed_order_is_final_and_belongs_to_the_orders_patient() -> None:
    state = order()
    result = post(state)

    assert result.id == result_id_for(state.order_id)
    assert (result.order_id, result.patient_id) == (state.order_id, state.patient_id)
    assert (result.status, result.performer, result.issued_at) == (ResultStatus.FINAL, "lab-1", NOW)
    assert result.observations[0].interpretation is Interpretation.NORMAL


def test_an_order_has_one_result_id_whoever_posts_it() -> None:
    order_id = uuid4()
    assert result_id_for(order_id) == result_id_for(order_id)
    assert result_id_for(order_id) != result_id_for(uuid4())


@pytest.mark.parametrize("status", [OrderStatus.DRAFT, OrderStatus.CANCELLED, OrderStatus.RESULTED])
def test_only_a_signed_order_takes_a_result(status: OrderStatus) -> None:
    with pytest.raises(OrderNotResultable, match=f"is {status}"):
        post(order(status))


def test_observations_in_the_future_are_refused_beyond_clock_skew() -> None:
    assert post(effective_at=NOW + timedelta(minutes=4)).effective_at == NOW + timedelta(minutes=4)
    with pytest.raises(InvalidResult) as refused:
        post(effective_at=NOW + timedelta(minutes=6))
    assert [v.field for v in refused.value.violations] == ["effective_at"]


def test_an_amendment_replaces_the_observations_and_keeps_the_earlier_ones() -> None:
    result = post()
    first = result.observations

    revise(result, RevisionKind.AMENDMENT)

    assert result.status is ResultStatus.AMENDED
    assert result.observations[0].interpretation is Interpretation.CRITICAL_HIGH
    assert result.earlier_observations == [first]
    assert [type(e).__name__ for e in result.collect_events()] == ["ResultPosted", "ResultAmended"]


def test_a_correction_is_recorded_as_such() -> None:
    result = post()
    revise(result, RevisionKind.CORRECTION, value="3.9")

    assert result.status is ResultStatus.CORRECTED
    assert [type(e).__name__ for e in result.collect_events()][-1] == "ResultCorrected"


@pytest.mark.parametrize("reason", ["", "  ", "x" * 1001])
def test_a_revision_needs_a_reason_of_at_most_1000_characters(reason: str) -> None:
    with pytest.raises(InvalidResult) as refused:
        revise(post(), RevisionKind.AMENDMENT, reason=reason)
    assert [v.field for v in refused.value.violations] == ["reason"]


def test_a_revision_lists_reason_and_observation_problems_together() -> None:
    with pytest.raises(InvalidResult) as refused:
        revise(post(), RevisionKind.CORRECTION, value="NaN", reason="")
    assert [v.field for v in refused.value.violations] == [
        "reason", "observations[0].quantity.value",
    ]  # fmt: skip


def test_events_survive_the_payload_round_trip_and_replay_to_the_same_result() -> None:
    result = post()
    revise(result, RevisionKind.AMENDMENT)
    revise(result, RevisionKind.CORRECTION, value="5.0")
    stored = [
        RESULT_EVENTS.from_stored(
            str(e.originator_id), e.originator_version, e.timestamp, type(e).__name__,
            RESULT_EVENTS.to_payload(e).SerializeToString(),
        )
        for e in result.collect_events()
    ]  # fmt: skip

    replayed = replay(RESULT_EVENTS, stored)

    assert replayed is not None
    assert vars(replayed) == vars(result)


def test_a_snapshot_restores_the_same_result() -> None:
    result = post()
    revise(result, RevisionKind.AMENDMENT)
    result.collect_events()

    restored = aggregate_from_snapshot(snapshot_to_bytes(result)[1])

    assert isinstance(restored, LabResult)
    assert vars(restored) == vars(result)
