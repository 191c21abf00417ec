"""PatientApp: one method per command and query of the patient service.

Commands load the aggregate from the event store, call the domain, append, and return the new
version. Registration first asks the blocking index for candidates, lets the matcher decide,
records the decision with the registration, then records a link for every MATCH. The blocking
index (`CommittedRecords`) learns each committed record before the command returns, so the next
registration is matched against it; the read model, which may lag, serves queries only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from uuid import UUID

from patient.domain.assessment import LinkBasis, MatchAssessment, MatchCandidate
from patient.domain.demographics import PatientDemographics
from patient.domain.errors import PatientForgotten, PatientNotFound, PatientsAlreadyLinked
from patient.domain.identity import link_request_id, patient_id_for
from patient.domain.patient import Patient, anchor_of
from patient.matching.blocking import blocking_keys
from patient.matching.matcher import Matcher
from patient.matching.record import match_record
from patient.ports import (
    CandidateSource,
    CommandContext,
    CommittedRecords,
    NotPartitionOwnerError,
    PatientForgottenError,
    PatientIndex,
    PatientKeys,
    PatientRepository,
)
from patient.queries import PatientQueries

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registration:
    patient_id: UUID
    version: int
    assessment: MatchAssessment
    linked_patient_ids: tuple[UUID, ...]


@dataclass(frozen=True)
class LinkOutcome:
    anchor_patient_id: UUID
    version: int


def today_utc() -> date:
    return datetime.now(UTC).date()


class PatientApp(PatientQueries):
    """The patient service's use cases, independent of gRPC; its queries are `PatientQueries`."""

    def __init__(
        self,
        patients: PatientRepository,
        index: PatientIndex,
        matcher: Matcher,
        keys: PatientKeys,
        today: Callable[[], date] = today_utc,
        *,
        blocking: CommittedRecords | None = None,
    ) -> None:
        super().__init__(patients, index)
        self._keys = keys
        # Without a blocking index of its own (unit tests), candidates come from the index.
        self._blocking = blocking
        self._candidates: CandidateSource = blocking if blocking is not None else index
        self._matcher = matcher
        self._today = today

    async def register_patient(
        self, context: CommandContext, demographics: PatientDemographics
    ) -> Registration:
        """Register a record, match it against the index, link every MATCH automatically."""
        patient_id = patient_id_for(context.actor.subject, context.request_id)
        existing = await self._load(patient_id)
        if existing is not None and existing.match_assessment is not None:
            # A retry: answer with the first decision and finish any link it did not record.
            assessment = existing.match_assessment
            version = existing.version
        else:
            Patient.register(patient_id, demographics, today=self._today())  # validate first
            candidates = await self._candidates.candidates(
                blocking_keys(match_record(demographics)), exclude=patient_id
            )
            assessment = self._matcher.assess(demographics, candidates)

            def register(_: Patient | None) -> Patient:
                patient = Patient.register(patient_id, demographics, today=self._today())
                patient.record_match_assessment(assessment)
                return patient

            version = (await self._patients.execute(patient_id, context, register)).version
        if self._blocking is not None:
            self._blocking.record(patient_id, version, demographics)
        linked = []
        for match in assessment.matches:
            outcome = await self._link_automatically(context, patient_id, match)
            if outcome is not None:
                linked.append(match.patient_id)
                if outcome.anchor_patient_id == patient_id:
                    version = max(version, outcome.version)
        logger.info(
            "patient registered",
            extra={"patient_id": str(patient_id), "version": version,
                   "outcome": assessment.outcome.value, "linked": len(linked)},
        )  # fmt: skip
        return Registration(patient_id, version, assessment, tuple(linked))

    async def _link_automatically(
        self, context: CommandContext, patient_id: UUID, match: MatchCandidate
    ) -> LinkOutcome | None:
        link_context = replace(
            context,
            request_id=link_request_id(context.request_id, match.patient_id),
            causation_id=context.causation_id or context.request_id,
        )
        try:
            return await self.link_patients(
                link_context, patient_id, match.patient_id,
                basis=LinkBasis.AUTOMATIC, score=match.score,
            )  # fmt: skip
        except (PatientsAlreadyLinked, PatientForgotten, PatientNotFound) as skipped:
            # Linked on an earlier attempt, or the candidate changed since it was blocked.
            why = type(skipped).__name__
            logger.info(
                "automatic link skipped",
                extra={"patient_id": str(patient_id), "candidate_id": str(match.patient_id),
                       "why": why},
            )  # fmt: skip
            return None

    async def update_demographics(
        self,
        context: CommandContext,
        patient_id: UUID,
        demographics: PatientDemographics,
        *,
        expected_version: int | None = None,
    ) -> int:
        """Replace the record's demographics; returns the new version."""

        def update(patient: Patient | None) -> Patient:
            patient = _existing(patient, patient_id)
            patient.update_demographics(demographics, today=self._today())
            return patient

        result = await self._patients.execute(
            patient_id, context, update, expected_version=expected_version
        )
        if self._blocking is not None:
            self._blocking.record(patient_id, result.version, demographics)
        return result.version

    async def link_patients(
        self,
        context: CommandContext,
        patient_id: UUID,
        other_patient_id: UUID,
        *,
        basis: LinkBasis = LinkBasis.MANUAL,
        score: float = 0.0,
    ) -> LinkOutcome:
        """Record that two records are the same person, on the pair's anchor."""
        anchor, other = anchor_of(patient_id, other_patient_id)
        await self._require_live(other)

        def link(patient: Patient | None) -> Patient:
            patient = _existing(patient, anchor)
            patient.link(other, basis=basis, score=score)
            return patient

        result = await self._patients.execute(anchor, context, link)
        return LinkOutcome(anchor, result.version)

    async def unlink_patients(
        self, context: CommandContext, patient_id: UUID, other_patient_id: UUID, *, reason: str
    ) -> LinkOutcome:
        """Reverse a link; recorded on the pair's anchor."""
        anchor, other = anchor_of(patient_id, other_patient_id)

        def unlink(patient: Patient | None) -> Patient:
            patient = _existing(patient, anchor)
            patient.unlink(other, reason=reason)
            return patient

        result = await self._patients.execute(anchor, context, unlink)
        return LinkOutcome(anchor, result.version)

    async def forget_patient(
        self, context: CommandContext, patient_id: UUID, *, reason: str
    ) -> int:
        """Record the right to erasure, then shred: destroy the patient's data key.

        PatientForgotten is appended first, so the log tells every consumer to evict the key;
        the key goes second. Forgetting is idempotent: any later call, whatever its request
        id, destroys the key again (a no-op once it is gone) and answers the recorded version,
        so a failure in between is repaired by a retry, and by the key shredder that follows
        the log (`ForgottenPatients` on the patient topic) even without one.
        """

        def forget(patient: Patient | None) -> Patient:
            patient = _existing(patient, patient_id)
            patient.forget(reason=reason)
            return patient

        try:
            version = (await self._patients.execute(patient_id, context, forget)).version
        except (PatientForgotten, PatientForgottenError):
            # Already forgotten (the key may or may not be gone yet): finish the erasure.
            version = self._patients.current_version(patient_id)
        if self._blocking is not None:
            self._blocking.drop(patient_id)
        await self._keys.forget(str(patient_id))
        # The cached aggregate must not outlive the key.
        self._patients.evict(patient_id)
        return version

    async def find_matches(
        self, demographics: PatientDemographics, *, exclude: UUID | None = None, limit: int
    ) -> list[MatchCandidate]:
        """Score the blocked candidates against ``demographics``, explained field by field."""
        candidates = await self._candidates.candidates(
            blocking_keys(match_record(demographics)), exclude=exclude
        )
        return self._matcher.rank(demographics, candidates)[:limit]

    async def find_matches_for(
        self, patient_id: UUID, *, min_version: int, timeout_s: float, limit: int
    ) -> list[MatchCandidate]:
        """Score the candidates of a recorded patient (the record itself excluded)."""
        record = await self.get_patient(patient_id, min_version=min_version, timeout_s=timeout_s)
        if record.patient.forgotten:
            raise PatientForgotten(patient_id)
        return await self.find_matches(record.patient.demographics, exclude=patient_id, limit=limit)

    async def _load(self, patient_id: UUID) -> Patient | None:
        try:
            return await self._patients.get(patient_id)
        except PatientForgottenError:
            # Its events are encrypted under the destroyed key: nothing left to load.
            raise PatientForgotten(patient_id) from None

    async def _require_live(self, patient_id: UUID) -> None:
        try:
            patient = await self._load(patient_id)
        except NotPartitionOwnerError:
            # Another replica writes it: the read model is the next best witness.
            view = await self._index.patient(patient_id, min_version=0, timeout_s=0)
            if view is None:
                raise PatientNotFound(patient_id) from None
            if view.forgotten:
                raise PatientForgotten(patient_id) from None
            return
        if _existing(patient, patient_id).forgotten:
            raise PatientForgotten(patient_id)


def _existing(patient: Patient | None, patient_id: UUID) -> Patient:
    if patient is None:
        raise PatientNotFound(patient_id)
    return patient
