"""Interpreting a quantity against its reference range and the test's critical limits."""

from __future__ import annotations

from decimal import Decimal

import pytest

from results.domain.observation import CriticalLimits, Interpretation, ReferenceRange, interpret

pytestmark = pytest.mark.unit

GLUCOSE_RANGE = ReferenceRange(Decimal(70), Decimal(99))
GLUCOSE_CRITICAL = CriticalLimits(Decimal(40), Decimal(500))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("85", Interpretation.NORMAL),
        ("70", Interpretation.NORMAL),  # limits are within the range
        ("99", Interpretation.NORMAL),
        ("69.9", Interpretation.LOW),
        ("99.1", Interpretation.HIGH),
        ("40", Interpretation.LOW),  # at the critical limit: abnormal, not critical
        ("39.9", Interpretation.CRITICAL_LOW),
        ("500", Interpretation.HIGH),
        ("500.1", Interpretation.CRITICAL_HIGH),
    ],
)
def test_a_glucose_value_is_interpreted_against_range_and_critical_limits(
    value: str, expected: Interpretation
) -> None:
    assert interpret(Decimal(value), GLUCOSE_RANGE, GLUCOSE_CRITICAL) is expected


def test_only_the_critical_interpretations_are_critical() -> None:
    assert {i for i in Interpretation if i.critical} == {
        Interpretation.CRITICAL_LOW,
        Interpretation.CRITICAL_HIGH,
    }


def test_a_one_sided_range_interprets_only_that_side() -> None:
    hdl = ReferenceRange(Decimal(40), None)
    assert interpret(Decimal(30), hdl, None) is Interpretation.LOW
    assert interpret(Decimal(300), hdl, None) is Interpretation.NORMAL


def test_without_a_range_only_critical_values_are_interpreted() -> None:
    assert interpret(Decimal(85), None, GLUCOSE_CRITICAL) is None
    assert interpret(Decimal(20), None, GLUCOSE_CRITICAL) is Interpretation.CRITICAL_LOW
    assert interpret(Decimal(85), ReferenceRange(None, None), None) is None
