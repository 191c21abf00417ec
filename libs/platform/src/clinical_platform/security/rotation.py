"""The KEK's lifecycle over the wrapped-key store: add a version, rewrap every stored data key
under the latest, retire older versions.

The steps are blocking (they call the ports); `KekRotation` runs them through the keyring's
bounded worker-thread call, and `PatientKeyring` offers them as its rotation methods.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from clinical_platform.security.errors import KekRetirementError
from clinical_platform.security.ports import KeyEncryptionService, WrappedKeyStore

logger = logging.getLogger(__name__)

# Runs a blocking port call off the event loop within the keyring's time bound.
OffLoop = Callable[..., Awaitable[Any]]


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


class KekRotation:
    """Rotate the KEK, rewrap the stored data keys under it, retire the versions below."""

    def __init__(self, kek: KeyEncryptionService, store: WrappedKeyStore, call: OffLoop) -> None:
        self._kek = kek
        self._store = store
        self._call = call

    async def rotate(self) -> int:
        """Add a KEK version; new data keys are wrapped under it. Returns the new version."""
        version: int = await self._call(self._kek.rotate)
        return version

    async def rewrap_all(
        self, on_progress: Callable[[int, int], None] | None = None
    ) -> RewrapReport:
        """Re-wrap every stored data key under the latest KEK version (Vault's transit/rewrap).

        The data keys themselves do not change, so cached keys and every event stay valid.
        A record destroyed (forgotten) meanwhile is left destroyed: its update is refused.
        ``on_progress`` is told (keys done, keys listed) after each key: an operator's display.
        """
        _min_version, latest = await self._call(self._kek.versions)
        report = RewrapReport()
        patients = await self._call(self._store.patients)
        for done, patient_id in enumerate(patients, start=1):
            report = report.add(
                await self._call(rewrap_one, self._kek, self._store, patient_id, latest)
            )
            if on_progress is not None:
                on_progress(done, len(patients))
        logger.info("data keys rewrapped", extra={"kek": self._kek.key_name, **vars(report)})
        return report

    async def retire_below(self, version: int, *, check: bool = True) -> None:
        """Retire KEK versions below ``version``: Vault will no longer unwrap under them.

        With ``check`` (the default) it first makes sure no stored data key is still wrapped
        under a retired version, and raises `KekRetirementError` otherwise (rewrap first).
        """
        if check:
            count = await self._call(stranded_count, self._store, version)
            if count:
                msg = f"{count} data keys are wrapped under KEK versions below {version}"
                raise KekRetirementError(f"{msg}; run rewrap_all first")
        await self._call(self._kek.set_min_decryption_version, version)
