"""What reads return: records as the read model holds them."""

from __future__ import annotations

from dataclasses import dataclass

from patient.domain.demographics import PatientDemographics, PatientIdentifier
from patient.domain.golden_record import GoldenRecord


@dataclass(frozen=True)
class PatientView:
    patient_id: str
    version: int
    demographics: PatientDemographics
    forgotten: bool
    linked_patient_ids: tuple[str, ...]


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
