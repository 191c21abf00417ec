"""PatientQueries: the patient service's queries of its read model.

A record now, at an earlier version or as of a time; searches, counts, listings and the review
queue. Each read that names a written version first checks the event store recorded it, then waits
for the read model to reach it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from uuid import UUID

from clinical_platform.reads import require_recorded
from patient.domain.errors import PatientNotFound
from patient.ports import (
    PatientIndex,
    PatientRecordView,
    PatientRepository,
    PatientSearch,
    PatientView,
    ReviewItem,
)


class PatientQueries:
    """The patient service's queries, independent of gRPC."""

    def __init__(self, patients: PatientRepository, index: PatientIndex) -> None:
        self._patients = patients
        self._index = index

    async def get_patient(
        self, patient_id: UUID, *, min_version: int, timeout_s: float, version: int = 0,
        as_of: datetime | None = None,
    ) -> PatientRecordView:  # fmt: skip
        """The record once the read model reached ``min_version``, with its golden record; or
        as it stood at ``version`` (its contents then, under that version) or at ``as_of``
        (the version current then), without a golden record (that is computed now).

        A forgotten record answers its marker whatever is asked: its versions are gone.
        """
        require_recorded(self._patients, patient_id, max(min_version, version),
                         "version" if version > min_version else "min_version")  # fmt: skip
        view = await self._index.patient(
            patient_id, min_version=max(min_version, version), timeout_s=timeout_s
        )
        if view is None:
            raise PatientNotFound(patient_id)
        if view.forgotten or (as_of is None and version in {0, view.version}):
            return PatientRecordView(view, await self._index.golden_record_of(patient_id))
        earlier = await self._index.earlier(patient_id, through=version, at=as_of)
        if earlier is None:
            raise PatientNotFound(patient_id)
        if version:
            # Events that show nothing (the match assessment) are versions of the aggregate:
            # at such a version the record shows what the version before it recorded.
            earlier = replace(earlier, version=version)
        return PatientRecordView(earlier, None)

    async def search_patients(
        self, query: PatientSearch, *, after: tuple[UUID, int] | None = None, timeout_s: float
    ) -> list[PatientView]:
        """Records meeting every criterion; ``after`` waits for a written record first."""
        if after is not None:
            require_recorded(self._patients, *after)
            await self._index.patient(after[0], min_version=after[1], timeout_s=timeout_s)
        return await self._index.search(query)

    async def count_patients(self, query: PatientSearch) -> int:
        """How many records meet every criterion (``search_patients`` answers one page)."""
        return await self._index.count(query)

    async def list_patients(
        self, *, after: str, limit: int, care_team_member: str = ""
    ) -> list[PatientView]:
        """Records not forgotten, by id, after ``after`` (on ``care_team_member``'s team)."""
        return await self._index.listed(after=after, limit=limit,
                                        care_team_member=care_team_member)  # fmt: skip

    async def review_queue(self, limit: int = 100) -> list[ReviewItem]:
        """The POSSIBLE_MATCH pairs waiting for a registrar, highest score first."""
        return await self._index.review_queue(limit)
