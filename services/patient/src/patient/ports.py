"""The ports the application needs from the outside; adapters/ implements them over MongoDB."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from uuid import UUID

from clinical_platform.eventlog.context import CommandContext
from clinical_platform.eventlog.repository import Command
from clinical_platform.eventlog.writer import AppendResult
from patient.domain.golden_record import GoldenRecord
from patient.domain.patient import Patient
from patient.matching.matcher import Candidate
from patient.views import PatientSearch, PatientView, ReviewItem


class ReadModelBehind(Exception):  # noqa: N818 - a state, not a failure of the caller
    """The read model did not reach the version asked for within the time allowed."""


class PatientRepository(Protocol):
    """Loads and records Patient aggregates (the kernel's AggregateRepository)."""

    async def get(self, aggregate_id: UUID) -> Patient | None: ...

    def evict(self, aggregate_id: UUID) -> None:
        """Forget the cached aggregate (after its patient's key was destroyed)."""
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

    async def search(self, query: PatientSearch) -> list[PatientView]: ...

    async def review_queue(self, limit: int) -> list[ReviewItem]: ...
