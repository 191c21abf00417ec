"""The patient read model's queries: the application's PatientIndex port over MongoDB."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from pymongo.asynchronous.database import AsyncDatabase

from clinical_platform.care.relationships import CARE_RELATIONSHIPS, CARE_TEAM
from clinical_platform.projections import wait_for_version
from patient.adapters.documents import demographics_from, given_terms, identifier_term
from patient.adapters.golden_records import LINKS, PATIENTS, golden_record_of
from patient.adapters.patient_versions import PATIENT_VERSIONS, versions_of
from patient.adapters.projection import REVIEW_QUEUE
from patient.domain.golden_record import GoldenRecord
from patient.matching.matcher import Candidate
from patient.matching.normalize import compact
from patient.ports import PatientSearch, PatientView, ReadModelBehind, ReviewItem

# Blocking keeps candidate sets small; the cap keeps one pathological key from stalling a call.
MAX_CANDIDATES = 500


class MongoPatientIndex:
    """Reads the collections `PatientIndexProjection` writes."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self._db = db

    async def candidates(
        self, blocking_keys: Sequence[str], *, exclude: UUID | None = None
    ) -> list[Candidate]:
        if not blocking_keys:
            return []
        query: dict[str, Any] = {"blocking_keys": {"$in": list(blocking_keys)}, "forgotten": False}
        if exclude is not None:
            query["_id"] = {"$ne": str(exclude)}
        cursor = self._db[PATIENTS].find(query, {"demographics": 1}).limit(MAX_CANDIDATES)
        return [
            Candidate(UUID(document["_id"]), demographics_from(document["demographics"]))
            async for document in cursor
        ]

    async def patient(
        self, patient_id: UUID, *, min_version: int, timeout_s: float
    ) -> PatientView | None:
        document = await wait_for_version(
            self._db[PATIENTS], str(patient_id), min_version, timeout_s=timeout_s
        )
        if document is None:
            if min_version > 0:
                raise ReadModelBehind(min_version)
            return None
        return await self._view(document)

    async def golden_record_of(self, patient_id: UUID) -> GoldenRecord | None:
        return await golden_record_of(self._db, str(patient_id))

    async def earlier(
        self, patient_id: UUID, *, through: int = 0, at: datetime | None = None
    ) -> PatientView | None:
        criteria: dict[str, Any] = {"_id": versions_of(str(patient_id), through=through or None)}
        if at is not None:
            criteria["recorded_at"] = {"$lte": at}
        document = await self._db[PATIENT_VERSIONS].find_one(criteria, sort=[("_id", -1)])
        return None if document is None else _version_view(document)

    async def search(self, query: PatientSearch) -> list[PatientView]:
        criteria = _criteria(query)
        if query.as_of is not None:
            cursor = self._db[PATIENT_VERSIONS].find(criteria).sort("_id", 1).limit(query.limit)
            return [_version_view(document) async for document in cursor]
        cursor = self._db[PATIENTS].find(criteria).sort("_id", 1).limit(query.limit)
        return [await self._view(document) async for document in cursor]

    async def count(self, query: PatientSearch) -> int:
        collection = PATIENTS if query.as_of is None else PATIENT_VERSIONS
        return await self._db[collection].count_documents(_criteria(query))

    async def listed(
        self, *, after: str, limit: int, care_team_member: str = ""
    ) -> list[PatientView]:
        criteria: dict[str, Any] = {"forgotten": False, "_id": {"$gt": after}}
        if care_team_member:
            relationships = self._db[CARE_RELATIONSHIPS].find(
                {"subject": care_team_member, "basis": CARE_TEAM, "active": True},
                {"patient_id": 1},
            )  # fmt: skip
            members = sorted({str(r["patient_id"]) async for r in relationships})
            criteria["_id"]["$in"] = [m for m in members if m > after]
        cursor = self._db[PATIENTS].find(criteria).sort("_id", 1).limit(limit)
        return [await self._view(document) async for document in cursor]

    async def review_queue(self, limit: int) -> list[ReviewItem]:

        cursor = (
            self._db[REVIEW_QUEUE]
            .find({"queued": True, "resolution": {"$exists": False}})
            .sort("score", -1)
            .limit(limit)
        )
        return [
            ReviewItem(d["_id"], d["patient_id"], d["candidate_patient_id"], d["score"])
            async for d in cursor
        ]

    async def _view(self, document: dict[str, Any]) -> PatientView:
        patient_id = document["_id"]
        linked = sorted(
            [
                other
                async for link in self._db[LINKS].find({"patient_ids": patient_id, "active": True})
                for other in link["patient_ids"]
                if other != patient_id
            ]
        )
        return PatientView(
            patient_id=patient_id,
            version=document["version"],
            demographics=demographics_from(document["demographics"]),
            forgotten=document["forgotten"],
            linked_patient_ids=tuple(linked),
            recorded_at=document.get("recorded_at", document.get("updated_at")),
        )


def _criteria(query: PatientSearch) -> dict[str, Any]:
    """The query's criteria on the search fields a record and each version hold."""
    criteria: dict[str, Any] = {}
    if query.as_of is None:
        criteria["forgotten"] = False
    else:
        # The version current at the instant: recorded by then, not superseded by then.
        criteria["recorded_at"] = {"$lte": query.as_of}
        criteria["$or"] = [{"valid_to": None}, {"valid_to": {"$gt": query.as_of}}]
    if query.family_name:
        criteria["search_family"] = compact(query.family_name)
    if given := sorted(given_terms(query.given_name)):
        # $eq on one term is what the store answers from the index; $all checks the rest.
        criteria["search_given"] = {"$eq": given[0], "$all": given}
    if query.birth_date:
        criteria["search_birth_date"] = query.birth_date
    if query.identifier is not None:
        criteria["search_identifiers"] = identifier_term(query.identifier)
    return criteria


def _version_view(document: dict[str, Any]) -> PatientView:
    return PatientView(
        patient_id=document["patient_id"],
        version=document["version"],
        demographics=demographics_from(document["demographics"]),
        forgotten=False,
        linked_patient_ids=tuple(document.get("linked_patient_ids", ())),
        recorded_at=document["recorded_at"],
    )
