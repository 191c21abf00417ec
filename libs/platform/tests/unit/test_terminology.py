"""Syntax checks of clinical codes: LOINC check digits, ICD-10 shape, SNOMED CT Verhoeff, UCUM."""

from __future__ import annotations

import pytest

from clinical_platform.terminology import (
    icd10_problem,
    loinc_problem,
    snomed_concept_problem,
    ucum_problem,
    verhoeff_valid,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("code", ["2345-7", "718-7", "2160-0", "17861-6", "94500-6", "600-7"])
def test_published_loinc_codes_pass(code: str) -> None:
    assert loinc_problem(code) is None


@pytest.mark.parametrize("code", ["2345-6", "718-8", "2160-1"])
def test_a_loinc_code_with_a_wrong_check_digit_is_refused(code: str) -> None:
    assert loinc_problem(code) == "has a wrong LOINC check digit"


@pytest.mark.parametrize("code", ["", "2345", "2345-", "-7", "2345-77", "23a5-7", "12345678-9"])
def test_a_malformed_loinc_code_is_refused_without_repeating_it(code: str) -> None:
    problem = loinc_problem(code)
    assert problem is not None
    assert problem.startswith("must be a LOINC code")


@pytest.mark.parametrize("code", ["E11.9", "I10", "C4A.0", "J45.909", "U07.1", "S72.001A"])
def test_icd10_codes_pass(code: str) -> None:
    assert icd10_problem(code) is None


@pytest.mark.parametrize("code", ["", "e11.9", "E1", "11.9", "E11.", "E11.12345", "E11 9"])
def test_malformed_icd10_codes_are_refused(code: str) -> None:
    assert icd10_problem(code) is not None


@pytest.mark.parametrize("code", ["44054006", "38341003", "195967001", "386661006"])
def test_snomed_ct_concept_ids_pass(code: str) -> None:
    assert snomed_concept_problem(code) is None


def test_a_snomed_ct_id_with_a_wrong_check_digit_is_refused() -> None:
    assert snomed_concept_problem("44054007") == "has a wrong SNOMED CT (Verhoeff) check digit"


def test_a_snomed_ct_id_of_a_description_is_not_a_concept() -> None:
    # Partition digits "01" mark a description id; take one with a valid check digit.
    description = next(
        f"12345601{check}" for check in "0123456789" if verhoeff_valid(f"12345601{check}")
    )
    assert snomed_concept_problem(description) == "is a SNOMED CT identifier, but not of a concept"


@pytest.mark.parametrize("code", ["", "12345", "044054006", "4405400x", "1" * 19])
def test_malformed_snomed_ct_ids_are_refused(code: str) -> None:
    assert snomed_concept_problem(code) is not None


def test_verhoeff_detects_every_single_digit_error_and_adjacent_transposition() -> None:
    valid = "236"  # the textbook example: check digit 6 for 23
    assert verhoeff_valid(valid)
    assert not any(verhoeff_valid(f"{d}36") for d in "013456789")
    assert not verhoeff_valid("326")


@pytest.mark.parametrize("unit", ["mg/dL", "10*3/uL", "m[IU]/L", "mL/min/{1.73_m2}", "%", "1"])
def test_ucum_units_pass(unit: str) -> None:
    assert ucum_problem(unit) is None


@pytest.mark.parametrize("unit", ["", "mg /dL", "m[IU/L", "mL/min/{1.73_m2", "µg/L"])
def test_malformed_ucum_units_are_refused(unit: str) -> None:
    assert ucum_problem(unit) is not None
