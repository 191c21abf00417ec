"""PatientApp on in-memory ports: registration, matching decisions, links, retries."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from uuid import UUID, uuid4

import pytest

from clinical_platform.eventlog.appends import AppendResult
from clinical_platform.eventlog.context import Actor, CommandContext
from clinical_platform.eventlog.errors import ConcurrencyError
from clinical_platform.eventlog.repository import Command
from clinical_platform.reads import VersionNotRecorded
from patient.application import PatientApp
from patient.domain.assessment import MatchGrade
from patient.domain.demographics import PatientDemographics, PatientName
from patient.domain.errors import InvalidDemographics, PatientNotFound
from patient.domain.golden_record import GoldenRecord
from patient.domain.patient import Patient
from patient.matching.blocking import blocking_keys
from patient.matching.matcher import Candidate, Matcher
from patient.matching.record import match_record
from patient.ports import PatientSearch, PatientView, ReviewItem

pytestmark = pytest.mark.unit


def _context(request_id: str) -> CommandContext:
    return CommandContext(actor=Actor("registrar-1", ("registrar",)), request_id=request_id)


@pytest.fixture
def index() -> InMemoryIndex:
    return InMemoryIndex()


@pytest.fixture
def patients() -> InMemoryPatients:
    return InMemoryPatients()


@pytest.fixture
def app(patients: InMemoryPatients, index: InMemoryIndex) -> PatientApp:
    return PatientApp(patients, index, Matcher(), InMemoryKeys(), today=lambda: date(2025, 6, 1))


async def test_a_first_registration_is_no_match_and_records_its_decision(
    app: PatientApp, patients: InMemoryPatients, margaret: PatientDemographics
) -> None:
    registration = await app.register_patient(_context("r1"), margaret)
    assert registration.assessment.outcome is MatchGrade.NO_MATCH
    assert registration.version == 2
    assert [name for _, name in patients.events] == ["PatientRegistered", "PatientMatchAssessed"]


async def test_a_duplicate_is_matched_and_linked_on_the_pair_anchor(
    app: PatientApp, index: InMemoryIndex, patients: InMemoryPatients,
    margaret: PatientDemographics,
) -> None:  # fmt: skip
    first = await app.register_patient(_context("r1"), margaret)
    index.add(first.patient_id, margaret)
    retyped = replace(margaret, name=PatientName(given=("Peggy",), family="Thornton"))
    second = await app.register_patient(_context("r2"), retyped)
    assert second.assessment.outcome is MatchGrade.MATCH
    assert second.linked_patient_ids == (first.patient_id,)
    anchor = min((first.patient_id, second.patient_id), key=str)
    assert patients.aggregates[anchor].linked_patient_ids == (
        max((first.patient_id, second.patient_id), key=str),
    )


async def test_a_read_for_a_version_the_log_does_not_hold_is_refused_without_waiting(
    app: PatientApp, index: InMemoryIndex, margaret: PatientDemographics
) -> None:
    registered = await app.register_patient(_context("r1"), margaret)
    index.add(registered.patient_id, margaret)
    # Far longer than any test: an answer at all means the read did not wait.
    wait_s = 600.0

    with pytest.raises(VersionNotRecorded):
        await app.get_patient(
            registered.patient_id, min_version=registered.version + 1, timeout_s=wait_s
        )
    with pytest.raises(VersionNotRecorded):
        await app.search_patients(
            PatientSearch(family_name="Thornton"), after=(uuid4(), 1), timeout_s=wait_s
        )
    record = await app.get_patient(
        registered.patient_id, min_version=registered.version, timeout_s=wait_s
    )
    assert record.patient.patient_id == str(registered.patient_id)


async def test_a_retried_registration_returns_the_first_outcome_and_records_nothing(
    app: PatientApp, index: InMemoryIndex, patients: InMemoryPatients,
    margaret: PatientDemographics,
) -> None:  # fmt: skip
    first = await app.register_patient(_context("r1"), margaret)
    index.add(first.patient_id, margaret)
    duplicate = await app.register_patient(_context("r2"), margaret)
    recorded = len(patients.events)
    retried = await app.register_patient(_context("r2"), margaret)
    assert retried == duplicate
    assert len(patients.events) == recorded


async def test_another_caller_reusing_a_request_id_registers_a_record_of_their_own(
    app: PatientApp, patients: InMemoryPatients, margaret: PatientDemographics
) -> None:
    stranger = replace(margaret, name=PatientName(given=("Ivo",), family="Quist"), email="")
    mine = await app.register_patient(_context("shared-key"), margaret)
    other_desk = CommandContext(actor=Actor("registrar-2", ("registrar",)), request_id="shared-key")

    theirs = await app.register_patient(other_desk, stranger)

    assert theirs.patient_id != mine.patient_id
    assert patients.aggregates[theirs.patient_id].demographics == stranger
    assert patients.aggregates[mine.patient_id].demographics == margaret


async def test_a_possible_match_is_recorded_but_not_linked(
    app: PatientApp, index: InMemoryIndex, margaret: PatientDemographics
) -> None:
    first = await app.register_patient(_context("r1"), margaret)
    index.add(first.patient_id, margaret)
    daughter = replace(
        margaret, name=PatientName(given=("Chloe",), family="Thornton"), birth_date="1990-08-30",
        identifiers=(), phone="", email="",
    )  # fmt: skip
    second = await app.register_patient(_context("r2"), daughter)
    assert second.assessment.outcome is MatchGrade.POSSIBLE_MATCH
    assert second.linked_patient_ids == ()


async def test_invalid_demographics_record_nothing(
    app: PatientApp, patients: InMemoryPatients, margaret: PatientDemographics
) -> None:
    with pytest.raises(InvalidDemographics):
        await app.register_patient(_context("r1"), replace(margaret, birth_date="1961-02-30"))
    assert patients.events == []


async def test_updating_an_unknown_record_is_not_found(
    app: PatientApp, margaret: PatientDemographics
) -> None:
    with pytest.raises(PatientNotFound):
        await app.update_demographics(_context("u1"), uuid4(), margaret)


async def test_logs_never_carry_names_or_birth_dates(
    app: PatientApp, index: InMemoryIndex, phi_margaret: PatientDemographics,
    phi_values: tuple[str, ...], caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    demographics = phi_margaret
    first = await app.register_patient(_context("r1"), demographics)
    index.add(first.patient_id, demographics)
    second = await app.register_patient(_context("r2"), demographics)
    assert second.linked_patient_ids == (first.patient_id,)  # the duplicate logged its link too
    logged = caplog.text + " ".join(str(vars(r)) for r in caplog.records)
    for value in phi_values:
        assert value not in logged


async def test_forgetting_again_with_a_new_request_id_destroys_the_key_again(
    patients: InMemoryPatients, index: InMemoryIndex, margaret: PatientDemographics
) -> None:
    keys = InMemoryKeys()
    app = PatientApp(patients, index, Matcher(), keys, today=lambda: date(2025, 6, 1))
    registered = await app.register_patient(_context("r1"), margaret)

    first = await app.forget_patient(_context("f1"), registered.patient_id, reason="request")
    # Say the key's destruction failed after the append: the caller retries with a new id.
    again = await app.forget_patient(_context("f2"), registered.patient_id, reason="request")

    assert again == first
    assert keys.forgotten == [str(registered.patient_id)] * 2
    assert [name for _, name in patients.events].count("PatientForgotten") == 1


# In-memory fakes of the application's ports (no servers).


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

    def current_version(self, aggregate_id: UUID) -> int:
        current = self.aggregates.get(aggregate_id)
        return current.version if current is not None else 0

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

    async def earlier(
        self, patient_id: UUID, *, through: int = 0, at: datetime | None = None
    ) -> PatientView | None:
        return None

    async def search(self, query: PatientSearch) -> list[PatientView]:
        return []

    async def count(self, query: PatientSearch) -> int:
        return 0

    async def listed(
        self, *, after: str, limit: int, care_team_member: str = ""
    ) -> list[PatientView]:
        return []

    async def review_queue(self, limit: int) -> list[ReviewItem]:
        return []


@dataclass
class InMemoryKeys:
    """The keyring's forgetting, recorded instead of destroying anything."""

    forgotten: list[str] = field(default_factory=list)

    async def forget(self, patient_id: str) -> None:
        self.forgotten.append(patient_id)
