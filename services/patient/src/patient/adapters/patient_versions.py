"""Every version of each record's contents, kept by the patient index projection:

    {_id: "<patient id>:<version, 20 digits>", version, patient_id, recorded_at, valid_to,
     demographics, search_* (as the current record), linked_patient_ids}

A version is an event that changes what a record shows: a registration, an update of its
demographics, a link or unlink it anchors. The match assessment and care-team changes show
nothing and leave no version. ``recorded_at`` is the event's time on the log, ``valid_to`` the
next version's (absent while current), so "the version current at an instant" is one range read
on ``_id`` and a search at an instant one query on the search fields. The versions of a record
sort by ``_id``; a forgotten patient's are deleted with the rest of their read model.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from clinical_platform.projections import VersionedChange, upsert_versioned

PATIENT_VERSIONS = "patient_versions"
# What a version holds of the record besides its search fields.
_CONTENTS = ("demographics", "linked_patient_ids")


def version_id(patient_id: str, version: int) -> str:
    return f"{patient_id}:{version:020d}"


def versions_of(patient_id: str, *, through: int | None = None) -> dict[str, Any]:
    """The ``_id`` range of a record's versions (up to ``through`` when given)."""
    end = {"$lte": version_id(patient_id, through)} if through else {"$lt": f"{patient_id};"}
    return {"$gte": f"{patient_id}:", **end}


def registered_version(
    patient_id: str, version: int, recorded_at: datetime, fields: dict[str, Any]
) -> VersionedChange:
    """The first version: nothing before it to read or close."""
    contents = {**_shown(fields), "patient_id": patient_id, "recorded_at": recorded_at,
                "linked_patient_ids": []}  # fmt: skip
    return VersionedChange(PATIENT_VERSIONS, version_id(patient_id, version), version, contents)


async def record_version(
    db: AsyncDatabase[Any],
    patient_id: str,
    version: int,
    recorded_at: datetime,
    *,
    fields: dict[str, Any] | None = None,
    linked: str = "",
    unlinked: str = "",
) -> None:
    """A later version: the one before it with ``fields`` replaced (an update) or a link added
    or removed, and the one before it closed at ``recorded_at``. Nothing without a version
    before it (the record's first events were never projected, e.g. a forgotten patient's)."""
    versions = db[PATIENT_VERSIONS]
    previous: dict[str, Any] | None = await versions.find_one(
        {"_id": {"$gte": f"{patient_id}:", "$lt": version_id(patient_id, version)}},
        sort=[("_id", -1)],
    )
    if previous is None:
        return
    contents = {**_shown(previous), **_shown(fields or {})}
    links = [p for p in previous.get("linked_patient_ids", []) if p != unlinked]
    contents["linked_patient_ids"] = sorted({*links, linked} - {""})
    contents.update(patient_id=patient_id, recorded_at=recorded_at)
    await upsert_versioned(versions, version_id(patient_id, version), version, contents)
    await versions.update_one({"_id": previous["_id"]}, {"$set": {"valid_to": recorded_at}})


async def forget_versions(db: AsyncDatabase[Any], patient_id: str) -> None:
    await db[PATIENT_VERSIONS].delete_many({"_id": versions_of(patient_id)})


def _shown(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k in _CONTENTS or k.startswith("search_")}
