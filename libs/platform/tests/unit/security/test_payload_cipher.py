"""AES-256-GCM payloads: round trip, bound to their event by AAD, no plaintext left behind."""

from __future__ import annotations

import os
import uuid

import pytest
from clinical_testing.security import patient_envelope
from google.protobuf.wrappers_pb2 import StringValue

from clinical.events.v1 import payload_encryption_pb2
from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.security.errors import PayloadIntegrityError
from clinical_platform.security.keys import DataKey
from clinical_platform.security.payload_cipher import (
    aad_for,
    decrypt_envelope_payload,
    decrypt_payload,
    encrypt_envelope_payload,
    encrypt_payload,
    is_encrypted,
)

pytestmark = pytest.mark.unit

PATIENT = str(uuid.uuid4())
NAME = "Jane Q. Doe"
BIRTH_DATE = "1984-03-12"


def _key(patient_id: str = PATIENT) -> DataKey:
    return DataKey(patient_id, str(uuid.uuid4()), 1, os.urandom(32))


def _encrypted(key: DataKey) -> Envelope:
    envelope = patient_envelope(key.patient_id, str(uuid.uuid4()), 3, f"{NAME}, born {BIRTH_DATE}")
    encrypt_envelope_payload(envelope, key)
    return envelope


def test_payload_round_trips_through_aes_256_gcm() -> None:
    key = _key()
    ciphertext, nonce = encrypt_payload(b"potassium 4.1 mmol/L", key, b"aad")

    assert len(nonce) == 12
    assert len(ciphertext) == len(b"potassium 4.1 mmol/L") + 16
    assert decrypt_payload(ciphertext, key, nonce, b"aad") == b"potassium 4.1 mmol/L"


def test_every_encryption_uses_a_fresh_nonce() -> None:
    key = _key()

    nonces = {encrypt_payload(b"same", key, b"aad")[1] for _ in range(100)}

    assert len(nonces) == 100


def test_envelope_round_trip_fills_payload_encryption() -> None:
    key = _key()
    envelope = _encrypted(key)

    assert is_encrypted(envelope)
    assert envelope.payload_encryption.algorithm == (
        payload_encryption_pb2.ENCRYPTION_ALGORITHM_AES_256_GCM
    )
    assert envelope.payload_encryption.key_id == key.key_id
    assert envelope.payload_encryption.key_version == 1
    assert len(envelope.payload_encryption.nonce) == 12
    assert envelope.payload_encryption.wrapped_data_key == b""
    plaintext = decrypt_envelope_payload(envelope, key)
    assert StringValue.FromString(plaintext).value == f"{NAME}, born {BIRTH_DATE}"


def test_raw_bytes_of_an_encrypted_envelope_hold_neither_name_nor_birth_date() -> None:
    raw = _encrypted(_key()).SerializeToString()

    assert NAME.encode() not in raw
    assert BIRTH_DATE.encode() not in raw
    assert b"Doe" not in raw


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", str(uuid.uuid4())),
        ("aggregate_version", 4),
        ("aggregate_id", str(uuid.uuid4())),
        ("aggregate_type", "Order"),
        ("payload_type", "google.protobuf.BytesValue"),
    ],
)
def test_ciphertext_moved_to_another_event_fails_authentication(field: str, value: object) -> None:
    key = _key()
    envelope = _encrypted(key)
    setattr(envelope, field, value)

    with pytest.raises(PayloadIntegrityError):
        decrypt_envelope_payload(envelope, key)


def test_ciphertext_claimed_for_another_patient_is_refused() -> None:
    key = _key()
    envelope = _encrypted(key)
    other = _key(str(uuid.uuid4()))
    envelope.patient_id = other.patient_id
    envelope.payload_encryption.key_id = other.key_id

    with pytest.raises(PayloadIntegrityError):
        decrypt_envelope_payload(envelope, other)


def test_a_flipped_ciphertext_bit_fails_authentication() -> None:
    key = _key()
    envelope = _encrypted(key)
    envelope.payload = bytes([envelope.payload[0] ^ 1]) + envelope.payload[1:]

    with pytest.raises(PayloadIntegrityError):
        decrypt_envelope_payload(envelope, key)


def test_aad_parts_are_length_prefixed_so_shifting_characters_changes_it() -> None:
    one = patient_envelope(PATIENT, str(uuid.uuid4()), 1)
    two = Envelope()
    two.CopyFrom(one)
    one.aggregate_type, one.payload_type = "Ab", "c"
    two.aggregate_type, two.payload_type = "A", "bc"

    assert aad_for(one) != aad_for(two)


def test_key_of_another_patient_is_refused_before_encrypting() -> None:
    envelope = patient_envelope(PATIENT, str(uuid.uuid4()), 1, NAME)

    with pytest.raises(ValueError, match="another patient"):
        encrypt_envelope_payload(envelope, _key(str(uuid.uuid4())))
    assert StringValue.FromString(envelope.payload).value == NAME


def test_unspecified_algorithm_is_rejected_rather_than_read_as_plaintext() -> None:
    envelope = patient_envelope(PATIENT, str(uuid.uuid4()), 1, NAME)
    envelope.payload_encryption.algorithm = payload_encryption_pb2.ENCRYPTION_ALGORITHM_UNSPECIFIED

    with pytest.raises(PayloadIntegrityError):
        is_encrypted(envelope)


def test_data_key_repr_never_shows_key_bytes() -> None:
    key = _key()

    assert key.plaintext.hex() not in repr(key)
    assert repr(key.plaintext) not in repr(key)
