"""Blocking: several keys per record, so one typo never hides a duplicate."""

from dataclasses import replace

import pytest

from patient.domain.demographics import PatientDemographics, PatientName
from patient.matching.blocking import blocking_keys
from patient.matching.record import match_record

pytestmark = pytest.mark.unit


def _shared(first: PatientDemographics, second: PatientDemographics) -> set[str]:
    return set(blocking_keys(match_record(first))) & set(blocking_keys(match_record(second)))


@pytest.mark.parametrize(
    "change",
    [
        {"birth_date": "1961-04-21"},
        {"name": PatientName(given=("Margaret",), family="Julius")},
        {"name": PatientName(given=("Mary",), family="Thornton")},
        {"birth_date": ""},
    ],
)
def test_a_change_in_one_field_still_shares_a_key(
    margaret: PatientDemographics, change: dict[str, object]
) -> None:
    plain = replace(margaret, identifiers=(), phone="", email="")
    assert _shared(plain, replace(plain, **change))  # type: ignore[arg-type]


def test_a_typo_in_the_postal_code_still_shares_a_key(margaret: PatientDemographics) -> None:
    plain = replace(margaret, identifiers=(), phone="", email="")
    moved = replace(plain, address=replace(plain.address, postal_code="4013"))
    assert _shared(plain, moved)


def test_swapped_day_and_month_share_the_birth_date_key(margaret: PatientDemographics) -> None:
    swapped = replace(margaret, birth_date="1961-12-04")
    assert any(key.startswith("dob:") for key in _shared(margaret, swapped))


def test_identifiers_phone_and_email_are_keys_of_their_own(margaret: PatientDemographics) -> None:
    keys = blocking_keys(match_record(margaret))
    assert "id:urn:mrn:kedron-hospital|k123456" in keys
    assert any(key.startswith("ph:") for key in keys)
    assert "em:m.thornton@example.org" in keys
