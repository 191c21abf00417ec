"""Keeps the golden_records collection in step with links and record changes.

A linked set is a connected component of the active links. Its golden record's id is the lowest
member id, so the id is the same however the set was assembled; when sets merge or split, golden
records of the old shapes are removed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from patient.adapters.documents import demographics_document, demographics_from
from patient.domain.golden_record import GoldenRecord, MemberRecord, golden_record

PATIENTS = "patients"
LINKS = "patient_links"
GOLDEN_RECORDS = "golden_records"


async def linked_set(db: AsyncDatabase[Any], patient_id: str) -> list[str]:
    """Every record connected to ``patient_id`` through active links, itself included."""
    seen = {patient_id}
    frontier = [patient_id]
    while frontier:
        cursor = db[LINKS].find({"patient_ids": {"$in": frontier}, "active": True})
        frontier = []
        async for link in cursor:
            for member in link["patient_ids"]:
                if member not in seen:
                    seen.add(member)
                    frontier.append(member)
    return sorted(seen)


async def refresh_golden_records(db: AsyncDatabase[Any], patient_ids: Iterable[str]) -> None:
    done: set[str] = set()
    for patient_id in patient_ids:
        if patient_id in done:
            continue
        members = await linked_set(db, patient_id)
        done.update(members)
        records = [
            MemberRecord(
                document["_id"],
                document["updated_at"],
                demographics_from(document["demographics"]),
                document["forgotten"],
            )
            async for document in db[PATIENTS].find({"_id": {"$in": members}})
        ]
        golden = golden_record(records)
        golden_id = members[0]
        await db[GOLDEN_RECORDS].delete_many(
            {"member_patient_ids": {"$in": members}, "_id": {"$ne": golden_id}}
        )
        await db[GOLDEN_RECORDS].replace_one(
            {"_id": golden_id}, golden_document(golden, members), upsert=True
        )


def golden_document(golden: GoldenRecord, members: list[str]) -> dict[str, Any]:
    return {
        "_id": members[0],
        # Members known only through links (their registration not yet applied) count too.
        "member_patient_ids": members,
        "demographics": demographics_document(golden.demographics),
        "sources": {field: list(ids) for field, ids in sorted(golden.sources.items())},
    }


def golden_from(document: dict[str, Any]) -> GoldenRecord:
    return GoldenRecord(
        golden_record_id=document["_id"],
        member_patient_ids=tuple(document["member_patient_ids"]),
        demographics=demographics_from(document["demographics"]),
        sources={field: tuple(ids) for field, ids in document["sources"].items()},
    )
