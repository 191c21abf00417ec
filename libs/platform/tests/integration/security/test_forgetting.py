"""Read models forget too: a forgotten patient's documents keep only a marker."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from clinical_platform.projections.changes import VersionedChange, write_changes
from clinical_platform.projections.documents import upsert_versioned
from clinical_platform.security.forgetting import forget_patient_documents, replace_with_marker

pytestmark = pytest.mark.integration

PHI = {"name": "Jane Q. Doe", "birth_date": "1984-03-12"}


async def test_forgetting_replaces_every_document_about_the_patient_and_no_other(
    mongo_database: AsyncDatabase[Any],
) -> None:
    patients = mongo_database["patients"]
    forgotten, kept = str(uuid.uuid4()), str(uuid.uuid4())
    for patient_id in (forgotten, kept):
        await upsert_versioned(patients, patient_id, 3, {**PHI, "patient_id": patient_id})

    assert await forget_patient_documents(patients, forgotten) == 1
    assert await forget_patient_documents(patients, forgotten) == 0  # already markers

    assert await patients.find_one({"_id": forgotten}) == {
        "_id": forgotten,
        "version": 3,
        "patient_id": forgotten,
        "forgotten": True,
    }
    assert (await patients.find_one({"_id": kept}) or {})["name"] == "Jane Q. Doe"


async def test_a_replayed_event_of_a_forgotten_patient_replaces_even_a_newer_document(
    mongo_database: AsyncDatabase[Any],
) -> None:
    orders = mongo_database["orders"]
    order, patient = str(uuid.uuid4()), str(uuid.uuid4())
    await upsert_versioned(orders, order, 5, {**PHI, "patient_id": patient})

    await replace_with_marker(orders, order, 2, patient)
    await replace_with_marker(orders, str(uuid.uuid4()), 1, patient)  # not projected yet

    document = await orders.find_one({"_id": order}) or {}
    assert "name" not in document
    assert (document["version"], document["forgotten"]) == (5, True)
    assert await orders.count_documents({"patient_id": patient, "forgotten": True}) == 2


async def test_a_lagging_projection_never_writes_phi_back_over_a_marker(
    mongo_database: AsyncDatabase[Any],
) -> None:
    orders = mongo_database["orders"]
    order, patient = str(uuid.uuid4()), str(uuid.uuid4())
    await upsert_versioned(orders, order, 2, {**PHI, "patient_id": patient})
    await replace_with_marker(orders, order, 2, patient)

    # Version 3 of the order, applied late by a projection that had not heard of the forget.
    written = await upsert_versioned(orders, order, 3, {**PHI, "patient_id": patient})
    batch_refused = await write_changes(
        mongo_database, [VersionedChange("orders", order, 4, {**PHI, "patient_id": patient})]
    )

    assert written is False
    assert batch_refused == set()  # "already applied", as far as the marker is concerned
    document = await orders.find_one({"_id": order}) or {}
    assert document == {"_id": order, "version": 2, "patient_id": patient, "forgotten": True}


async def test_a_newer_marker_carries_the_marker_to_the_patients_last_version(
    mongo_database: AsyncDatabase[Any],
) -> None:
    # A rebuild marks a forgotten record at its first (undecryptable) event, then meets the
    # later ones: the marker follows them, so live and rebuilt models agree and a reader
    # waiting for the forget's version sees it.
    patients = mongo_database["patients"]
    patient = str(uuid.uuid4())
    marker = {"patient_id": patient, "forgotten": True}
    await upsert_versioned(patients, patient, 1, marker)

    assert await upsert_versioned(patients, patient, 2, {**PHI, "patient_id": patient}) is False
    assert await upsert_versioned(patients, patient, 3, marker) is True

    document = await patients.find_one({"_id": patient}) or {}
    assert document == {"_id": patient, "version": 3, "patient_id": patient, "forgotten": True}
