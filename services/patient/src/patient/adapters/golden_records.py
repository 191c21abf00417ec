"""Golden records, computed when read from the links and records the projection keeps.

A linked set is a connected component of the active links. Its golden record's id is the lowest
member id, so the id is the same however the set was assembled. Nothing is stored: a stored
golden record had to be rewritten by the projection on every registration, update and link
(two reads and two writes per event),
while a read needs it only for the one set asked about.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from patient.adapters.documents import demographics_from
from patient.domain.golden_record import GoldenRecord, MemberRecord, golden_record

PATIENTS = "patients"
LINKS = "patient_links"


async def linked_set(db: AsyncDatabase[Any], patient_id: str) -> list[str]:
    """Every record connected to ``patient_id`` through active links, itself included.

    One equality query per record reached, in flight together: ``$in`` is not answered from
    an index by the local store (docs/read-models.md)."""
    seen = {patient_id}
    frontier = [patient_id]
    while frontier:
        links = await asyncio.gather(*(_active_links(db, member) for member in frontier))
        frontier = []
        for link in (link for of_member in links for link in of_member):
            for member in link["patient_ids"]:
                if member not in seen:
                    seen.add(member)
                    frontier.append(member)
    return sorted(seen)


async def _active_links(db: AsyncDatabase[Any], patient_id: str) -> list[dict[str, Any]]:
    return await db[LINKS].find({"patient_ids": patient_id, "active": True}).to_list()


async def golden_record_of(db: AsyncDatabase[Any], patient_id: str) -> GoldenRecord | None:
    """The golden record of the record's linked set; None when no member is recorded yet."""
    members = await linked_set(db, patient_id)
    documents = await asyncio.gather(*(db[PATIENTS].find_one({"_id": m}) for m in members))
    records = [
        MemberRecord(
            document["_id"],
            document["updated_at"],
            demographics_from(document["demographics"]),
            document["forgotten"],
        )
        for document in documents
        # A record whose registration is not applied yet (its links are) has no fields to offer.
        if document is not None and "demographics" in document
    ]
    if not records:
        return None
    # Members known only through links (their registration not yet applied) count too.
    return replace(
        golden_record(records), golden_record_id=members[0], member_patient_ids=tuple(members)
    )
