"""In-memory implementations of the application's ports, for unit tests (no servers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from clinical_platform.eventlog.context import CommandContext
from clinical_platform.eventlog.errors import ConcurrencyError
from clinical_platform.eventlog.repository import Command
from clinical_platform.eventlog.writer import AppendResult
from patient.domain.demographics import PatientDemographics
from patient.domain.golden_record import GoldenRecord
from patient.domain.patient import Patient
from patient.matching.blocking import blocking_keys
from patient.matching.matcher import Candidate
from patient.matching.record import match_record
from patient.ports import PatientSearch, PatientView, ReviewItem


@dataclass
class InMemoryPatients:
    """The repository's contract: load, run the command, record once per request id."""

    aggregates: dict[UUID, Patient] = field(default_factory=dict)
    outcomes: dict[tuple[UUID, str], int] = field(default_factory=dict)
    events: list[tuple[UUID, str]] = field(default_factory=list)

    async def get(self, aggregate_id: UUID) -> Patient | None:
        return self.aggregates.get(aggregate_id)

    def evict(self, aggregate_id: UUID) -> None:
        return None

    async def execute(
        self,
        aggregate_id: UUID,
        context: CommandContext,
        command: Command[Patient],
        *,
        expected_version: int | None = None,
    ) -> AppendResult:
        recorded = self.outcomes.get((aggregate_id, context.request_id))
        if recorded is not None:
            return AppendResult(str(aggregate_id), recorded, replayed=True)
        current = self.aggregates.get(aggregate_id)
        version = current.version if current is not None else 0
        if expected_version is not None and expected_version != version:
            raise ConcurrencyError(str(aggregate_id), expected_version, version)
        changed = command(current)
        self.events += [(aggregate_id, type(e).__name__) for e in changed.collect_events()]
        self.aggregates[aggregate_id] = changed
        self.outcomes[(aggregate_id, context.request_id)] = changed.version
        return AppendResult(str(aggregate_id), changed.version)


@dataclass
class InMemoryIndex:
    """The read model, kept up to date by hand (``add``) instead of by a projection."""

    records: dict[UUID, PatientDemographics] = field(default_factory=dict)

    def add(self, patient_id: UUID, demographics: PatientDemographics) -> None:
        self.records[patient_id] = demographics

    async def candidates(
        self, blocking_keys_: Sequence[str], *, exclude: UUID | None = None
    ) -> list[Candidate]:
        wanted = set(blocking_keys_)
        return [
            Candidate(patient_id, demographics)
            for patient_id, demographics in self.records.items()
            if patient_id != exclude and wanted & set(blocking_keys(match_record(demographics)))
        ]

    async def patient(
        self, patient_id: UUID, *, min_version: int, timeout_s: float
    ) -> PatientView | None:
        demographics = self.records.get(patient_id)
        if demographics is None:
            return None
        return PatientView(str(patient_id), 1, demographics, False, ())

    async def golden_record_of(self, patient_id: UUID) -> GoldenRecord | None:
        return None

    async def search(self, query: PatientSearch) -> list[PatientView]:
        return []

    async def review_queue(self, limit: int) -> list[ReviewItem]:
        return []


@dataclass
class InMemoryKeys:
    """The keyring's forgetting, recorded instead of destroying anything."""

    forgotten: list[str] = field(default_factory=list)

    async def forget(self, patient_id: str) -> None:
        self.forgotten.append(patient_id)
