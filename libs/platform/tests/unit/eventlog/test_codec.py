"""EventCatalog: domain events to protobuf payloads and back, for any aggregate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import Aggregate, event
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from clinical_platform.eventlog.codec import EventCatalog, UnknownEventTypeError, replay
from clinical_platform.eventlog.snapshots import aggregate_from_snapshot, snapshot_to_bytes

pytestmark = pytest.mark.unit

_PACKAGE = "tests.specimen.v1"
_F = descriptor_pb2.FieldDescriptorProto


class SpecimenKind(StrEnum):
    BLOOD = "blood"
    URINE = "urine"


class RejectionReason(StrEnum):
    HEMOLYSED = "hemolysed"
    MISLABELLED = "mislabelled"


@dataclass(frozen=True)
class Container:
    code: str
    volume_ml: Decimal


class Specimen(Aggregate):
    # Not keyword-only: eventsourcing 9.5 treats a keyword-only __init__ default as required.
    @event("SpecimenCollected")
    def __init__(
        self,
        kind: SpecimenKind,
        containers: tuple[Container, ...],
        tests: tuple[str, ...],
        collected_at: datetime,
        note: str | None = None,
    ) -> None:
        self.kind = kind
        self.containers = containers
        self.tests = tests
        self.collected_at = collected_at
        self.note = note
        self.status = "collected"

    @event("SpecimenReceived")
    def receive(
        self, *, received_by: UUID, barcode: bytes, hours_in_transit: int, temperature_c: float
    ) -> None:
        self.received_by = received_by
        self.barcode = barcode
        self.hours_in_transit = hours_in_transit
        self.temperature_c = temperature_c
        self.status = "received"

    @event("SpecimenRejected")
    def reject(self, reasons: tuple[RejectionReason, ...], reviewed_at: datetime | None) -> None:
        self.reasons = reasons
        self.reviewed_at = reviewed_at
        self.status = "rejected"


def _field(name: str, number: int, kind: _F.Type.ValueType, **options: Any) -> _F:
    return _F(name=name, number=number, type=kind, label=_F.LABEL_OPTIONAL, **options)


def _repeated(name: str, number: int, kind: _F.Type.ValueType, **options: Any) -> _F:
    return _F(name=name, number=number, type=kind, label=_F.LABEL_REPEATED, **options)


_TIMESTAMP_FIELD = {"type_name": ".google.protobuf.Timestamp"}
_CONTAINER = f".{_PACKAGE}.specimen.Container"


def payload_messages(
    file_name: str, messages: dict[str, list[_F]], optional: tuple[str, ...] = ()
) -> dict[str, type[Message]]:
    """Build payload message classes at test time, as protoc would from a .proto file.

    `optional` lists ``Message.field`` names that get proto3 ``optional`` (explicit presence).
    """
    file = descriptor_pb2.FileDescriptorProto(
        name=f"tests/{file_name}.proto",
        package=f"{_PACKAGE}.{file_name}",
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
    )
    for message_name, fields in messages.items():
        message = file.message_type.add(name=message_name, field=fields)
        for field in message.field:
            if f"{message_name}.{field.name}" in optional:
                field.proto3_optional = True
                field.oneof_index = len(message.oneof_decl)
                message.oneof_decl.add(name=f"_{field.name}")
    # The default pool, so Timestamp fields resolve to the registered Timestamp class.
    pool = descriptor_pool.Default()
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{file.package}.{name}"))
        for name in messages
    }


SPECIMEN_PAYLOADS = payload_messages(
    "specimen",
    {
        "Container": [
            _field("code", 1, _F.TYPE_STRING),
            _field("volume_ml", 2, _F.TYPE_STRING),
        ],
        "SpecimenCollected": [
            _field("kind", 1, _F.TYPE_STRING),
            _repeated(
                "containers", 2, _F.TYPE_MESSAGE, type_name=f".{_PACKAGE}.specimen.Container"
            ),
            _repeated("tests", 3, _F.TYPE_STRING),
            _field("collected_at", 4, _F.TYPE_MESSAGE, **_TIMESTAMP_FIELD),
            _field("note", 5, _F.TYPE_STRING),
        ],
        "SpecimenReceived": [
            _field("received_by", 1, _F.TYPE_STRING),
            _field("barcode", 2, _F.TYPE_BYTES),
            _field("hours_in_transit", 3, _F.TYPE_INT64),
            _field("temperature_c", 4, _F.TYPE_DOUBLE),
        ],
        "SpecimenRejected": [
            _repeated("reasons", 1, _F.TYPE_STRING),
            _field("reviewed_at", 2, _F.TYPE_MESSAGE, **_TIMESTAMP_FIELD),
        ],
    },
    optional=("SpecimenCollected.note",),
)

CATALOG = EventCatalog(
    Specimen,
    {
        name: SPECIMEN_PAYLOADS[name]
        for name in ("SpecimenCollected", "SpecimenReceived", "SpecimenRejected")
    },
    schema_version=2,
)


def a_specimen(note: str | None = "fasting sample") -> Specimen:
    specimen = Specimen(
        kind=SpecimenKind.BLOOD,
        containers=(Container("EDTA", Decimal("4.5")), Container("SST", Decimal("0.75"))),
        tests=("CBC", "LIPID"),
        collected_at=datetime(2025, 3, 4, 8, 15, 30, 123456, tzinfo=UTC),
        note=note,
    )
    specimen.receive(
        received_by=uuid4(), barcode=b"\x00\x01", hours_in_transit=3, temperature_c=4.5
    )
    specimen.reject(reasons=(RejectionReason.HEMOLYSED,), reviewed_at=None)
    return specimen


def through_the_log(event: Any) -> Any:
    """What the store does: payload bytes out, then the event rebuilt from the envelope fields."""
    event_type = CATALOG.event_type(event)
    payload = CATALOG.to_payload(event).SerializeToString()
    return CATALOG.from_stored(
        str(event.originator_id), event.originator_version, event.timestamp, event_type, payload
    )


def test_events_rebuilt_from_payloads_reconstruct_an_equal_aggregate() -> None:
    specimen = a_specimen()
    events = specimen.collect_events()

    rebuilt = [through_the_log(recorded) for recorded in events]

    assert rebuilt == events
    assert replay(CATALOG, rebuilt) == specimen


def test_payload_fields_carry_converted_attributes() -> None:
    events: list[Any] = list(a_specimen().collect_events())
    collected, received, rejected = events

    payload: Any = CATALOG.to_payload(collected)
    received_payload: Any = CATALOG.to_payload(received)

    assert payload.kind == "blood"
    assert [c.volume_ml for c in payload.containers] == ["4.5", "0.75"]
    assert payload.collected_at.ToDatetime(tzinfo=UTC) == collected.collected_at
    assert received_payload.received_by == str(received.received_by)
    assert not CATALOG.to_payload(rejected).HasField("reviewed_at")


def test_none_is_an_unset_field_and_comes_back_as_none() -> None:
    collected = a_specimen(note=None).collect_events()[0]

    assert not CATALOG.to_payload(collected).HasField("note")
    assert through_the_log(collected).note is None


def test_event_type_is_the_event_name_and_payload_type_the_message_name() -> None:
    collected = a_specimen().collect_events()[0]

    assert CATALOG.aggregate_type == "Specimen"
    assert CATALOG.event_type(collected) == "SpecimenCollected"
    assert CATALOG.payload_type("SpecimenCollected") == f"{_PACKAGE}.specimen.SpecimenCollected"


def test_replay_continues_from_a_snapshot() -> None:
    specimen = Specimen(
        kind=SpecimenKind.URINE,
        containers=(),
        tests=("UA",),
        collected_at=datetime.now(UTC),
    )
    specimen.collect_events()
    _, snapshot = snapshot_to_bytes(specimen)
    specimen.receive(received_by=uuid4(), barcode=b"", hours_in_transit=1, temperature_c=20.0)
    later = [through_the_log(recorded) for recorded in specimen.collect_events()]

    assert replay(CATALOG, later, start=aggregate_from_snapshot(snapshot)) == specimen


def test_replay_of_nothing_is_no_aggregate() -> None:
    assert replay(CATALOG, []) is None


def test_unknown_event_type_is_refused_by_name() -> None:
    with pytest.raises(UnknownEventTypeError, match="SpecimenLost"):
        CATALOG.from_stored(str(uuid4()), 1, datetime.now(UTC), "SpecimenLost", b"")


def test_catalog_refuses_payload_fields_and_attributes_that_do_not_pair_up() -> None:
    wrong = payload_messages(
        "mismatched",
        {
            "SpecimenReceived": [
                _field("received_by", 1, _F.TYPE_STRING),
                _field("barcode", 2, _F.TYPE_BYTES),
                _field("hours_in_transit", 3, _F.TYPE_INT64),
                _field("temperature_f", 4, _F.TYPE_DOUBLE),
            ]
        },
    )

    with pytest.raises(TypeError, match=r"\['temperature_c'\].*\['temperature_f'\]"):
        EventCatalog(Specimen, {"SpecimenReceived": wrong["SpecimenReceived"]})


def test_catalog_refuses_an_optional_attribute_without_field_presence() -> None:
    no_presence = payload_messages(
        "no_presence",
        {
            "SpecimenRejected": [
                _repeated("reasons", 1, _F.TYPE_STRING),
                _field("reviewed_at", 2, _F.TYPE_STRING),
            ]
        },
    )

    with pytest.raises(TypeError, match="reviewed_at"):
        EventCatalog(Specimen, {"SpecimenRejected": no_presence["SpecimenRejected"]})


def test_catalog_refuses_an_event_name_the_aggregate_does_not_define() -> None:
    with pytest.raises(TypeError, match="SpecimenLost"):
        EventCatalog(Specimen, {"SpecimenLost": Timestamp})
