"""The patient keyring on fakes of its own ports (no Vault): caching, single flight, forgetting,
rotation, failing closed. The clock is one the test moves."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from clinical_testing.security import (
    InMemoryKeyStore,
    InMemoryTransit,
    patient_envelope,
)
from clinical_testing.waiting import eventually
from google.protobuf.wrappers_pb2 import StringValue

from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.security.errors import (
    DataKeyNotFoundError,
    DataKeyRefusedError,
    KekRetirementError,
    KeyServiceUnavailableError,
    PatientForgottenError,
)
from clinical_platform.security.keys import KeyringConfig, PatientKeyring
from clinical_platform.security.ports import WrappedKeyRecord

pytestmark = pytest.mark.unit


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def transit() -> InMemoryTransit:
    return InMemoryTransit()


@pytest.fixture
def key_store() -> InMemoryKeyStore:
    return InMemoryKeyStore()


@pytest.fixture
def keyring(
    transit: InMemoryTransit, key_store: InMemoryKeyStore, clock: ManualClock
) -> PatientKeyring:
    config = KeyringConfig(cache_size=3, cache_ttl_s=60.0, health_interval_s=0.01)
    return PatientKeyring(transit, key_store, config, clock=clock)


@pytest.fixture
def cipher(keyring: PatientKeyring) -> EnvelopeCipher:
    return EnvelopeCipher(keyring, creates_keys=True)


def _patient() -> str:
    return str(uuid.uuid4())


async def test_get_or_create_is_idempotent_and_cached(
    keyring: PatientKeyring, transit: InMemoryTransit, key_store: InMemoryKeyStore
) -> None:
    patient = _patient()

    first = await keyring.get_or_create(patient)
    again = await keyring.get_or_create(patient)
    read = await keyring.get(patient)

    assert first == again == read
    assert len(first.plaintext) == 32
    assert transit.calls["generate_data_key"] == 1
    assert transit.calls["unwrap"] == 0  # a new key comes with its plaintext
    assert key_store.calls["create"] == 1


async def test_concurrent_requests_for_one_patient_share_one_fetch(
    keyring: PatientKeyring, transit: InMemoryTransit
) -> None:
    patient = _patient()

    keys = await asyncio.gather(*(keyring.get_or_create(patient) for _ in range(20)))

    assert len({key.key_id for key in keys}) == 1
    assert transit.calls["generate_data_key"] == 1
    assert transit.calls["unwrap"] == 0


async def test_a_second_keyring_finds_the_first_ones_key(
    keyring: PatientKeyring, transit: InMemoryTransit, key_store: InMemoryKeyStore
) -> None:
    patient = _patient()
    created = await keyring.get_or_create(patient)

    other = PatientKeyring(transit, key_store)

    assert await other.get_or_create(patient) == created
    assert transit.calls["generate_data_key"] == 1


class MissingFirstRead(InMemoryKeyStore):
    """Our first read misses: another writer creates the key right after it."""

    def __init__(self) -> None:
        super().__init__()
        self.misses: set[str] = set()

    def read(self, patient_id: str) -> WrappedKeyRecord | None:
        if patient_id in self.misses:
            self.misses.discard(patient_id)
            return None
        return super().read(patient_id)


class ForgottenBeforeCreate(InMemoryKeyStore):
    """A forget lands between our read (nothing there) and our check-and-set create."""

    def create(self, patient_id: str, record: WrappedKeyRecord) -> bool:
        self.mark_forgotten(patient_id, record.created_at)
        self.destroy(patient_id)
        return super().create(patient_id, record)


class ForgottenBeforeReplace(InMemoryKeyStore):
    """A forget lands between a rewrap's read and its check-and-set replace."""

    def replace(self, patient_id: str, record: WrappedKeyRecord) -> bool:
        self.mark_forgotten(patient_id, record.created_at)
        self.destroy(patient_id)
        return super().replace(patient_id, record)


async def test_losing_the_creation_race_uses_the_winners_key(transit: InMemoryTransit) -> None:
    patient, key_store = _patient(), MissingFirstRead()
    winner = await PatientKeyring(transit, key_store).get_or_create(patient)
    key_store.misses.add(patient)

    assert (await PatientKeyring(transit, key_store).get_or_create(patient)) == winner
    assert transit.calls["generate_data_key"] == 2  # ours, refused by check-and-set


