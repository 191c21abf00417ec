"""The Patient aggregate: one registered record, its identity decisions and the links it anchors.

A link between two records is a fact about the pair. It is recorded on the pair's *anchor*, the
record with the lower id, so that one aggregate serialises every decision about the pair and
"already linked" can be enforced without a distributed transaction.
"""

from __future__ import annotations

from datetime import date
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from patient.domain.assessment import LinkBasis, MatchAssessment, MatchCandidate, MatchGrade
from patient.domain.demographics import FORGOTTEN, PatientDemographics, violations
from patient.domain.errors import (
    CannotLinkToItself,
    InvalidDemographics,
    NotOnCareTeam,
    PatientForgotten,
    PatientsAlreadyLinked,
    PatientsNotLinked,
)


def anchor_of(first: UUID, second: UUID) -> tuple[UUID, UUID]:
    """(anchor, other) of a pair: the anchor, which records the pair's links, has the lower id."""
    if first == second:
        raise CannotLinkToItself
    return (first, second) if str(first) < str(second) else (second, first)


class Patient(Aggregate):
    """A patient record in the master patient index."""

    # Subjects of the clinicians on the care team. A class default: snapshots taken before
    # care teams existed restore without it.
    care_team: tuple[str, ...] = ()

    @classmethod
    def register(
        cls, patient_id: UUID, demographics: PatientDemographics, *, today: date
    ) -> Patient:
        _check(demographics, today)
        return cls(id=patient_id, demographics=demographics)

    @event("PatientRegistered")
    def __init__(self, id: UUID, demographics: PatientDemographics) -> None:
        self.demographics = demographics
        self.forgotten = False
        self.match_assessment: MatchAssessment | None = None
        self.linked_patient_ids: tuple[UUID, ...] = ()

    def update_demographics(self, demographics: PatientDemographics, *, today: date) -> None:
        self._refuse_if_forgotten()
        _check(demographics, today)
        self._record_demographics(demographics)

    @event("DemographicsUpdated")
    def _record_demographics(self, demographics: PatientDemographics) -> None:
        self.demographics = demographics

    def record_match_assessment(self, assessment: MatchAssessment) -> None:
        """Record the identity decision taken at registration, with its evidence."""
        self._record_assessment(
            outcome=assessment.outcome,
            candidates=assessment.candidates,
            candidates_compared=assessment.candidates_compared,
            match_threshold=assessment.match_threshold,
            review_threshold=assessment.review_threshold,
            matcher_version=assessment.matcher_version,
        )

    @event("PatientMatchAssessed")
    def _record_assessment(
        self,
        *,
        outcome: MatchGrade,
        candidates: tuple[MatchCandidate, ...],
        candidates_compared: int,
        match_threshold: float,
        review_threshold: float,
        matcher_version: str,
    ) -> None:
        self.match_assessment = MatchAssessment(
            outcome, candidates, candidates_compared, match_threshold, review_threshold,
            matcher_version,
        )  # fmt: skip

    def link(self, other: UUID, *, basis: LinkBasis, score: float) -> None:
        """Record that ``other`` is the same person; this record must be the pair's anchor."""
        self._refuse_if_forgotten()
        self._require_anchor_of(other)
        if other in self.linked_patient_ids:
            raise PatientsAlreadyLinked(self.id, other)
        self._record_link(linked_patient_id=other, basis=basis, score=score)

    @event("PatientsLinked")
    def _record_link(self, linked_patient_id: UUID, basis: LinkBasis, score: float) -> None:
        self.linked_patient_ids = (*self.linked_patient_ids, linked_patient_id)

    def unlink(self, other: UUID, *, reason: str) -> None:
        """Reverse a link this record anchors."""
        self._require_anchor_of(other)
        if other not in self.linked_patient_ids:
            raise PatientsNotLinked(self.id, other)
        self._record_unlink(linked_patient_id=other, reason=reason)

    @event("PatientsUnlinked")
    def _record_unlink(self, linked_patient_id: UUID, reason: str) -> None:
        self.linked_patient_ids = tuple(
            p for p in self.linked_patient_ids if p != linked_patient_id
        )

    def assign_care_team_member(self, member_subject: str) -> None:
        """Put a clinician on the care team (a care relationship); already there: no change."""
        self._refuse_if_forgotten()
        if member_subject not in self.care_team:
            self._record_care_team_member(member_subject=member_subject)

    @event("CareTeamMemberAssigned")
    def _record_care_team_member(self, member_subject: str) -> None:
        self.care_team = (*self.care_team, member_subject)

    def end_care_team_member(self, member_subject: str, *, reason: str) -> None:
        """Take a clinician off the care team: the relationship ends."""
        self._refuse_if_forgotten()
        if member_subject not in self.care_team:
            raise NotOnCareTeam
        self._record_care_team_end(member_subject=member_subject, reason=reason)

    @event("CareTeamMemberEnded")
    def _record_care_team_end(self, member_subject: str, reason: str) -> None:
        self.care_team = tuple(m for m in self.care_team if m != member_subject)

    def forget(self, *, reason: str) -> None:
        """Exercise the right to erasure; the record takes no further changes afterwards."""
        self._refuse_if_forgotten()
        self._record_forgotten(reason=reason)

    @event("PatientForgotten")
    def _record_forgotten(self, reason: str) -> None:
        self.forgotten = True
        self.demographics = FORGOTTEN

    def _refuse_if_forgotten(self) -> None:
        if self.forgotten:
            raise PatientForgotten(self.id)

    def _require_anchor_of(self, other: UUID) -> None:
        anchor, _ = anchor_of(self.id, other)
        if anchor != self.id:
            msg = f"links of this pair are recorded on {anchor}"
            raise ValueError(msg)


def _check(demographics: PatientDemographics, today: date) -> None:
    found = violations(demographics, today=today)
    if found:
        raise InvalidDemographics(found)
