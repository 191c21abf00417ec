"""Recording reported observations: catalogue, units, values, ranges; every problem listed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from results.adapters.lab_catalogue import CsvLabCatalogue
from results.domain.errors import InvalidResult
from results.domain.observation import (
    MAX_OBSERVATIONS,
    Coding,
    Interpretation,
    Quantity,
    ReferenceRange,
    ReportedObservation,
    record_observations,
)

pytestmark = pytest.mark.unit

CATALOGUE = CsvLabCatalogue.bundled()
GLUCOSE = "2345-7"
BLOOD_CULTURE = "600-7"
E_COLI = Coding("http://snomed.info/sct", "112283007", "Escherichia coli")


def glucose(
    value: str, unit: str = "mg/dL", limits: ReferenceRange | None = None
) -> ReportedObservation:
    return ReportedObservation(GLUCOSE, Quantity(Decimal(value), unit), limits)


def problems(*reported: ReportedObservation) -> list[tuple[str, str]]:
    with pytest.raises(InvalidResult) as refused:
        record_observations(reported, CATALOGUE)
    return [(v.field, v.description) for v in refused.value.violations]


def test_a_quantity_gets_the_catalogue_name_range_and_interpretation() -> None:
    (recorded,) = record_observations([glucose("35")], CATALOGUE)

    assert recorded.display == "Glucose [Mass/volume] in Serum or Plasma"
    assert recorded.quantity == Quantity(Decimal(35), "mg/dL")
    assert recorded.reference_range == ReferenceRange(Decimal(70), Decimal(99))
    assert recorded.interpretation is Interpretation.CRITICAL_LOW
    assert (recorded.coded, recorded.text) == (None, None)


def test_the_laboratorys_own_reference_range_wins_over_the_catalogues() -> None:
    own = ReferenceRange(Decimal(60), Decimal(140))
    (recorded,) = record_observations([glucose("120", limits=own)], CATALOGUE)
    assert (recorded.reference_range, recorded.interpretation) == (own, Interpretation.NORMAL)


def test_coded_and_text_values_are_recorded_without_interpretation() -> None:
    coded, text = record_observations(
        [
            ReportedObservation(BLOOD_CULTURE, E_COLI),
            ReportedObservation("5778-6", "straw-coloured, clear"),
        ],
        CATALOGUE,
    )
    assert (coded.coded, coded.interpretation, coded.quantity) == (E_COLI, None, None)
    assert (text.text, text.reference_range) == ("straw-coloured, clear", None)


def test_a_result_needs_an_observation() -> None:
    assert problems() == [("observations", "must hold at least one observation")]


def test_a_result_holds_at_most_fifty_observations() -> None:
    assert ("observations", f"must be at most {MAX_OBSERVATIONS}") in problems(
        *(glucose("85") for _ in range(MAX_OBSERVATIONS + 1))
    )


def test_codes_must_be_loinc_and_catalogued() -> None:
    found = problems(
        ReportedObservation("GLU", Quantity(Decimal(1), "mg/dL")),
        ReportedObservation("2345-6", Quantity(Decimal(1), "mg/dL")),
        ReportedObservation("1-8", Quantity(Decimal(1), "mg/dL")),
    )
    assert [field for field, _ in found] == [f"observations[{i}].code" for i in range(3)]
    assert found[0][1].startswith("must be a LOINC code")
    assert [description for _, description in found[1:]] == [
        "has a wrong LOINC check digit",
        "is not in the test catalogue",
    ]


def test_a_code_appears_once_per_result() -> None:
    assert problems(glucose("85"), glucose("86")) == [
        ("observations[1].code", "appears more than once in the result")
    ]


def test_a_quantity_must_be_in_the_catalogues_unit() -> None:
    assert problems(glucose("4.7", unit="mmol/L")) == [
        ("observations[0].quantity.unit", "must be mg/dL for this test")
    ]


def test_a_quantity_needs_a_ucum_unit() -> None:
    assert problems(glucose("85", unit="mg per dL")) == [
        (
            "observations[0].quantity.unit",
            "must be a UCUM unit: 1 to 64 printable ASCII characters, no spaces",
        )
    ]


def test_a_quantity_must_be_finite() -> None:
    assert problems(glucose("NaN")) == [
        ("observations[0].quantity.value", "must be a finite decimal")
    ]


def test_a_qualitative_test_takes_no_quantity() -> None:
    reported = ReportedObservation(BLOOD_CULTURE, Quantity(Decimal(1), "1"))
    assert problems(reported) == [
        ("observations[0].quantity", "is not allowed: the test reports a code or text")
    ]


@pytest.mark.parametrize("text", ["", "   ", "x" * 2001])
def test_a_text_value_has_1_to_2000_characters(text: str) -> None:
    assert problems(ReportedObservation("5778-6", text)) == [
        ("observations[0].text", "must be 1 to 2000 characters")
    ]


def test_a_coded_value_needs_a_system_and_a_code() -> None:
    reported = ReportedObservation(BLOOD_CULTURE, Coding("", "112283007", "E. coli"))
    assert problems(reported) == [("observations[0].coded", "must have a system and a code")]


def test_a_reference_range_must_not_be_upside_down() -> None:
    upside_down = ReferenceRange(Decimal(100), Decimal(60))
    assert problems(glucose("85", limits=upside_down)) == [
        ("observations[0].reference_range", "must not have its low limit above its high limit")
    ]


def test_every_problem_of_every_observation_is_listed() -> None:
    fields = [field for field, _ in problems(glucose("85", unit="g/L"), glucose("NaN"))]
    assert fields == [
        "observations[0].quantity.unit",
        "observations[1].code",
        "observations[1].quantity.value",
    ]
