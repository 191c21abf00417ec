"""The bundled catalogue of tests with units, reference ranges and critical limits."""

from __future__ import annotations

from decimal import Decimal

import pytest

from results.adapters.lab_catalogue import CatalogueError, CsvLabCatalogue
from results.domain.observation import CriticalLimits, ReferenceRange

pytestmark = pytest.mark.unit

HEADER = "code,display,unit,reference_low,reference_high,critical_low,critical_high"


def test_the_bundled_catalogue_defines_units_ranges_and_critical_limits() -> None:
    catalogue = CsvLabCatalogue.bundled()
    potassium = catalogue.find("2823-3")
    culture = catalogue.find("600-7")

    assert len(catalogue) >= 50
    assert potassium is not None
    assert potassium.unit == "mmol/L"
    assert potassium.reference_range == ReferenceRange(Decimal("3.5"), Decimal("5.1"))
    assert potassium.critical_limits == CriticalLimits(Decimal("2.8"), Decimal("6.2"))
    assert culture is not None
    assert (culture.unit, culture.reference_range, culture.critical_limits) == (None, None, None)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("2345-6,Glucose,mg/dL,70,99,40,500", "wrong LOINC check digit"),
        ("2345-7,Glucose,mg per dL,70,99,40,500", "must be a UCUM unit"),
        ("2345-7,,mg/dL,70,99,40,500", "no display name"),
        ("2345-7,Glucose,,70,99,,", "limits without a unit"),
        ("2345-7,Glucose,mg/dL,seventy,99,,", "line 2"),
    ],
)
def test_a_malformed_row_stops_start_up_naming_the_line(row: str, problem: str) -> None:
    with pytest.raises(CatalogueError, match=f"line 2: .*{problem}|{problem}"):
        CsvLabCatalogue.from_csv(f"{HEADER}\n{row}\n")


def test_a_duplicate_code_is_refused() -> None:
    row = "2345-7,Glucose,mg/dL,70,99,40,500"
    with pytest.raises(CatalogueError, match="line 3: duplicate code"):
        CsvLabCatalogue.from_csv(f"{HEADER}\n{row}\n{row}\n")
