"""Commands against aggregates: load from the owner's store, run the domain method, append.

A servicer's application method is typically::

    result = await self._orders.execute(order_id, context, lambda order: order.sign(by=...))

which returns the aggregate's new version (or the first outcome, for a retried request id).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC
from typing import Generic
from uuid import UUID

from clinical_platform.eventlog.appends import AppendResult
from clinical_platform.eventlog.codec import EventCatalog, TAggregate, replay
from clinical_platform.eventlog.context import CommandContext
from clinical_platform.eventlog.envelope import build_envelope
from clinical_platform.eventlog.errors import ConcurrencyError
from clinical_platform.eventlog.ports import PayloadCipher
from clinical_platform.eventlog.snapshots import aggregate_from_snapshot, snapshot_to_bytes
from clinical_platform.eventlog.store import EventStore

Command = Callable[[TAggregate | None], TAggregate]
"""Takes the current aggregate (None when it does not exist yet) and returns it changed."""
PatientOf = Callable[[TAggregate], str]
"""The id of the patient an aggregate is about ("" for none): its events' ``patient_id``."""


class AggregateRepository(Generic[TAggregate]):
    """Loads one kind of aggregate and records the events its commands produce.

    Commands on one aggregate run one at a time in this replica (a lock per aggregate), and the
    aggregate a command left behind stays in a bounded cache for the next one, so a hot
    aggregate is neither re-read from SQLite nor replayed. The writer's version check stays the
    safety net: a cached aggregate that fell behind makes the append fail with a
    ConcurrencyError, the entry is dropped, and the command runs again on the stored state.
    """

    def __init__(
        self,
        store: EventStore,
        catalog: EventCatalog[TAggregate],
        *,
        source: str,
        cipher: PayloadCipher,
        patient_of: PatientOf[TAggregate],
        snapshot_every: int = 100,
        attempts: int = 3,
        cache_size: int = 10_000,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._source = source
        self._snapshot_every = snapshot_every
        self._attempts = attempts
        self._cipher = cipher
        self._patient_of = patient_of
        self._cache: OrderedDict[UUID, TAggregate] = OrderedDict()
        self._cache_size = cache_size
        # Per aggregate: its lock and how many commands hold or wait for it.
        self._locks: dict[UUID, tuple[asyncio.Lock, int]] = {}

    async def get(self, aggregate_id: UUID) -> TAggregate | None:
        """The aggregate as this writer last recorded it (snapshot plus later events).

        Raises PatientForgottenError for an aggregate about a forgotten patient (its events and
        snapshots are encrypted under the destroyed key), KeyServiceUnavailableError while
        Vault is away.
        """
        key = str(aggregate_id)
        history = self._store.history(key)
        start = None
        if history.snapshot:
            version, stored = history.snapshot
            start = aggregate_from_snapshot(
                await self._cipher.decrypt_snapshot(key, version, stored)
            )
        events = [
            self._catalog.from_stored(
                envelope.aggregate_id,
                envelope.aggregate_version,
                envelope.occurred_at.ToDatetime(tzinfo=UTC),
                envelope.event_type,
                await self._cipher.decrypt(envelope),
            )
            for envelope in history.envelopes
        ]
        return replay(self._catalog, events, start=start)

    def current_version(self, aggregate_id: UUID) -> int:
        """The aggregate's recorded version (0: none), read without opening any payload."""
        return self._store.current_version(str(aggregate_id))

    def evict(self, aggregate_id: UUID) -> None:
        """Drop the cached aggregate (a forgotten patient's PHI must not outlive the key)."""
        self._cache.pop(aggregate_id, None)

    def evict_patient(self, patient_id: str) -> None:
        """Drop every cached aggregate about a patient (when that patient is forgotten)."""
        for aggregate_id in [
            a for a, agg in self._cache.items() if self._patient_of(agg) == patient_id
        ]:
            self._cache.pop(aggregate_id, None)

    async def execute(
        self,
        aggregate_id: UUID,
        context: CommandContext,
        command: Command[TAggregate],
        *,
        expected_version: int | None = None,
    ) -> AppendResult:
        """Run a command and record its events exactly once per ``context.request_id``.

        With ``expected_version`` the caller pins the version it saw: a different current
        version raises ConcurrencyError. Without it, a command that lost a race is re-run on
        the newer state (domain errors raised by the command propagate unchanged).
        """
        lock, users = self._locks.get(aggregate_id, (asyncio.Lock(), 0))
        self._locks[aggregate_id] = (lock, users + 1)
        try:
            async with lock:
                return await self._execute(aggregate_id, context, command, expected_version)
        finally:
            lock, users = self._locks[aggregate_id]
            if users == 1:
                del self._locks[aggregate_id]
            else:
                self._locks[aggregate_id] = (lock, users - 1)

    async def _execute(
        self,
        aggregate_id: UUID,
        context: CommandContext,
        command: Command[TAggregate],
        expected_version: int | None,
    ) -> AppendResult:
        key = str(aggregate_id)
        for attempt in range(1, self._attempts + 1):
            recorded = self._store.outcome_of(key, context.request_id)
            if recorded is not None:
                return AppendResult(key, recorded.version, replayed=True)
            # Taken out of the cache: while the command runs, nobody else may see it half-done.
            current = self._cache.pop(aggregate_id, None) or await self.get(aggregate_id)
            version = current.version if current is not None else 0
            if expected_version is not None and expected_version != version:
                self._remember(aggregate_id, current)
                raise ConcurrencyError(key, expected_version, version)
            changed = command(current)
            events = changed.collect_events()
            if not events:
                self._remember(aggregate_id, changed)
                return AppendResult(key, version)
            envelopes = [
                build_envelope(event=e, catalog=self._catalog, context=context, source=self._source)
                for e in events
            ]
            patient_id = self._patient_of(changed)
            for envelope in envelopes:
                envelope.patient_id = patient_id
            # Before the append: with Vault away this raises and nothing is written.
            await self._cipher.encrypt_all(envelopes)
            try:
                result = await self._store.append(key, version, envelopes)
            except ConcurrencyError:
                if expected_version is not None or attempt == self._attempts:
                    raise
                continue
            self._remember(aggregate_id, changed)
            await self._maybe_snapshot(changed, version, result.version)
            return result
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _remember(self, aggregate_id: UUID, aggregate: TAggregate | None) -> None:
        if aggregate is None:
            return
        self._cache[aggregate_id] = aggregate
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def _maybe_snapshot(self, aggregate: TAggregate, before: int, after: int) -> None:
        if after // self._snapshot_every > before // self._snapshot_every:
            version, state = snapshot_to_bytes(aggregate)
            key = str(aggregate.id)
            # Encrypted like the events: shredded with the patient.
            state = await self._cipher.encrypt_snapshot(
                self._patient_of(aggregate), key, version, state
            )
            self._store.save_snapshot(key, version, state)
