"""Per-patient data keys: created once, wrapped by the Vault KEK, cached briefly, destroyable.

One 256-bit data key (DEK) per patient encrypts the payloads of every event about that patient.
Its wrapped form lives in the key store (never on the log); forgetting the patient destroys it,
which crypto-shreds every copy of their events, replays and backups of Kafka included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from clinical_platform.observability.vault import data_key_lookup
from clinical_platform.security.cache import TtlLruCache
from clinical_platform.security.errors import (
    DataKeyNotFoundError,
    KeyServiceUnavailableError,
    PatientForgottenError,
)
from clinical_platform.security.ports import (
    KeyEncryptionService,
    WrappedKeyRecord,
    WrappedKeyStore,
)
from clinical_platform.security.rotation import KekRotation, RewrapReport
from clinical_platform.settings import BaseServiceSettings

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class DataKey:
    """A patient's unwrapped data key. Its bytes never appear in reprs, logs or errors."""

    patient_id: str
    key_id: str
    version: int
    plaintext: bytes = field(repr=False)


@dataclass(frozen=True)
class KeyringConfig:
    cache_size: int = 10_000
    cache_ttl_s: float = 300.0
    # Bounds one key-store round (a few Vault calls); past it, the write fails closed.
    call_timeout_s: float = 10.0
    health_interval_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: BaseServiceSettings) -> KeyringConfig:
        return cls(
            cache_size=settings.data_key_cache_size,
            cache_ttl_s=settings.data_key_cache_ttl_seconds,
            call_timeout_s=2 * settings.vault_timeout_seconds,
            health_interval_s=settings.vault_health_interval_seconds,
        )


