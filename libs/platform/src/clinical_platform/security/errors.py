"""Typed failures of PHI encryption; the gRPC layer maps each to one status code.

Messages carry no patient ids (they are attributes, for code that needs them), no key material,
no payload bytes and none of Vault's own error text (which quotes request paths).
"""

from __future__ import annotations


class SecurityError(Exception):
    """Base class of every failure of the security kernel."""


class KeyServiceUnavailableError(SecurityError):
    """Vault is sealed, unreachable, failing or refusing our token: fail closed (UNAVAILABLE).

    Nothing was encrypted or decrypted; a retry once Vault is back may succeed.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the key service is unavailable: {reason}")


class PatientForgottenError(SecurityError):
    """The patient was crypto-shredded: their data key is destroyed and their PHI unreadable.

    Readers (projections, replays) record a "forgotten" marker instead of the payload; writers
    refuse new PHI about the patient (FAILED_PRECONDITION).
    """

    def __init__(self, patient_id: str) -> None:
        self.patient_id = patient_id
        super().__init__("the patient was forgotten; their data key is destroyed")


class DataKeyNotFoundError(SecurityError):
    """No data key and no record of forgetting: a misconfigured key store, not a forgotten patient.

    Kept apart from `PatientForgottenError` so a wrong mount or environment is never mistaken
    for an erasure (and read models are never overwritten with markers because of it).
    """

    def __init__(self, patient_id: str) -> None:
        self.patient_id = patient_id
        super().__init__("no data key is stored for the patient, and no record of forgetting")


class UnregisteredPatientError(SecurityError):
    """A command about a patient who has no data key: never registered (or a made-up id).

    Only the patient service creates data keys (when it registers a patient); every other
    writer refuses the command before anything is appended (FAILED_PRECONDITION), so a caller
    cannot make it store a key, or record events, for a patient who does not exist.
    """

    def __init__(self, patient_id: str) -> None:
        self.patient_id = patient_id
        super().__init__("no registered patient has this id")


class DataKeyRefusedError(SecurityError):
    """Vault refused to unwrap a stored data key, e.g. one wrapped under a retired KEK version.

    Permanent until an operator acts (see the rotation runbook in docs/security.md).
    """


class PayloadIntegrityError(SecurityError):
    """A ciphertext failed authentication: altered bytes, or moved to another event or patient."""


class UnsealedPatientEventError(PayloadIntegrityError):
    """An event about a patient whose payload is not encrypted. No writer of the platform
    appends one (the writer encrypts every patient's event before its append), so it was put
    on the log by someone else: a forgery, refused by every reader and dead-lettered."""


class KekRetirementError(SecurityError):
    """Raising min_decryption_version now would strand stored data keys; rewrap them first."""
