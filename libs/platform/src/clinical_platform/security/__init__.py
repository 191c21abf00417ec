"""PHI encryption with per-patient keys from Vault, crypto-shredding, tamper-evident audit.

Read docs/security.md for the design: the key hierarchy (Transit KEK, per-patient data keys
wrapped in KV v2), AAD, the cache, rotation, crypto-shredding, fail-closed behaviour, the hash
chain, signed checkpoints and verification.
"""

from clinical_platform.security.chain import (
    Finding,
    VerificationReport,
    record_hash,
    verify_chain,
)
from clinical_platform.security.checkpoint_log import (
    CheckpointRunnerConfig,
    PartitionCheckpointRunner,
    read_checkpoints,
    read_partition,
)
from clinical_platform.security.checkpoints import CHECKPOINTS_TOPIC, Checkpointer, CheckpointPolicy
from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.security.errors import (
    DataKeyNotFoundError,
    DataKeyRefusedError,
    KekRetirementError,
    KeyServiceUnavailableError,
    PatientForgottenError,
    PayloadIntegrityError,
    SecurityError,
    UnregisteredPatientError,
)
from clinical_platform.security.forgetting import (
    forget_patient_documents,
    forgotten_marker,
    replace_with_marker,
)
from clinical_platform.security.keys import DataKey, KeyringConfig, PatientKeyring
from clinical_platform.security.rotation import RewrapReport
from clinical_platform.security.token_renewal import VaultTokenRenewer
from clinical_platform.security.verification import verify_partition
from clinical_platform.security.wiring import build_keyring, build_signer

__all__ = [
    "CHECKPOINTS_TOPIC",
    "CheckpointPolicy",
    "CheckpointRunnerConfig",
    "Checkpointer",
    "DataKey",
    "DataKeyNotFoundError",
    "DataKeyRefusedError",
    "EnvelopeCipher",
    "Finding",
    "KekRetirementError",
    "KeyServiceUnavailableError",
    "KeyringConfig",
    "PartitionCheckpointRunner",
    "PatientForgottenError",
    "PatientKeyring",
    "PayloadIntegrityError",
    "RewrapReport",
    "SecurityError",
    "UnregisteredPatientError",
    "VaultTokenRenewer",
    "VerificationReport",
    "build_keyring",
    "build_signer",
    "forget_patient_documents",
    "forgotten_marker",
    "read_checkpoints",
    "read_partition",
    "record_hash",
    "replace_with_marker",
    "verify_chain",
    "verify_partition",
]
