"""Who creates patients' data keys: only a cipher built with ``creates_keys=True`` (the patient
service's, on registration); every other writer's cipher refuses a patient without a key and
leaves the key store untouched. On fakes of the kernel's own ports (no Vault)."""

from __future__ import annotations

import uuid

import pytest
from clinical_testing.security import InMemoryKeyStore, InMemoryTransit, patient_envelope
from google.protobuf.wrappers_pb2 import StringValue

from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.security.errors import PatientForgottenError, UnregisteredPatientError
from clinical_platform.security.keys import KeyringConfig, PatientKeyring

pytestmark = pytest.mark.unit

NOTE = "potassium 6.9 mmol/L, 9c41e07a-unregistered-canary"


@pytest.fixture
def key_store() -> InMemoryKeyStore:
    return InMemoryKeyStore()


@pytest.fixture
def keyring(key_store: InMemoryKeyStore) -> PatientKeyring:
    return PatientKeyring(InMemoryTransit(), key_store, KeyringConfig())


def _patient() -> str:
    return str(uuid.uuid4())


async def test_a_writer_refuses_a_patient_without_a_key_and_stores_nothing(
    keyring: PatientKeyring, key_store: InMemoryKeyStore
) -> None:
    made_up = _patient()
    envelope = patient_envelope(made_up, _patient(), 1, NOTE)

    with pytest.raises(UnregisteredPatientError) as refused:
        await EnvelopeCipher(keyring).encrypt(envelope)

    assert refused.value.patient_id == made_up
    assert made_up not in str(refused.value)
    assert key_store.calls["create"] == 0
    assert key_store.records == {}
    assert StringValue.FromString(envelope.payload).value == NOTE  # untouched: nothing appended
    assert not envelope.payload_encryption.key_id


async def test_the_registering_cipher_creates_the_key_the_others_then_use(
    keyring: PatientKeyring, key_store: InMemoryKeyStore
) -> None:
    patient = _patient()
    registration = patient_envelope(patient, patient, 1, NOTE)
    order = patient_envelope(patient, _patient(), 1, NOTE)

    await EnvelopeCipher(keyring, creates_keys=True).encrypt(registration)
    await EnvelopeCipher(keyring).encrypt(order)

    assert list(key_store.records) == [patient]
    assert key_store.calls["create"] == 1
    assert order.payload_encryption.key_id == registration.payload_encryption.key_id


async def test_a_snapshot_of_an_unregistered_patient_is_refused_too(
    keyring: PatientKeyring, key_store: InMemoryKeyStore
) -> None:
    with pytest.raises(UnregisteredPatientError):
        await EnvelopeCipher(keyring).encrypt_snapshot(_patient(), _patient(), 1, b"{}")
    assert key_store.records == {}


async def test_a_forgotten_patient_is_still_refused_as_forgotten_without_a_write(
    keyring: PatientKeyring, key_store: InMemoryKeyStore
) -> None:
    patient = _patient()
    await EnvelopeCipher(keyring, creates_keys=True).encrypt(patient_envelope(patient, patient, 1))
    await keyring.forget(patient)
    creates_before = key_store.calls["create"]

    with pytest.raises(PatientForgottenError):
        await EnvelopeCipher(keyring).encrypt(patient_envelope(patient, _patient(), 1, NOTE))

    assert key_store.calls["create"] == creates_before
    assert patient not in key_store.records
