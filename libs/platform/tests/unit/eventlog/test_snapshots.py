"""Aggregate snapshots for the local store: what goes in comes back equal, types and all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum, StrEnum
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import Aggregate, event

from clinical_platform.eventlog.snapshots import aggregate_from_snapshot, snapshot_to_bytes

pytestmark = pytest.mark.unit


class Priority(StrEnum):
    ROUTINE = "routine"
    STAT = "stat"


class Tier(Enum):
    FIRST = 1
    SECOND = 2


@dataclass(frozen=True)
class Dose:
    amount: Decimal
    unit: str
    times: tuple[str, ...]


class Prescription(Aggregate):
    @event("PrescriptionWritten")
    def __init__(self, patient_id: UUID, priority: Priority, doses: tuple[Dose, ...]) -> None:
        self.patient_id = patient_id
        self.priority = priority
        self.doses = doses
        self.tier = Tier.FIRST
        self.notes: list[str] = []
        self.codes: dict[str, tuple[int, ...]] = {"atc": (1, 2)}
        self.reviewed_at: datetime | None = None

    @event("PrescriptionReviewed")
    def review(self, at: datetime, note: str) -> None:
        self.reviewed_at = at
        self.notes.append(note)
        self.tier = Tier.SECOND


def a_prescription() -> Prescription:
    prescription = Prescription(
        patient_id=uuid4(),
        priority=Priority.STAT,
        doses=(Dose(Decimal("2.5"), "mg", ("08:00", "20:00")),),
    )
    prescription.review(at=datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=UTC), note="line\nbreak")
    prescription.collect_events()
    return prescription


def test_restored_aggregate_equals_the_snapshotted_one() -> None:
    prescription = a_prescription()

    version, data = snapshot_to_bytes(prescription)
    restored = aggregate_from_snapshot(data)

    assert version == 2
    assert restored == prescription
    assert isinstance(restored, Prescription)
    assert restored.version == 2


def test_tuples_enums_and_dataclasses_keep_their_types() -> None:
    _, data = snapshot_to_bytes(a_prescription())

    restored = aggregate_from_snapshot(data)

    assert isinstance(restored, Prescription)
    assert type(restored.priority) is Priority
    assert restored.tier is Tier.SECOND
    assert type(restored.doses) is tuple
    assert type(restored.doses[0].times) is tuple
    assert restored.codes == {"atc": (1, 2)}


def test_pending_events_are_not_part_of_a_snapshot() -> None:
    prescription = a_prescription()
    prescription.review(at=datetime.now(UTC), note="second look")

    _, data = snapshot_to_bytes(prescription)

    assert aggregate_from_snapshot(data).pending_events == []
