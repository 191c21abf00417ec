"""Normalisation and nicknames: what makes two spellings of a value the same for matching."""

import pytest

from patient.domain.demographics import PatientDemographics, PatientName
from patient.matching.nicknames import formal_given_name
from patient.matching.normalize import compact, digits, fold
from patient.matching.record import match_record

pytestmark = pytest.mark.unit


def test_fold_drops_case_diacritics_and_punctuation() -> None:
    assert fold("  Zoë   O'Brien-Smith ") == "zoe o brien smith"
    assert fold("JOSÉ") == "jose"
    assert fold("Ångström") == "angstrom"


def test_compact_ignores_spaces_inside_names() -> None:
    assert compact("Van der Berg") == compact("vanderberg") == "vanderberg"


def test_digits_keeps_only_digits() -> None:
    assert digits("+61 (7) 3350-1234") == "61733501234"


@pytest.mark.parametrize(
    ("nickname", "formal"),
    [("bill", "william"), ("bob", "robert"), ("liz", "elizabeth"), ("peggy", "margaret")],
)
def test_common_nicknames_become_the_formal_name(nickname: str, formal: str) -> None:
    assert formal_given_name(nickname) == formal


def test_a_name_without_nickname_stays_itself() -> None:
    assert formal_given_name("lachlan") == "lachlan"


def test_match_record_normalises_given_names_through_nicknames() -> None:
    record = match_record(PatientDemographics(name=PatientName(given=("Bill", "Hugo"))))
    assert record.given == ("william", "hugo")


def test_match_record_keeps_the_last_nine_phone_digits() -> None:
    with_prefix = match_record(PatientDemographics(phone="+61 7 3350 1234"))
    local = match_record(PatientDemographics(phone="07 3350 1234"))
    assert with_prefix.phone == local.phone
