"""The bundled catalogue of orderable laboratory tests."""

from __future__ import annotations

import pytest

from clinical_platform.terminology import loinc_problem
from orders.adapters.lab_test_catalogue import CsvLabTestCatalogue

pytestmark = pytest.mark.unit


def test_the_bundled_catalogue_holds_about_fifty_common_tests_with_valid_codes() -> None:
    catalogue = CsvLabTestCatalogue.bundled()

    assert len(catalogue) >= 50
    for code in ("2345-7", "718-7", "2160-0", "2823-3", "6690-2", "4548-4"):
        test = catalogue.find(code)
        assert test is not None
        assert loinc_problem(test.code) is None


def test_an_unknown_code_is_not_found() -> None:
    assert CsvLabTestCatalogue.bundled().find("1-8") is None


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ("2345-6,Glucose", "wrong LOINC check digit"),
        ("2345-7,", "has no display name"),
        ("2345-7,Glucose\n2345-7,Glucose again", "is a duplicate"),
    ],
)
def test_a_malformed_catalogue_stops_start_up_naming_the_line(rows: str, problem: str) -> None:
    with pytest.raises(ValueError, match=f"line [23]: the code .*{problem}"):
        CsvLabTestCatalogue.from_csv(f"code,display\n{rows}\n")
