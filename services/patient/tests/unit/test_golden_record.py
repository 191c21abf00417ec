"""Golden records: the best value per field across a linked set, with its sources."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from patient.domain.demographics import PatientDemographics, PatientIdentifier, PatientName
from patient.domain.golden_record import MemberRecord, golden_record

pytestmark = pytest.mark.unit

EARLY = datetime(2024, 1, 1, tzinfo=UTC)
LATE = datetime(2025, 1, 1, tzinfo=UTC)


def test_the_value_most_records_agree_on_wins(margaret: PatientDemographics) -> None:
    typo = replace(margaret, name=PatientName(given=("Margret",), family="Thornton"))
    golden = golden_record(
        [MemberRecord("a", EARLY, margaret), MemberRecord("b", EARLY, margaret),
         MemberRecord("c", LATE, typo)]
    )  # fmt: skip
    assert golden.demographics.name == margaret.name
    assert golden.sources["name"] == ("a", "b")
    assert golden.member_patient_ids == ("a", "b", "c")
    assert golden.golden_record_id == "a"


def test_a_tie_goes_to_the_most_recently_updated_record(margaret: PatientDemographics) -> None:
    moved = replace(margaret, phone="07 3000 0000")
    golden = golden_record([MemberRecord("a", EARLY, margaret), MemberRecord("b", LATE, moved)])
    assert golden.demographics.phone == "07 3000 0000"
    assert golden.sources["phone"] == ("b",)


def test_empty_values_do_not_compete(margaret: PatientDemographics) -> None:
    golden = golden_record(
        [MemberRecord("a", EARLY, margaret), MemberRecord("b", LATE, replace(margaret, email=""))]
    )
    assert golden.demographics.email == margaret.email


def test_identifiers_are_collected_across_the_set(margaret: PatientDemographics) -> None:
    national = replace(margaret, identifiers=(PatientIdentifier("urn:national-id", "N1"),))
    golden = golden_record([MemberRecord("a", EARLY, margaret), MemberRecord("b", LATE, national)])
    assert {i.system for i in golden.demographics.identifiers} == {
        "urn:mrn:kedron-hospital", "urn:national-id",
    }  # fmt: skip


def test_forgotten_members_contribute_nothing(margaret: PatientDemographics) -> None:
    golden = golden_record(
        [MemberRecord("a", EARLY, PatientDemographics(), forgotten=True),
         MemberRecord("b", EARLY, replace(margaret, phone=""))]
    )  # fmt: skip
    assert golden.demographics.phone == ""
    assert "a" not in golden.sources["name"]