class PatientKeyring:
    """Gets, creates and destroys patients' data keys through a KEK and a wrapped-key store.

    Vault is off the hot path: unwrapped keys stay in a bounded TTL cache, and concurrent
    requests for the same patient share one fetch. ``start()`` also watches Vault's seal: once
    it is sealed or unreachable, the cache is emptied and every call fails closed with
    `KeyServiceUnavailableError` until Vault is back.
    """

    def __init__(
        self,
        kek: KeyEncryptionService,
        store: WrappedKeyStore,
        config: KeyringConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kek = kek
        self._store = store
        self._config = config or KeyringConfig()
        self._cache: TtlLruCache[str, DataKey] = TtlLruCache(
            self._config.cache_size, self._config.cache_ttl_s, clock
        )
        self._in_flight: dict[tuple[str, bool], asyncio.Task[DataKey]] = {}
        # Bumped by forget/evict: a fetch that started before must not refill the cache.
        self._generation = 0
        self._unavailable: str | None = None
        self._watch: asyncio.Task[None] | None = None
        self._rotation = KekRotation(kek, store, self._call)

    @property
    def kek_name(self) -> str:
        return self._kek.key_name

    @property
    def available(self) -> bool:
        """False while the last health check found Vault sealed or unreachable (for readiness)."""
        return self._unavailable is None

    @property
    def unavailable_reason(self) -> str | None:
        """Why the last health check found Vault unusable (sealed, unreachable), or None."""
        return self._unavailable

    async def start(self) -> None:
        """Check Vault once, then keep watching its seal in the background."""
        await self.check_health()
        self._watch = asyncio.create_task(self._watch_health(), name="keyring-health")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        self._cache.clear()

    async def check_health(self) -> bool:
        """True when Vault answers unsealed; otherwise empty the cache and fail closed."""
        try:
            await self._call(self._kek.check_available)
        except KeyServiceUnavailableError as unavailable:
            if self._unavailable is None:
                logger.error("key service unavailable; PHI access fails closed",
                             extra={"reason": unavailable.reason})  # fmt: skip
            self._unavailable = unavailable.reason
            self._cache.clear()
            return False
        if self._unavailable is not None:
            logger.info("key service available again")
        self._unavailable = None
        return True

    async def get_or_create(self, patient_id: str) -> DataKey:
        """The patient's data key, created on first use. Raises `PatientForgottenError`."""
        return await self._key(patient_id, create=True)

    async def get(self, patient_id: str) -> DataKey:
        """The patient's existing data key.

        Raises `PatientForgottenError` after `forget`, `DataKeyNotFoundError` when no key was
        ever stored, `KeyServiceUnavailableError` when Vault cannot be asked.
        """
        return await self._key(patient_id, create=False)

    def cached(self, patient_id: str) -> DataKey | None:
        """The cached key, without asking Vault (for synchronous readers that prefetched)."""
        return None if self._unavailable else self._cache.get(patient_id)

    def evict(self, patient_id: str) -> None:
        """Drop the patient's key from this process, e.g. on hearing they were forgotten."""
        self._generation += 1
        self._cache.pop(patient_id)

    async def forget(self, patient_id: str) -> None:
        """Crypto-shred the patient: their data key is destroyed for good, everywhere it is stored.

        The tombstone goes first, so a key created concurrently is noticed and destroyed by its
        creator; replicas that cached the key lose it within the cache TTL (or on `evict`).
        """
        _check_patient_id(patient_id)
        self._require_available()
        now = datetime.now(UTC)

        def shred() -> None:
            self._store.mark_forgotten(patient_id, now)
            self._store.destroy(patient_id)

        await self._call(shred)
        self.evict(patient_id)
        # No patient id in logs: the patient service records the erasure as an event.
        logger.info("patient forgotten: data key destroyed")

    async def rotate_kek(self) -> int:
        """Add a KEK version (`KekRotation.rotate`)."""
        self._require_available()
        return await self._rotation.rotate()

    async def rewrap_all(
        self, on_progress: Callable[[int, int], None] | None = None
    ) -> RewrapReport:
        """Rewrap every stored data key under the latest KEK version (`KekRotation`)."""
        self._require_available()
        return await self._rotation.rewrap_all(on_progress)

    async def set_min_decryption_version(self, version: int, *, check: bool = True) -> None:
        """Retire KEK versions below ``version``, checking first (`KekRotation.retire_below`)."""
        self._require_available()
        await self._rotation.retire_below(version, check=check)

    async def _key(self, patient_id: str, *, create: bool) -> DataKey:
        _check_patient_id(patient_id)
        self._require_available()
        cached = self._cache.get(patient_id)
        data_key_lookup(hit=cached is not None)
        if cached is not None:
            return cached
        flight = (patient_id, create)
        task = self._in_flight.get(flight)
        if task is None:
            task = asyncio.ensure_future(self._fetch(patient_id, create=create))
            self._in_flight[flight] = task
            task.add_done_callback(lambda _: self._in_flight.pop(flight, None))
        return await asyncio.shield(task)

    async def _fetch(self, patient_id: str, *, create: bool) -> DataKey:
        generation = self._generation
        key = await self._call(self._load, patient_id, create)
        if generation == self._generation and self._unavailable is None:
            self._cache.put(patient_id, key)
        return key

    def _load(self, patient_id: str, create: bool) -> DataKey:
        """The blocking part (runs in a worker thread): read or create, then unwrap."""
        record = self._store.read(patient_id)
        if record is None:
            if create:
                return self._create(patient_id)
            if self._store.is_forgotten(patient_id):
                raise PatientForgottenError(patient_id)
            raise DataKeyNotFoundError(patient_id)
        return self._unwrapped(patient_id, record)

    def _create(self, patient_id: str) -> DataKey:
        """A new data key, stored first-writer-wins; three calls to Vault (generate, store,
        tombstone check) when we win. A patient forgotten before or while we create is caught
        by the tombstone check after the write, which undoes it."""
        wrapped, plaintext = self._kek.generate_data_key()
        record = WrappedKeyRecord(
            key_id=str(uuid.uuid4()), wrapped_key=wrapped, key_version=1,
            created_at=datetime.now(UTC),
        )  # fmt: skip
        if self._store.create(patient_id, record):
            # Forgotten before our write (a destroyed key leaves no version for check-and-set
            # to protect) or meanwhile: undo, or the new key would outlive the erasure.
            if self._store.is_forgotten(patient_id):
                self._store.destroy(patient_id)
                raise PatientForgottenError(patient_id)
            logger.info("data key created", extra={"key_id": record.key_id})
            return DataKey(patient_id, record.key_id, record.key_version, plaintext)
        # Another writer created the patient's key first (check-and-set): use theirs.
        winner = self._store.read(patient_id)
        if winner is None:
            if self._store.is_forgotten(patient_id):
                raise PatientForgottenError(patient_id)
            raise KeyServiceUnavailableError("the key store lost a data key while it was created")
        return self._unwrapped(patient_id, winner)

    def _unwrapped(self, patient_id: str, record: WrappedKeyRecord) -> DataKey:
        plaintext = self._kek.unwrap(record.wrapped_key)
        return DataKey(patient_id, record.key_id, record.key_version, plaintext)

    async def _call(self, function: Callable[..., T], *args: object) -> T:
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(function, *args), self._config.call_timeout_s
            )
        except TimeoutError:
            raise KeyServiceUnavailableError("the key service did not answer in time") from None

    def _require_available(self) -> None:
        if self._unavailable is not None:
            raise KeyServiceUnavailableError(self._unavailable)

    async def _watch_health(self) -> None:
        while True:
            await asyncio.sleep(self._config.health_interval_s)
            await self.check_health()


def _check_patient_id(patient_id: str) -> None:
    # Canonical UUIDs only: the id is a path segment in the key store.
    try:
        canonical = str(uuid.UUID(patient_id)) == patient_id
    except ValueError:
        canonical = False
    if not canonical:
        raise ValueError("patient_id must be a lowercase hyphenated UUID")
