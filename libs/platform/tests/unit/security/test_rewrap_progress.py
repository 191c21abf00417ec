"""`PatientKeyring.rewrap_all` tells an operator's progress display after every key."""

from __future__ import annotations

import uuid

import pytest
from clinical_testing.security import InMemoryKeyStore, InMemoryTransit

from clinical_platform.security.keys import PatientKeyring

pytestmark = pytest.mark.unit


async def test_rewrap_tells_its_progress_key_by_key_and_a_second_run_rewraps_nothing() -> None:
    keyring = PatientKeyring(InMemoryTransit(), InMemoryKeyStore())
    for _ in range(3):
        await keyring.get_or_create(str(uuid.uuid4()))
    await keyring.rotate_kek()
    told: list[tuple[int, int]] = []

    first = await keyring.rewrap_all(on_progress=lambda done, total: told.append((done, total)))
    again = await keyring.rewrap_all()

    assert told == [(1, 3), (2, 3), (3, 3)]
    assert (first.rewrapped, first.lowest_kek_version) == (3, 2)
    assert (again.rewrapped, again.already_current) == (0, 3)
