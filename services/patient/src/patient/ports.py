"""The ports the application needs from the outside, and the values they speak.

adapters/ implements them over Kafka, MongoDB and Vault. The kernel types below are part of
the ports' contract: what a command carries (`CommandContext`), what an append returns, and
what the repository raises (`NotPartitionOwnerError`, `PatientForgottenError`) or the index
(`ReadModelBehind`); the application takes them from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from clinical_platform.eventlog.appends import AppendResult
from clinical_platform.eventlog.context import CommandContext
from clinical_platform.eventlog.errors import NotPartitionOwnerError
from clinical_platform.eventlog.repository import Command
from clinical_platform.reads import ReadModelBehind
from clinical_platform.security.errors import PatientForgottenError
from patient.domain.demographics import PatientDemographics, PatientIdentifier
from patient.domain.golden_record import GoldenRecord
from patient.domain.patient import Patient
from patient.matching.matcher import Candidate

__all__ = [
    "CandidateSource",
    "CommandContext",
    "CommittedRecords",
    "NotPartitionOwnerError",
    "PatientForgottenError",
    "PatientIndex",
    "PatientKeys",
    "PatientRecordView",
    "PatientRepository",
    "PatientSearch",
    "PatientView",
    "ReadModelBehind",
    "ReviewItem",
]


@dataclass(frozen=True)
class PatientView:
    """A record as the read model holds it."""

    patient_id: str
    version: int
    demographics: PatientDemographics
    forgotten: bool
    linked_patient_ids: tuple[str, ...]
    # When the contents shown were recorded (None in a read model from before versions).
    recorded_at: datetime | None = None


@dataclass(frozen=True)
class PatientRecordView:
    """A record and the golden record of its linked set."""

    patient: PatientView
    golden_record: GoldenRecord | None


@dataclass(frozen=True)
class PatientSearch:
    """Criteria are combined with AND; names compare normalised, nicknames included."""

    family_name: str = ""
    given_name: str = ""
    birth_date: str = ""
    identifier: PatientIdentifier | None = None
    limit: int = 50
    # Match each record as it stood at this instant (None: as it stands now).
    as_of: datetime | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.family_name or self.given_name or self.birth_date or self.identifier)


@dataclass(frozen=True)
class ReviewItem:
    """A POSSIBLE_MATCH waiting for a registrar: the new record, the candidate, the evidence."""

    pair_id: str
    patient_id: str
    candidate_patient_id: str
    score: float


class PatientRepository(Protocol):
    """Loads and records Patient aggregates (the kernel's AggregateRepository)."""

    async def get(self, aggregate_id: UUID) -> Patient | None: ...

    def evict(self, aggregate_id: UUID) -> None:
        """Forget the cached aggregate (after its patient's key was destroyed)."""
        ...

    def current_version(self, aggregate_id: UUID) -> int:
        """The recorded version (0: none), read without opening any payload."""
        ...

    async def execute(
        self,
        aggregate_id: UUID,
        context: CommandContext,
        command: Command[Patient],
        *,
        expected_version: int | None = None,
    ) -> AppendResult: ...


class PatientKeys(Protocol):
    """The patients' data keys (the kernel's PatientKeyring): forgetting destroys one."""

    async def forget(self, patient_id: str) -> None: ...


class CandidateSource(Protocol):
    """Blocking: records sharing at least one blocking key (forgotten records excluded)."""

    async def candidates(
        self, blocking_keys: Sequence[str], *, exclude: UUID | None = None
    ) -> list[Candidate]: ...


class CommittedRecords(CandidateSource, Protocol):
    """The matcher's blocking index, told of every record this replica commits."""

    def record(self, patient_id: UUID, version: int, demographics: PatientDemographics) -> None:
        """Index the record as of ``version`` (an older version than the one held is ignored)."""
        ...

    def drop(self, patient_id: UUID) -> None:
        """The patient is forgotten: out of the index for good."""
        ...


class PatientIndex(CandidateSource, Protocol):
    """The patient read model: records, golden records and the review queue."""

    async def patient(
        self, patient_id: UUID, *, min_version: int, timeout_s: float
    ) -> PatientView | None:
        """The record once at ``min_version`` or later; None when absent (with min_version 0).

        Raises ReadModelBehind when the version is not reached within ``timeout_s``.
        """
        ...

    async def golden_record_of(self, patient_id: UUID) -> GoldenRecord | None: ...

    async def earlier(
        self, patient_id: UUID, *, through: int = 0, at: datetime | None = None
    ) -> PatientView | None:
        """The last version of the record's contents up to version ``through``, or recorded by
        ``at``; None when there is none (not recorded yet then, or forgotten)."""
        ...

    async def search(self, query: PatientSearch) -> list[PatientView]: ...

    async def count(self, query: PatientSearch) -> int:
        """How many records ``search`` would find without its limit."""
        ...

    async def listed(
        self, *, after: str, limit: int, care_team_member: str = ""
    ) -> list[PatientView]:
        """Records not forgotten with ids after ``after``, by id (only those with
        ``care_team_member`` on their care team, when given)."""
        ...

    async def review_queue(self, limit: int) -> list[ReviewItem]: ...
