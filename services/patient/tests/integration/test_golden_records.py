"""Golden records assembled from the store: members known only through their links count as
members, and contribute no fields until their registration is applied."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from patient.adapters.documents import demographics_document
from patient.adapters.golden_records import LINKS, PATIENTS, golden_record_of
from patient.domain.demographics import PatientDemographics, PatientName

pytestmark = pytest.mark.integration


async def test_a_member_whose_registration_is_not_applied_yet_is_a_member_without_fields(
    second_database: AsyncDatabase[Any],
) -> None:
    registered, pending = sorted(str(uuid.uuid4()) for _ in range(2))
    demographics = PatientDemographics(
        name=PatientName(family="Thornton", given=("Margaret",)), birth_date="1958-03-14"
    )
    await second_database[PATIENTS].insert_many(
        [
            {"_id": registered, "version": 2, "forgotten": False,
             "updated_at": datetime.now(UTC), "demographics": demographics_document(demographics)},
            # Its link was applied (another partition), its registration not yet: a version only.
            {"_id": pending, "version": 3},
        ]
    )  # fmt: skip
    await second_database[LINKS].insert_one(
        {"_id": f"{registered}:{pending}", "version": 3, "patient_ids": [registered, pending],
         "active": True}
    )  # fmt: skip

    golden = await golden_record_of(second_database, registered)

    assert golden is not None
    assert golden.member_patient_ids == (registered, pending)
    assert golden.golden_record_id == registered
    assert golden.demographics.name.family == "Thornton"
