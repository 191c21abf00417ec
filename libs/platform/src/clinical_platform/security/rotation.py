"""KEK rotation steps over the wrapped-key store: rewrap one record, count stranded ones.

Blocking (they call the ports); `PatientKeyring` runs them in worker threads.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from clinical_platform.security.ports import KeyEncryptionService, WrappedKeyStore


@dataclass(frozen=True)
class RewrapReport:
    """What `PatientKeyring.rewrap_all` did; ``lowest_kek_version`` is over the kept records."""

    rewrapped: int = 0
    already_current: int = 0
    vanished: int = 0
    lowest_kek_version: int | None = None

    def add(self, outcome: tuple[bool, int] | None) -> RewrapReport:
        """This report with one more record's `rewrap_one` outcome counted."""
        if outcome is None:
            return replace(self, vanished=self.vanished + 1)
        rewrapped, kek_version = outcome
        lowest = self.lowest_kek_version
        return RewrapReport(
            self.rewrapped + rewrapped,
            self.already_current + (not rewrapped),
            self.vanished,
            kek_version if lowest is None else min(lowest, kek_version),
        )


def rewrap_one(
    kek: KeyEncryptionService, store: WrappedKeyStore, patient_id: str, latest: int
) -> tuple[bool, int] | None:
    """(rewrapped?, KEK version now) for one patient; None when the record is gone.

    The update is check-and-set: a record destroyed (forgotten) meanwhile stays destroyed.
    """
    record = store.read(patient_id)
    if record is None:
        return None
    if record.kek_version >= latest:
        return False, record.kek_version
    rewrapped = replace(record, wrapped_key=kek.rewrap(record.wrapped_key))
    if not store.replace(patient_id, rewrapped):
        return None
    return True, rewrapped.kek_version


def stranded_count(store: WrappedKeyStore, min_version: int) -> int:
    """How many stored data keys are wrapped under a KEK version below ``min_version``."""
    records = (store.read(patient_id) for patient_id in store.patients())
    return sum(1 for record in records if record is not None and record.kek_version < min_version)
