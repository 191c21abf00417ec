"""The ports the security kernel needs: a key-encryption service, a wrapped-key store, a signer.

Each is synchronous because its Vault adapter is (hvac); async callers go through
``asyncio.to_thread``. Adapters raise only this package's typed errors, never hvac's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

_TRANSIT_VERSION = re.compile(r"^vault:v(\d+):")


def transit_key_version(ciphertext: str) -> int:
    """The KEK version a Transit ciphertext (``vault:v3:...``) was made with."""
    match = _TRANSIT_VERSION.match(ciphertext)
    if match is None:
        raise ValueError("not a Transit ciphertext")
    return int(match.group(1))


@dataclass(frozen=True)
class WrappedKeyRecord:
    """What the key store holds for one patient: the data key, wrapped by the KEK.

    ``store_version`` is the store's own version of the record (0 before it is stored), for
    check-and-set updates.
    """

    key_id: str
    wrapped_key: str
    key_version: int
    created_at: datetime
    store_version: int = 0

    @property
    def kek_version(self) -> int:
        """The KEK version the data key is currently wrapped under."""
        return transit_key_version(self.wrapped_key)


class KeyEncryptionService(Protocol):
    """The key-encryption key (KEK), e.g. one Vault Transit key per environment."""

    @property
    def key_name(self) -> str: ...

    def generate_data_key(self) -> tuple[str, bytes]:
        """A new random 256-bit data key: (wrapped, plaintext), from one call."""
        ...

    def unwrap(self, wrapped_key: str) -> bytes:
        """The data key's plaintext. Raises `DataKeyRefusedError` for a retired KEK version."""
        ...

    def rewrap(self, wrapped_key: str) -> str:
        """The same data key wrapped under the latest KEK version, never exposing it."""
        ...

    def rotate(self) -> int:
        """Add a new KEK version for new wraps; return it."""
        ...

    def versions(self) -> tuple[int, int]:
        """(min_decryption_version, latest_version) of the KEK."""
        ...

    def set_min_decryption_version(self, version: int) -> None: ...

    def check_available(self) -> None:
        """Raise `KeyServiceUnavailableError` when the service is sealed or unreachable."""
        ...


class WrappedKeyStore(Protocol):
    """Where wrapped data keys live: a store that can really destroy them (not the log)."""

    def read(self, patient_id: str) -> WrappedKeyRecord | None: ...

    def create(self, patient_id: str, record: WrappedKeyRecord) -> bool:
        """Store the patient's first record; False (and nothing written) when one exists."""
        ...

    def replace(self, patient_id: str, record: WrappedKeyRecord) -> bool:
        """Overwrite if the stored record is still at ``record.store_version``; else False."""
        ...

    def destroy(self, patient_id: str) -> None:
        """Delete the record and every earlier version of it, permanently."""
        ...

    def mark_forgotten(self, patient_id: str, at: datetime) -> None:
        """Record that the patient was forgotten (a tombstone holding no key material)."""
        ...

    def is_forgotten(self, patient_id: str) -> bool: ...

    def patients(self) -> list[str]:
        """Ids of every patient with a stored record."""
        ...


class Signer(Protocol):
    """An asymmetric signing key, e.g. an ed25519 Vault Transit key."""

    @property
    def key_name(self) -> str: ...

    def sign(self, message: bytes) -> tuple[bytes, int]:
        """(raw signature, key version that signed)."""
        ...

    def verify(self, message: bytes, signature: bytes, key_version: int) -> bool: ...
