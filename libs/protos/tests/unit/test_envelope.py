from pathlib import Path

import pytest
from google.protobuf import descriptor_pool, message_factory

import clinical
from clinical.events.v1 import envelope_pb2, provenance_pb2

pytestmark = pytest.mark.unit


def test_envelope_round_trips_with_a_payload_decodable_by_its_type_name() -> None:
    # Any registered message stands in for a domain event payload here.
    payload = provenance_pb2.Actor(subject="dr-ada", roles=["clinician"], client_id="ward-tablet")
    envelope = envelope_pb2.Envelope(
        event_id="0b7c1a9e-5d2f-4c1e-9a57-3f0d8e6b2c41",
        event_type="OrderSigned",
        schema_version=1,
        aggregate_type="Order",
        aggregate_id="5e3f7a10-92c4-4b8d-8f61-0a2b3c4d5e6f",
        aggregate_version=2,
        purpose_of_use=provenance_pb2.PURPOSE_OF_USE_TREAT,
        payload_type=payload.DESCRIPTOR.full_name,
        payload=payload.SerializeToString(),
    )
    envelope.occurred_at.FromSeconds(1_700_000_000)

    decoded = envelope_pb2.Envelope.FromString(envelope.SerializeToString())

    assert decoded == envelope
    payload_class = message_factory.GetMessageClass(
        descriptor_pool.Default().FindMessageTypeByName(decoded.payload_type)
    )
    assert payload_class.FromString(decoded.payload) == payload


def test_purpose_of_use_names_carry_the_hl7_code() -> None:
    names = [value.name for value in provenance_pb2.PurposeOfUse.DESCRIPTOR.values]
    codes = [name.removeprefix("PURPOSE_OF_USE_") for name in names[1:]]

    assert names[0] == "PURPOSE_OF_USE_UNSPECIFIED"
    assert "ETREAT" in codes
    assert all(code.isalpha() and code.isupper() for code in codes)


def test_every_generated_module_has_a_typed_stub() -> None:
    package_root = Path(clinical.__file__).parent
    modules = sorted(package_root.rglob("*_pb2*.py"))

    assert modules
    assert [m for m in modules if not m.with_suffix(".pyi").is_file()] == []
    assert (package_root / "py.typed").is_file()
