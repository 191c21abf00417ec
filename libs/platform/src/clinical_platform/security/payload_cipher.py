"""AES-256-GCM for event payloads, bound to their event by associated data.

The envelope's payload bytes become ``ciphertext || 16-byte tag``; `PayloadEncryption` records
the algorithm, the data key's id and version, and the 12-byte random nonce. Routing fields stay
in the clear; the associated data (AAD) ties the ciphertext to them, so a payload copied into
another event, version, patient or payload type fails authentication instead of decrypting.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from clinical.events.v1 import payload_encryption_pb2
from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.security.errors import PayloadIntegrityError
from clinical_platform.security.keys import DataKey

NONCE_BYTES = 12
AES_256_GCM = payload_encryption_pb2.ENCRYPTION_ALGORITHM_AES_256_GCM
_PAYLOAD_AAD_LABEL = b"clinical.events.v1.Envelope.payload/v1"
_SNAPSHOT_AAD_LABEL = b"clinical.eventlog.snapshot/v1"


def encrypt_payload(plaintext: bytes, key: DataKey, aad: bytes) -> tuple[bytes, bytes]:
    """(ciphertext with the tag appended, nonce). The nonce is fresh and random every call.

    Random 96-bit nonces are safe for up to 2**32 encryptions per key; one patient's events
    stay many orders of magnitude below that.
    """
    nonce = os.urandom(NONCE_BYTES)
    return AESGCM(key.plaintext).encrypt(nonce, plaintext, aad), nonce


def decrypt_payload(ciphertext: bytes, key: DataKey, nonce: bytes, aad: bytes) -> bytes:
    """The plaintext; `PayloadIntegrityError` when the bytes, the AAD or the key don't match."""
    try:
        return AESGCM(key.plaintext).decrypt(nonce, ciphertext, aad)
    except (InvalidTag, ValueError):
        raise PayloadIntegrityError("the payload failed authentication") from None


def aad_for(envelope: Envelope) -> bytes:
    """event_id, aggregate_type, aggregate_id, aggregate_version, patient_id and payload_type.

    Each part is length-prefixed, so no two different envelopes share an AAD.
    """
    return _frame(
        _PAYLOAD_AAD_LABEL,
        envelope.event_id.encode(),
        envelope.aggregate_type.encode(),
        envelope.aggregate_id.encode(),
        envelope.aggregate_version.to_bytes(8, "big"),
        envelope.patient_id.encode(),
        envelope.payload_type.encode(),
    )


def snapshot_aad(patient_id: str, aggregate_id: str, version: int) -> bytes:
    """AAD of an encrypted snapshot: the aggregate and version it was taken at."""
    return _frame(
        _SNAPSHOT_AAD_LABEL,
        patient_id.encode(),
        aggregate_id.encode(),
        version.to_bytes(8, "big"),
    )


def is_encrypted(envelope: Envelope) -> bool:
    """True when the payload is AES-256-GCM ciphertext; raises for an unreadable marking."""
    if not envelope.HasField("payload_encryption"):
        return False
    algorithm = envelope.payload_encryption.algorithm
    if algorithm == payload_encryption_pb2.ENCRYPTION_ALGORITHM_NONE:
        return False
    if algorithm != AES_256_GCM:
        # UNSPECIFIED or unknown: reject rather than guess (as the proto says).
        raise PayloadIntegrityError("the payload's encryption algorithm is not recognised")
    return True


def encrypt_envelope_payload(envelope: Envelope, key: DataKey) -> None:
    """Replace the plaintext payload with its ciphertext and fill `payload_encryption`.

    The key must be the data key of ``envelope.patient_id``; every AAD field must be final.
    """
    if is_encrypted(envelope):
        raise ValueError("the payload is already encrypted")
    if envelope.patient_id != key.patient_id:
        raise ValueError("the data key belongs to another patient than the envelope names")
    ciphertext, nonce = encrypt_payload(envelope.payload, key, aad_for(envelope))
    envelope.payload = ciphertext
    envelope.payload_encryption.CopyFrom(
        payload_encryption_pb2.PayloadEncryption(
            algorithm=AES_256_GCM, key_id=key.key_id, key_version=key.version, nonce=nonce
        )
    )


def decrypt_envelope_payload(envelope: Envelope, key: DataKey) -> bytes:
    """The serialized payload message of an encrypted envelope (which is left unchanged)."""
    if not is_encrypted(envelope):
        raise ValueError("the payload is not encrypted")
    encryption = envelope.payload_encryption
    if encryption.key_id != key.key_id or envelope.patient_id != key.patient_id:
        raise PayloadIntegrityError("the payload was encrypted under another data key")
    return decrypt_payload(envelope.payload, key, encryption.nonce, aad_for(envelope))


def _frame(*parts: bytes) -> bytes:
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)
