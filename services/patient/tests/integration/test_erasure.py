"""Erasure always completes: a PatientForgotten on the log whose key survived (the process
died, or Vault failed, between the append and the destruction) is repaired by the key
shredder that follows the patient topic, on the real broker and Vault."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import hvac
import pytest
from clinical_testing.endpoints import ServerEndpoints

from clinical_platform.eventlog.context import Actor, CommandContext
from clinical_platform.eventlog.repository import AggregateRepository
from clinical_platform.security.vault_adapters import KvWrappedKeyStore
from patient.adapters.event_catalog import PATIENT_EVENTS
from patient.domain.patient import Patient

PatientUnderTest = Any  # conftest's PatientUnderTest: the running service and its stub
Register = Callable[..., Coroutine[Any, Any, Any]]  # conftest's register fixture

pytestmark = pytest.mark.integration


async def test_a_forgotten_patients_surviving_key_is_destroyed_by_the_shredder(
    patient_service: PatientUnderTest, register: Register, servers: ServerEndpoints
) -> None:
    registered = await register()
    patient_id = uuid.UUID(registered.patient_id)
    keys = KvWrappedKeyStore(
        hvac.Client(url=servers.vault_addr, token=servers.vault_token),
        patient_service.settings.vault_key_store_mount,
    )
    assert keys.read(registered.patient_id) is not None

    # Only the append, as if the process died before destroying the key.
    running = patient_service.running
    repository = AggregateRepository(
        running.store, PATIENT_EVENTS, source="//clinical/test", cipher=running.cipher,
        patient_of=lambda patient: str(patient.id),
    )  # fmt: skip
    await repository.execute(
        patient_id, CommandContext(Actor("registrar"), str(uuid.uuid4())), _forget
    )

    await _eventually(lambda: asyncio.to_thread(keys.read, registered.patient_id), None)
    assert keys.is_forgotten(registered.patient_id)


def _forget(patient: Patient | None) -> Patient:
    assert patient is not None
    patient.forget(reason="erasure request")
    return patient


async def _eventually(read: Callable[[], Coroutine[Any, Any, object]], wanted: object) -> None:
    for _ in range(300):
        if await read() == wanted:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never became {wanted!r}")
