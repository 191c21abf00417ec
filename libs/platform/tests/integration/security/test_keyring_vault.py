"""The keyring against the real OpenBao: Transit datakeys, KV v2 storage, rotation, shredding."""

from __future__ import annotations

import uuid

import hvac
import pytest
from clinical_testing.plugin import TransitKeyFactory
from clinical_testing.security import patient_envelope
from clinical_testing.service_process import free_tcp_port
from google.protobuf.wrappers_pb2 import StringValue
from hvac.exceptions import InvalidPath, InvalidRequest

from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.security.errors import (
    DataKeyRefusedError,
    KekRetirementError,
    KeyServiceUnavailableError,
    PatientForgottenError,
)
from clinical_platform.security.keys import KeyringConfig, PatientKeyring
from clinical_platform.security.vault_adapters import KvWrappedKeyStore, TransitKeyEncryption

pytestmark = pytest.mark.integration

NAME, BIRTH_DATE = "Jane Q. Doe", "1984-03-12"


class VaultKeys:
    """The two Vault-backed ports of one test: its own Transit KEK and its own KV v2 mount."""

    def __init__(self, vault: hvac.Client, kek: str, mount: str) -> None:
        self.vault, self.kek_name, self.mount = vault, kek, mount
        self.kek = TransitKeyEncryption(vault, kek)
        self.store = KvWrappedKeyStore(vault, mount)

    def keyring(self) -> PatientKeyring:
        """A keyring with an empty cache, as a freshly started replica has."""
        return PatientKeyring(self.kek, self.store)

    def stored(self, patient_id: str) -> dict[str, object]:
        answer = self.vault.secrets.kv.v2.read_secret_version(
            path=f"patients/{patient_id}", mount_point=self.mount, raise_on_deleted_version=True
        )
        return dict(answer["data"]["data"])


@pytest.fixture
def keys(vault: hvac.Client, transit_key: TransitKeyFactory, key_store_mount: str) -> VaultKeys:
    return VaultKeys(vault, transit_key(), key_store_mount)


async def _encrypted(cipher: EnvelopeCipher, patient_id: str, note: str) -> Envelope:
    envelope = patient_envelope(patient_id, str(uuid.uuid4()), 1, note)
    await cipher.encrypt(envelope)
    return envelope


async def test_data_key_is_wrapped_in_kv_and_neither_key_nor_phi_reaches_the_envelope(
    keys: VaultKeys,
) -> None:
    patient, keyring = str(uuid.uuid4()), keys.keyring()

    key = await keyring.get_or_create(patient)
    envelope = await _encrypted(
        EnvelopeCipher(keyring, creates_keys=True), patient, f"{NAME}, born {BIRTH_DATE}"
    )

    stored = keys.stored(patient)
    raw = envelope.SerializeToString()
    assert await keys.keyring().get_or_create(patient) == key  # the same key, from Vault
    assert str(stored["wrapped_key"]).startswith("vault:v1:")
    assert stored["key_id"] == key.key_id == envelope.payload_encryption.key_id
    assert key.plaintext not in raw
    assert str(stored["wrapped_key"]).encode() not in raw
    assert NAME.encode() not in raw
    assert BIRTH_DATE.encode() not in raw


async def test_rotation_rewrap_and_retiring_old_kek_versions_keep_every_event_readable(
    keys: VaultKeys,
) -> None:
    patients = [str(uuid.uuid4()) for _ in range(3)]
    cipher = EnvelopeCipher(keys.keyring(), creates_keys=True)
    envelopes = [await _encrypted(cipher, p, f"note {i}") for i, p in enumerate(patients)]
    wrapped_under_v1 = str(keys.stored(patients[0])["wrapped_key"])
    keyring = keys.keyring()

    assert await keyring.rotate_kek() == 2
    with pytest.raises(KekRetirementError):
        await keyring.set_min_decryption_version(2)  # every data key is still wrapped under v1
    report = await keyring.rewrap_all()
    await keyring.set_min_decryption_version(2)

    assert (report.rewrapped, report.already_current, report.lowest_kek_version) == (3, 0, 2)
    assert all(str(keys.stored(p)["wrapped_key"]).startswith("vault:v2:") for p in patients)
    fresh = EnvelopeCipher(keys.keyring())
    for index, envelope in enumerate(envelopes):
        assert StringValue.FromString(await fresh.decrypt(envelope)).value == f"note {index}"
    # Vault itself refuses a data key wrapped under the retired version 1:
    with pytest.raises(InvalidRequest, match="disallowed by policy"):
        keys.vault.secrets.transit.decrypt_data(name=keys.kek_name, ciphertext=wrapped_under_v1)
    with pytest.raises(DataKeyRefusedError):
        keys.kek.unwrap(wrapped_under_v1)


async def test_forgetting_a_patient_destroys_their_key_for_every_reader(keys: VaultKeys) -> None:
    forgotten, kept = str(uuid.uuid4()), str(uuid.uuid4())
    keyring = keys.keyring()
    cipher = EnvelopeCipher(keyring, creates_keys=True)
    theirs = await _encrypted(cipher, forgotten, NAME)
    others = await _encrypted(cipher, kept, "John Roe")

    await keyring.forget(forgotten)

    with pytest.raises(InvalidPath):  # metadata and every version: gone for good
        keys.vault.secrets.kv.v2.read_secret_metadata(
            path=f"patients/{forgotten}", mount_point=keys.mount
        )
    with pytest.raises(PatientForgottenError):
        await keyring.get(forgotten)
    with pytest.raises(PatientForgottenError):
        await cipher.decrypt(theirs)
    fresh = EnvelopeCipher(keys.keyring())
    with pytest.raises(PatientForgottenError):
        await fresh.decrypt(theirs)
    with pytest.raises(PatientForgottenError):
        await fresh.encrypt(patient_envelope(forgotten, str(uuid.uuid4()), 2, NAME))
    assert StringValue.FromString(await fresh.decrypt(others)).value == "John Roe"


async def test_unreachable_vault_fails_closed_and_nothing_is_encrypted() -> None:
    # Nothing listens on a port we just found free.
    closed = hvac.Client(url=f"http://127.0.0.1:{free_tcp_port()}", token="unused", timeout=2)  # noqa: S106
    keyring = PatientKeyring(
        TransitKeyEncryption(closed, "clinical-phi"),
        KvWrappedKeyStore(closed),
        KeyringConfig(call_timeout_s=5),
    )
    envelope = patient_envelope(str(uuid.uuid4()), str(uuid.uuid4()), 1, NAME)

    with pytest.raises(KeyServiceUnavailableError, match="unreachable") as raised:
        await EnvelopeCipher(keyring).encrypt(envelope)
    assert not await keyring.check_health()
    assert StringValue.FromString(envelope.payload).value == NAME  # untouched, never appended
    assert not envelope.payload_encryption.key_id
    assert "127.0.0.1" not in str(raised.value)


async def test_a_token_without_the_policy_fails_closed(keys: VaultKeys) -> None:
    token = keys.vault.auth.token.create(policies=["default"], ttl="2m")["auth"]["client_token"]
    limited = hvac.Client(url=keys.vault.url, token=token)
    keyring = PatientKeyring(
        TransitKeyEncryption(limited, keys.kek_name), KvWrappedKeyStore(limited, keys.mount)
    )

    with pytest.raises(KeyServiceUnavailableError, match="permission denied"):
        await keyring.get_or_create(str(uuid.uuid4()))
