"""Security test helpers: in-memory fakes of the kernel's ports, and envelopes about patients.

`InMemoryTransit` wraps data keys with real AES-GCM under versioned KEKs and honours
min_decryption_version; `InMemoryKeyStore` has check-and-set and permanent destroy;
`InMemorySigner` signs with real ed25519 keys. Each counts its calls, and ``available = False``
makes every call fail as a sealed Vault does.
"""

from __future__ import annotations

import base64
import os
from collections import Counter
from dataclasses import replace
from datetime import datetime

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.security.errors import DataKeyRefusedError, KeyServiceUnavailableError
from clinical_platform.security.keys import KeyringConfig, PatientKeyring
from clinical_platform.security.ports import WrappedKeyRecord, transit_key_version
from clinical_testing.eventlog import make_envelope


def in_memory_cipher() -> EnvelopeCipher:
    """A real `EnvelopeCipher` over in-memory fakes of Vault: for unit tests and benchmarks.

    It creates a missing data key, as the patient service's does: a unit test's patients need
    no registration first.
    """
    keyring = PatientKeyring(InMemoryTransit(), InMemoryKeyStore(), KeyringConfig())
    return EnvelopeCipher(keyring, creates_keys=True)


def patient_envelope(
    patient_id: str, aggregate_id: str, version: int, note: str = "", request_id: str = "req-1"
) -> Envelope:
    """A valid envelope about a patient, its plaintext payload a StringValue holding `note`."""
    envelope = make_envelope(aggregate_id, version, request_id, note)
    envelope.patient_id = patient_id
    return envelope


class _Fake:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.available = True

    def _call(self, name: str) -> None:
        self.calls[name] += 1
        if not self.available:
            raise KeyServiceUnavailableError(f"{name}: Vault is sealed")


class InMemoryTransit(_Fake):
    """A Transit ``aes256-gcm96`` key (`KeyEncryptionService`)."""

    def __init__(self, key_name: str = "test-phi") -> None:
        super().__init__()
        self._key_name = key_name
        self._keks = {1: AESGCM.generate_key(bit_length=256)}
        self.min_decryption_version = 1

    @property
    def key_name(self) -> str:
        return self._key_name

    def generate_data_key(self) -> tuple[str, bytes]:
        self._call("generate_data_key")
        plaintext = os.urandom(32)
        return self._wrap(plaintext), plaintext

    def unwrap(self, wrapped_key: str) -> bytes:
        self._call("unwrap")
        version = transit_key_version(wrapped_key)
        if version < self.min_decryption_version or version not in self._keks:
            raise DataKeyRefusedError("Vault refused to unwrap a data key")
        blob = base64.b64decode(wrapped_key.split(":", 2)[2])
        try:
            return AESGCM(self._keks[version]).decrypt(blob[:12], blob[12:], None)
        except InvalidTag:
            raise DataKeyRefusedError("Vault refused to unwrap a data key") from None

    def rewrap(self, wrapped_key: str) -> str:
        self._call("rewrap")
        return self._wrap(self._unwrap_quietly(wrapped_key))

    def rotate(self) -> int:
        self._call("rotate")
        latest = max(self._keks) + 1
        self._keks[latest] = AESGCM.generate_key(bit_length=256)
        return latest

    def versions(self) -> tuple[int, int]:
        self._call("versions")
        return self.min_decryption_version, max(self._keks)

    def set_min_decryption_version(self, version: int) -> None:
        self._call("set_min_decryption_version")
        if not 1 <= version <= max(self._keks):
            raise ValueError("min_decryption_version out of range")
        self.min_decryption_version = version

    def check_available(self) -> None:
        self._call("check_available")

    def _wrap(self, plaintext: bytes) -> str:
        version = max(self._keks)
        nonce = os.urandom(12)
        blob = nonce + AESGCM(self._keks[version]).encrypt(nonce, plaintext, None)
        return f"vault:v{version}:{base64.b64encode(blob).decode()}"

    def _unwrap_quietly(self, wrapped_key: str) -> bytes:
        self.calls["unwrap"] -= 1  # a rewrap is one call, not two
        return self.unwrap(wrapped_key)


class InMemoryKeyStore(_Fake):
    """A KV v2 mount with check-and-set (`WrappedKeyStore`)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, WrappedKeyRecord] = {}
        self.tombstones: dict[str, datetime] = {}

    def read(self, patient_id: str) -> WrappedKeyRecord | None:
        self._call("read")
        return self.records.get(patient_id)

    def create(self, patient_id: str, record: WrappedKeyRecord) -> bool:
        self._call("create")
        if patient_id in self.records:
            return False
        self.records[patient_id] = replace(record, store_version=1)
        return True

    def replace(self, patient_id: str, record: WrappedKeyRecord) -> bool:
        self._call("replace")
        current = self.records.get(patient_id)
        if current is None or current.store_version != record.store_version:
            return False
        self.records[patient_id] = replace(record, store_version=record.store_version + 1)
        return True

    def destroy(self, patient_id: str) -> None:
        self._call("destroy")
        self.records.pop(patient_id, None)

    def mark_forgotten(self, patient_id: str, at: datetime) -> None:
        self._call("mark_forgotten")
        self.tombstones.setdefault(patient_id, at)

    def is_forgotten(self, patient_id: str) -> bool:
        self._call("is_forgotten")
        return patient_id in self.tombstones

    def patients(self) -> list[str]:
        self._call("patients")
        return sorted(self.records)


class InMemorySigner(_Fake):
    """An ed25519 Transit key (`Signer`); ``rotate()`` adds a version."""

    def __init__(self, key_name: str = "test-audit") -> None:
        super().__init__()
        self._key_name = key_name
        self._keys = {1: Ed25519PrivateKey.generate()}

    @property
    def key_name(self) -> str:
        return self._key_name

    def rotate(self) -> None:
        self._keys[max(self._keys) + 1] = Ed25519PrivateKey.generate()

    def sign(self, message: bytes) -> tuple[bytes, int]:
        self._call("sign")
        version = max(self._keys)
        return self._keys[version].sign(message), version

    def verify(self, message: bytes, signature: bytes, key_version: int) -> bool:
        self._call("verify")
        key = self._keys.get(key_version)
        if key is None:
            return False
        try:
            key.public_key().verify(signature, message)
        except InvalidSignature:
            return False
        return True


class WriterOfEveryRecord:
    """A partition writer's `WriterRecords` for tests that produce the records themselves,
    posing as the writer: it has seen and written every record of the partition."""

    def next_offset(self) -> int:
        return 2**63 - 1

    def wrote(self, offset: int) -> bool:
        return True
