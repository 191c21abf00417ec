"""Identity-matching decisions as the domain records them (patient.matching makes them)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID


class MatchGrade(StrEnum):
    """MATCH links automatically; POSSIBLE_MATCH goes to a registrar's review queue."""

    MATCH = "MATCH"
    POSSIBLE_MATCH = "POSSIBLE_MATCH"
    NO_MATCH = "NO_MATCH"


class LinkBasis(StrEnum):
    AUTOMATIC = "automatic"
    MANUAL = "manual"


@dataclass(frozen=True)
class FieldComparison:
    """How one field compared (the comparator's level) and its log2(m/u) weight."""

    field: str
    level: str
    weight: float


@dataclass(frozen=True)
class MatchCandidate:
    patient_id: UUID
    score: float
    grade: MatchGrade
    rule: str
    fields: tuple[FieldComparison, ...]


@dataclass(frozen=True)
class MatchAssessment:
    """The decision taken for one record against the blocked candidates."""

    outcome: MatchGrade
    candidates: tuple[MatchCandidate, ...]
    candidates_compared: int
    match_threshold: float
    review_threshold: float
    matcher_version: str

    @property
    def matches(self) -> tuple[MatchCandidate, ...]:
        return tuple(c for c in self.candidates if c.grade is MatchGrade.MATCH)
