"""The matcher's blocking index: every live record by blocking key, in this process's memory.

Registration matches against this index, not against the read model: it holds every record
committed on this replica (updated at commit, before the command returns) and those of the
other replicas' partitions (fed from the patient topic, adapters/candidate_feed.py). It is a
cache of the log, rebuilt from it at start, and it never touches disk: demographics are PHI.

Lookups are dictionary hits, one per blocking key, so their cost follows the size of the
buckets, not of the index. Each record keeps its normalised `MatchRecord`, computed once when
recorded, so scoring a candidate does not normalise it again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

from patient.domain.demographics import PatientDemographics
from patient.matching.blocking import blocking_keys
from patient.matching.matcher import Candidate
from patient.matching.record import match_record

MAX_CANDIDATES = 500
"""Blocking keeps candidate sets small; the cap keeps one pathological key from stalling a call."""


@dataclass(frozen=True)
class _Indexed:
    version: int
    keys: tuple[str, ...]
    candidate: Candidate


class CandidateIndex:
    """Live records by blocking key; forgotten records are dropped and stay out."""

    def __init__(self, max_candidates: int = MAX_CANDIDATES) -> None:
        self._max_candidates = max_candidates
        self._records: dict[UUID, _Indexed] = {}
        # Dicts as ordered sets: a bucket lists its records in the order they were recorded,
        # so the same history gives the same candidates in the same order (offline too).
        self._buckets: dict[str, dict[UUID, None]] = {}
        self._forgotten: set[UUID] = set()

    def __len__(self) -> int:
        return len(self._records)

    def record(self, patient_id: UUID, version: int, demographics: PatientDemographics) -> None:
        """Index the record's demographics as of ``version`` (an older version is ignored)."""
        known = self._records.get(patient_id)
        if patient_id in self._forgotten or (known is not None and known.version >= version):
            return
        features = match_record(demographics)
        keys = tuple(dict.fromkeys(blocking_keys(features)))
        if known is not None:
            self._unbucket(patient_id, known.keys)
        self._records[patient_id] = _Indexed(
            version, keys, Candidate(patient_id, demographics, features)
        )
        for key in keys:
            self._buckets.setdefault(key, {})[patient_id] = None

    def drop(self, patient_id: UUID) -> None:
        """Forget the record for good: a replay of its older events will not bring it back."""
        self._forgotten.add(patient_id)
        known = self._records.pop(patient_id, None)
        if known is not None:
            self._unbucket(patient_id, known.keys)

    def version_of(self, patient_id: UUID) -> int:
        """The version indexed for the record; 0 when absent."""
        known = self._records.get(patient_id)
        return known.version if known is not None else 0

    def lookup(self, keys: Iterable[str], *, exclude: UUID | None = None) -> list[Candidate]:
        """Records sharing at least one key, by key then by when they were recorded."""
        found: dict[UUID, None] = {}
        for key in keys:
            for patient_id in self._buckets.get(key, ()):
                if patient_id != exclude:
                    found[patient_id] = None
                    if len(found) >= self._max_candidates:
                        return self._candidates(found)
        return self._candidates(found)

    async def candidates(
        self, blocking_keys: Sequence[str], *, exclude: UUID | None = None
    ) -> list[Candidate]:
        """The application's CandidateSource port."""
        return self.lookup(blocking_keys, exclude=exclude)

    def _candidates(self, found: dict[UUID, None]) -> list[Candidate]:
        return [self._records[patient_id].candidate for patient_id in found]

    def _unbucket(self, patient_id: UUID, keys: Iterable[str]) -> None:
        for key in keys:
            bucket = self._buckets.get(key)
            if bucket is not None:
                bucket.pop(patient_id, None)
                if not bucket:
                    del self._buckets[key]
