"""The repository encrypts what it appends and snapshots, and shreds with the patient."""

from __future__ import annotations

import uuid

import pytest
from clinical_testing.counter import COUNTER_EVENTS, Counter, open_or_increment
from clinical_testing.eventlog import EventStoreFactory

from clinical_platform.eventlog.context import Actor, CommandContext
from clinical_platform.eventlog.repository import AggregateRepository
from clinical_platform.security import EnvelopeCipher, PatientForgottenError, PatientKeyring
from clinical_platform.security.payload_cipher import is_encrypted

pytestmark = pytest.mark.integration


async def test_events_and_snapshots_are_encrypted_and_unreadable_once_the_patient_is_forgotten(
    event_store: EventStoreFactory, vault_keyring: PatientKeyring
) -> None:
    store = await event_store()
    patient_id, other_patient = str(uuid.uuid4()), str(uuid.uuid4())
    owners: dict[uuid.UUID, str] = {}

    def patient_of(counter: Counter) -> str:
        return owners[counter.id]

    repo = AggregateRepository(
        store, COUNTER_EVENTS, source="//clinical/test",
        cipher=EnvelopeCipher(vault_keyring, creates_keys=True), patient_of=patient_of,
        snapshot_every=2,
    )  # fmt: skip
    forgotten_counter, kept_counter = uuid.uuid4(), uuid.uuid4()
    owners |= {forgotten_counter: patient_id, kept_counter: other_patient}
    for counter in (forgotten_counter, kept_counter):
        for i in range(3):
            context = CommandContext(actor=Actor("test"), request_id=f"{counter}-{i}")
            await repo.execute(counter, context, open_or_increment(counter))

    history = store.history(str(forgotten_counter))
    assert history.snapshot is not None
    assert not history.snapshot[1].startswith(b"{")  # not the plaintext JSON snapshot
    assert all(is_encrypted(e) and e.patient_id == patient_id for e in history.envelopes)

    await vault_keyring.forget(patient_id)
    repo.evict(forgotten_counter)

    with pytest.raises(PatientForgottenError):
        await repo.get(forgotten_counter)
    kept = await repo.get(kept_counter)
    assert kept is not None
    assert kept.version == 3
