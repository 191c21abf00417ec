"""Encrypting and decrypting whole envelopes (and snapshots) with the patients' data keys.

The one place writers, repositories and projections go through, so each makes one call:

    await cipher.encrypt(envelope)            # before the append; fails closed
    payload = await cipher.decrypt(envelope)  # PatientForgottenError -> write a marker
"""

from __future__ import annotations

from collections.abc import Iterable

from clinical.events.v1 import payload_encryption_pb2
from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.security.errors import (
    DataKeyNotFoundError,
    PayloadIntegrityError,
    UnregisteredPatientError,
    UnsealedPatientEventError,
)
from clinical_platform.security.keys import DataKey, PatientKeyring
from clinical_platform.security.payload_cipher import (
    NONCE_BYTES,
    decrypt_envelope_payload,
    decrypt_payload,
    encrypt_envelope_payload,
    encrypt_payload,
    is_encrypted,
    snapshot_aad,
)

# Plaintext snapshots are JSON and start with "{", so this prefix cannot be one of them.
_SNAPSHOT_MAGIC = b"\x00clinical-snapshot/v1\x00"
_UUID_BYTES = 36  # patient and key ids: UUIDs in text form


def require_sealed(envelope: Envelope) -> None:
    """Refuse an event about a patient whose payload is plaintext: none of our writers made it.

    Events about no patient (empty ``patient_id``, e.g. subscriptions) are plaintext by design.
    """
    if envelope.patient_id and not is_encrypted(envelope):
        raise UnsealedPatientEventError("an event about a patient arrived unencrypted")


class EnvelopeCipher:
    """Payload encryption with per-patient data keys from a `PatientKeyring`.

    Only a cipher built with ``creates_keys=True`` (the patient service's: registering a
    patient makes their key) creates a missing data key. Every other writer encrypts with the
    patient's existing key and refuses an unknown patient, so a caller cannot make it store a
    key in Vault, or record events, for a made-up patient id.
    """

    def __init__(self, keyring: PatientKeyring, *, creates_keys: bool = False) -> None:
        self._keyring = keyring
        self._creates_keys = creates_keys

    async def encrypt(self, envelope: Envelope) -> None:
        """Encrypt the payload in place with the key of ``envelope.patient_id``.

        Envelopes about no patient (empty ``patient_id``) carry no PHI and stay plaintext.
        Raises `KeyServiceUnavailableError` (the envelope is left untouched: nothing may be
        appended), `PatientForgottenError` (no new PHI about a forgotten patient) or
        `UnregisteredPatientError` (no key, and this cipher creates none).
        """
        if not envelope.patient_id:
            return
        key = await self._sealing_key(envelope.patient_id)
        encrypt_envelope_payload(envelope, key)

    async def encrypt_all(self, envelopes: Iterable[Envelope]) -> None:
        """`encrypt` each envelope; all or, on the first failure, a raise before any append."""
        for envelope in envelopes:
            await self.encrypt(envelope)

    async def decrypt(self, envelope: Envelope) -> bytes:
        """The serialized payload message, decrypted when it is encrypted.

        Raises `PatientForgottenError` for a forgotten patient's event (the outcome a reader
        turns into a "forgotten" marker), `PayloadIntegrityError` for tampered bytes and
        `UnsealedPatientEventError` for a patient's event in plaintext (a forgery).
        """
        require_sealed(envelope)
        if not is_encrypted(envelope):
            return envelope.payload
        key = await self._keyring.get(envelope.patient_id)
        return decrypt_envelope_payload(envelope, key)

    async def decrypted(self, envelope: Envelope) -> Envelope:
        """A copy of the envelope with its payload in plaintext (the original is unchanged).

        For code that takes whole envelopes (a projection's ``apply``). The copy's hash no
        longer matches its bytes: never append or forward it.
        """
        plain = Envelope()
        plain.CopyFrom(envelope)
        plain.payload = await self.decrypt(envelope)
        plain.payload_encryption.CopyFrom(
            payload_encryption_pb2.PayloadEncryption(
                algorithm=payload_encryption_pb2.ENCRYPTION_ALGORITHM_NONE
            )
        )
        return plain

    async def encrypt_snapshot(
        self, patient_id: str, aggregate_id: str, version: int, state: bytes
    ) -> bytes:
        """A snapshot of an aggregate about a patient, encrypted like its events.

        Snapshots sit in the local store on disk; encrypted, they are shredded with the
        patient. Aggregates about no patient (empty ``patient_id``) keep plaintext snapshots.
        The patient and key ids travel in the clear in front of the ciphertext.
        """
        if not patient_id:
            return state
        key = await self._sealing_key(patient_id)
        ciphertext, nonce = encrypt_payload(
            state, key, snapshot_aad(patient_id, aggregate_id, version)
        )
        header = patient_id.encode() + key.key_id.encode()
        return _SNAPSHOT_MAGIC + header + nonce + ciphertext

    async def _sealing_key(self, patient_id: str) -> DataKey:
        """The key new PHI is encrypted with: created only by a cipher that creates keys."""
        if self._creates_keys:
            return await self._keyring.get_or_create(patient_id)
        try:
            return await self._keyring.get(patient_id)
        except DataKeyNotFoundError:
            raise UnregisteredPatientError(patient_id) from None

    async def decrypt_snapshot(self, aggregate_id: str, version: int, stored: bytes) -> bytes:
        """The snapshot's state (as given, when it was never encrypted).

        Raises `PatientForgottenError` like `decrypt`: the aggregate cannot be loaded.
        """
        if not stored.startswith(_SNAPSHOT_MAGIC):
            return stored
        body = memoryview(stored)[len(_SNAPSHOT_MAGIC) :]
        patient_id = bytes(body[:_UUID_BYTES]).decode(errors="replace")
        key_id = bytes(body[_UUID_BYTES : 2 * _UUID_BYTES]).decode(errors="replace")
        nonce = bytes(body[2 * _UUID_BYTES : 2 * _UUID_BYTES + NONCE_BYTES])
        key = await self._keyring.get(patient_id)
        if key.key_id != key_id:
            raise PayloadIntegrityError("the snapshot was encrypted under another data key")
        return decrypt_payload(
            bytes(body[2 * _UUID_BYTES + NONCE_BYTES :]),
            key,
            nonce,
            snapshot_aad(patient_id, aggregate_id, version),
        )
