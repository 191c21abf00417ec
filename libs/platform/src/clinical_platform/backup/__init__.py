"""Backup and restore of the system of record: the topics (already ciphertext) and the key
store's wrapped keys, with a manifest of offsets and hashes (docs/backup.md)."""

from clinical_platform.backup.copy import BackupPlan, BackupTargetError, back_up
from clinical_platform.backup.key_store import KeyStoreConflictError
from clinical_platform.backup.manifest import Manifest, ManifestError, read_manifest
from clinical_platform.backup.offsets import OffsetLayoutError
from clinical_platform.backup.restore import (
    RestoreDivergedError,
    RestorePlan,
    RestoreRefusedError,
    restore,
)
from clinical_platform.backup.topics import ACCESS_TOPICS, EVENT_LOGS

__all__ = [
    "ACCESS_TOPICS",
    "EVENT_LOGS",
    "BackupPlan",
    "BackupTargetError",
    "KeyStoreConflictError",
    "Manifest",
    "ManifestError",
    "OffsetLayoutError",
    "RestoreDivergedError",
    "RestorePlan",
    "RestoreRefusedError",
    "back_up",
    "read_manifest",
    "restore",
]