async def test_cached_keys_expire_after_the_ttl(
    keyring: PatientKeyring, transit: InMemoryTransit, clock: ManualClock
) -> None:
    patient = _patient()
    await keyring.get_or_create(patient)

    clock.now += 61
    await keyring.get(patient)

    assert transit.calls["unwrap"] == 1


async def test_cache_holds_at_most_its_bound(
    keyring: PatientKeyring, transit: InMemoryTransit
) -> None:
    patients = [_patient() for _ in range(4)]  # the fixture's cache holds 3
    for patient in patients:
        await keyring.get_or_create(patient)

    await keyring.get(patients[0])  # evicted as least recently used: fetched again

    assert transit.calls["unwrap"] == 1


async def test_get_without_a_stored_key_is_not_mistaken_for_forgotten(
    keyring: PatientKeyring,
) -> None:
    with pytest.raises(DataKeyNotFoundError):
        await keyring.get(_patient())


async def test_patient_ids_must_be_canonical_uuids(keyring: PatientKeyring) -> None:
    with pytest.raises(ValueError, match="UUID"):
        await keyring.get_or_create("../forgotten/x")


async def test_forgotten_patient_cannot_be_read_by_anyone(
    keyring: PatientKeyring,
    cipher: EnvelopeCipher,
    transit: InMemoryTransit,
    key_store: InMemoryKeyStore,
) -> None:
    forgotten, kept = _patient(), _patient()
    envelopes = {
        p: patient_envelope(p, str(uuid.uuid4()), 1, "Jane Q. Doe") for p in (forgotten, kept)
    }
    for envelope in envelopes.values():
        await cipher.encrypt(envelope)

    await keyring.forget(forgotten)

    with pytest.raises(PatientForgottenError):
        await keyring.get(forgotten)
    with pytest.raises(PatientForgottenError):
        await cipher.decrypt(envelopes[forgotten])
    fresh = EnvelopeCipher(PatientKeyring(transit, key_store))  # an empty cache
    with pytest.raises(PatientForgottenError):
        await fresh.decrypt(envelopes[forgotten])
    assert StringValue.FromString(await fresh.decrypt(envelopes[kept])).value == "Jane Q. Doe"
    assert forgotten not in key_store.records


async def test_no_key_survives_for_a_forgotten_patient(
    keyring: PatientKeyring, cipher: EnvelopeCipher, key_store: InMemoryKeyStore
) -> None:
    patient = _patient()
    await keyring.get_or_create(patient)
    await keyring.forget(patient)
    envelope = patient_envelope(patient, str(uuid.uuid4()), 2, "Jane Q. Doe")

    with pytest.raises(PatientForgottenError):
        await cipher.encrypt(envelope)
    # The creation is undone by the tombstone check that follows every write.
    assert patient not in key_store.records
    assert StringValue.FromString(envelope.payload).value == "Jane Q. Doe"  # never appended


async def test_a_key_created_while_the_patient_is_forgotten_is_destroyed(
    transit: InMemoryTransit,
) -> None:
    patient, key_store = _patient(), ForgottenBeforeCreate()

    with pytest.raises(PatientForgottenError):
        await PatientKeyring(transit, key_store).get_or_create(patient)
    assert patient not in key_store.records


async def test_rotation_and_rewrap_keep_every_event_readable(
    keyring: PatientKeyring,
    cipher: EnvelopeCipher,
    transit: InMemoryTransit,
    key_store: InMemoryKeyStore,
) -> None:
    patients = [_patient() for _ in range(3)]
    envelopes = [
        patient_envelope(p, str(uuid.uuid4()), 1, f"note {i}") for i, p in enumerate(patients)
    ]
    for envelope in envelopes:
        await cipher.encrypt(envelope)
    stale_copy = key_store.records[patients[0]].wrapped_key

    assert await keyring.rotate_kek() == 2
    report = await keyring.rewrap_all()
    await keyring.set_min_decryption_version(2)

    assert (report.rewrapped, report.lowest_kek_version) == (3, 2)
    fresh = EnvelopeCipher(PatientKeyring(transit, key_store))
    for index, envelope in enumerate(envelopes):
        assert StringValue.FromString(await fresh.decrypt(envelope)).value == f"note {index}"
    with pytest.raises(DataKeyRefusedError):
        transit.unwrap(stale_copy)


async def test_retiring_a_kek_version_still_in_use_is_refused(
    keyring: PatientKeyring, transit: InMemoryTransit
) -> None:
    await keyring.get_or_create(_patient())
    await keyring.rotate_kek()

    with pytest.raises(KekRetirementError):
        await keyring.set_min_decryption_version(2)
    assert transit.min_decryption_version == 1


