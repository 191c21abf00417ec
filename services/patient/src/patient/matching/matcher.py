"""Score record pairs (deterministic rules, then Fellegi-Sunter weights) and grade them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from patient.domain.assessment import FieldComparison, MatchAssessment, MatchCandidate, MatchGrade
from patient.domain.demographics import PatientDemographics
from patient.matching.comparators import (
    DISAGREE,
    EXACT,
    PHONETIC,
    SIMILAR,
    compare_birth_date,
    compare_code,
    compare_exact,
    compare_name,
    compare_place,
    compare_tokens,
)
from patient.matching.model import DEFAULT_MODEL, MATCHER_VERSION, NAME_SWAPPED, MatchModel
from patient.matching.record import MatchRecord, match_record

SAME_IDENTIFIER = "same-identifier"
HOUSEHOLD_ONLY = "household-only"
"""A high score from the address alone (given name and birth date both disagree): review it.

Address fields are not independent evidence (one household shares all of them), so without
this rule a parent and child at one address would add up to a MATCH.
"""

FieldLevels = dict[str, str | None]


@dataclass(frozen=True)
class Thresholds:
    """Scores at or above ``match`` link automatically; at or above ``review`` are queued."""

    match: float = 20.0
    review: float = 8.0


@dataclass(frozen=True)
class Candidate:
    """An existing record offered by blocking."""

    patient_id: UUID
    demographics: PatientDemographics
    # The normalised demographics when the source keeps them (it spares normalising again).
    record: MatchRecord | None = None


def compare_records(first: MatchRecord, second: MatchRecord) -> FieldLevels:
    """The comparator level of every field; None where either value is missing."""
    levels: FieldLevels = {
        "given_name": compare_name(first.given, second.given),
        "family_name": compare_name(first.family, second.family),
        "birth_date": compare_birth_date(first.birth, second.birth),
        "sex": compare_exact(first.sex, second.sex),
        "street_number": compare_exact(first.street_number, second.street_number),
        "address": compare_tokens(first.address_tokens, second.address_tokens),
        "city": compare_place(first.city, second.city),
        "district": compare_exact(first.district, second.district),
        "postal_code": compare_code(first.postal_code, second.postal_code),
        "phone": compare_exact(first.phone, second.phone),
        "email": compare_exact(first.email, second.email),
        "identifier": _compare_identifiers(first, second),
    }
    if _names_swapped(first, second, levels):
        levels["given_name"] = levels["family_name"] = NAME_SWAPPED
    return levels


def _compare_identifiers(first: MatchRecord, second: MatchRecord) -> str | None:
    if first.identifiers & second.identifiers:
        return EXACT
    shared_systems = {s for s, _ in first.identifiers} & {s for s, _ in second.identifiers}
    # Different values from the same issuing system: evidence against, weighed by the model.
    return DISAGREE if shared_systems else None


def _names_swapped(first: MatchRecord, second: MatchRecord, levels: FieldLevels) -> bool:
    if levels["given_name"] not in (DISAGREE, PHONETIC) or levels["family_name"] not in (
        DISAGREE, PHONETIC,
    ):  # fmt: skip
        return False
    close = (EXACT, SIMILAR)
    return (
        compare_name(first.given, second.family) in close
        and compare_name(first.family, second.given) in close
    )


def _household_only(levels: FieldLevels) -> bool:
    return levels["given_name"] == DISAGREE and levels["birth_date"] == DISAGREE


class Matcher:
    """Grades candidates against a record with one model and one pair of thresholds."""

    def __init__(
        self, model: MatchModel = DEFAULT_MODEL, thresholds: Thresholds = Thresholds()
    ) -> None:
        self.model = model
        self.thresholds = thresholds

    def score(self, levels: FieldLevels) -> tuple[float, tuple[FieldComparison, ...]]:
        """Sum of log2(m/u) over present fields, and each field's share of it."""
        fields = tuple(
            FieldComparison(field, level, round(self.model[field].weight(level), 3))
            if level is not None
            else FieldComparison(field, "missing", 0.0)
            for field, level in levels.items()
        )
        return round(sum(f.weight for f in fields), 3), fields

    def grade(self, subject: MatchRecord, patient_id: UUID, other: MatchRecord) -> MatchCandidate:
        levels = compare_records(subject, other)
        score, fields = self.score(levels)
        rule = SAME_IDENTIFIER if levels["identifier"] == EXACT else ""
        if rule or (score >= self.thresholds.match and not _household_only(levels)):
            grade = MatchGrade.MATCH
        elif score >= self.thresholds.match:
            rule = HOUSEHOLD_ONLY
            grade = MatchGrade.POSSIBLE_MATCH
        elif score >= self.thresholds.review:
            grade = MatchGrade.POSSIBLE_MATCH
        else:
            grade = MatchGrade.NO_MATCH
        return MatchCandidate(patient_id, score, grade, rule, fields)

    def rank(
        self, subject: PatientDemographics, candidates: Iterable[Candidate]
    ) -> list[MatchCandidate]:
        """Every candidate graded, best first (MATCH, then by score)."""
        record = match_record(subject)
        graded = [
            self.grade(
                record,
                c.patient_id,
                c.record if c.record is not None else match_record(c.demographics),
            )
            for c in candidates
        ]
        order = list(MatchGrade)
        return sorted(graded, key=lambda c: (order.index(c.grade), -c.score, str(c.patient_id)))

    def assess(
        self, subject: PatientDemographics, candidates: Iterable[Candidate]
    ) -> MatchAssessment:
        """The registration decision: the candidates worth recording and the best grade."""
        ranked = self.rank(subject, candidates)
        kept = tuple(c for c in ranked if c.grade is not MatchGrade.NO_MATCH)
        return MatchAssessment(
            outcome=kept[0].grade if kept else MatchGrade.NO_MATCH,
            candidates=kept,
            candidates_compared=len(ranked),
            match_threshold=self.thresholds.match,
            review_threshold=self.thresholds.review,
            matcher_version=MATCHER_VERSION,
        )