async def test_rewrap_does_not_resurrect_a_patient_forgotten_meanwhile(
    transit: InMemoryTransit,
) -> None:
    patient, key_store = _patient(), ForgottenBeforeReplace()
    keyring = PatientKeyring(transit, key_store)
    await keyring.get_or_create(patient)
    await keyring.rotate_kek()

    report = await keyring.rewrap_all()

    assert report.vanished == 1
    assert patient not in key_store.records


async def test_unavailable_vault_fails_closed_and_nothing_is_encrypted(
    cipher: EnvelopeCipher, transit: InMemoryTransit
) -> None:
    transit.available = False
    envelope = patient_envelope(_patient(), str(uuid.uuid4()), 1, "Jane Q. Doe")

    with pytest.raises(KeyServiceUnavailableError):
        await cipher.encrypt(envelope)
    assert not envelope.payload_encryption.key_id
    assert StringValue.FromString(envelope.payload).value == "Jane Q. Doe"


async def test_sealing_noticed_by_the_health_watch_empties_the_cache(
    keyring: PatientKeyring, cipher: EnvelopeCipher, transit: InMemoryTransit
) -> None:
    patient = _patient()
    await keyring.start()
    try:
        await keyring.get_or_create(patient)
        transit.available = False
        await eventually(lambda: not keyring.available, within_s=2)

        with pytest.raises(KeyServiceUnavailableError):
            await cipher.encrypt(patient_envelope(patient, str(uuid.uuid4()), 1, "x"))
        assert keyring.cached(patient) is None
        assert not keyring.available

        transit.available = True
        await eventually(lambda: keyring.available, within_s=2)
        assert (await keyring.get(patient)).patient_id == patient
    finally:
        await keyring.stop()


async def test_events_about_no_patient_stay_plaintext(cipher: EnvelopeCipher) -> None:
    envelope = patient_envelope("", str(uuid.uuid4()), 1, "catalogue updated")

    await cipher.encrypt(envelope)

    assert not envelope.HasField("payload_encryption") or not envelope.payload_encryption.key_id
    assert await cipher.decrypt(envelope) == envelope.payload


async def test_decrypted_copy_leaves_the_original_encrypted(cipher: EnvelopeCipher) -> None:
    envelope = patient_envelope(_patient(), str(uuid.uuid4()), 1, "Jane Q. Doe")
    await cipher.encrypt(envelope)

    plain = await cipher.decrypted(envelope)

    assert StringValue.FromString(plain.payload).value == "Jane Q. Doe"
    assert envelope.payload_encryption.key_id
    assert b"Jane" not in envelope.payload


async def test_snapshots_about_a_patient_are_encrypted_and_shredded_with_them(
    keyring: PatientKeyring, cipher: EnvelopeCipher
) -> None:
    patient, aggregate = _patient(), str(uuid.uuid4())
    state = b'{"name": "Jane Q. Doe", "birth_date": "1984-03-12"}'

    stored = await cipher.encrypt_snapshot(patient, aggregate, 7, state)

    assert b"Jane" not in stored
    assert await cipher.encrypt_snapshot("", aggregate, 7, state) == state  # about no patient
    assert await cipher.decrypt_snapshot(aggregate, 7, state) == state
    assert await cipher.decrypt_snapshot(aggregate, 7, stored) == state
    with pytest.raises(Exception, match="authentication"):
        await cipher.decrypt_snapshot(aggregate, 8, stored)
    await keyring.forget(patient)
    with pytest.raises(PatientForgottenError):
        await cipher.decrypt_snapshot(aggregate, 7, stored)


async def test_logs_and_errors_carry_no_patient_id_and_no_key_bytes(
    keyring: PatientKeyring, cipher: EnvelopeCipher, caplog: pytest.LogCaptureFixture
) -> None:
    patient = _patient()
    caplog.set_level(logging.DEBUG)
    key = await keyring.get_or_create(patient)
    await keyring.forget(patient)
    with pytest.raises(PatientForgottenError) as forgotten:
        await cipher.encrypt(patient_envelope(patient, str(uuid.uuid4()), 1, "Jane Q. Doe"))

    logged = caplog.text + " ".join(str(record.__dict__) for record in caplog.records)
    for text in (logged, str(forgotten.value)):
        assert patient not in text
        assert key.plaintext.hex() not in text
        assert "Jane" not in text
