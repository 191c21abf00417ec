"""Observations: what a laboratory reports, how it is checked, and how its value is interpreted.

Interpretation follows HL7 ObservationInterpretation: below the test's critical low limit is
``LL``, above its critical high limit ``HH`` (both critical); otherwise ``L``/``H`` outside the
reference range and ``N`` inside it. Limits are exclusive: a value equal to a limit is within it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from clinical_platform.terminology import loinc_problem, ucum_problem
from clinical_platform.validation import FieldViolation
from results.domain.errors import InvalidResult

MAX_OBSERVATIONS = 50
MAX_TEXT_CHARS = 2000


class Interpretation(StrEnum):
    NORMAL = "N"
    LOW = "L"
    HIGH = "H"
    CRITICAL_LOW = "LL"
    CRITICAL_HIGH = "HH"

    @property
    def critical(self) -> bool:
        return self in (Interpretation.CRITICAL_LOW, Interpretation.CRITICAL_HIGH)


@dataclass(frozen=True)
class Quantity:
    """A measured value and its UCUM unit."""

    value: Decimal
    unit: str


@dataclass(frozen=True)
class Coding:
    """A coded value, e.g. a SNOMED CT finding such as an organism."""

    system: str
    code: str
    display: str


@dataclass(frozen=True)
class ReferenceRange:
    """Normal limits in the quantity's unit; None is no limit on that side."""

    low: Decimal | None
    high: Decimal | None


@dataclass(frozen=True)
class CriticalLimits:
    """Values beyond these call for immediate clinical attention."""

    low: Decimal | None
    high: Decimal | None


@dataclass(frozen=True)
class TestDefinition:
    """A catalogued test: its unit (None for a qualitative test), default range, critical limits."""

    code: str
    display: str
    unit: str | None
    reference_range: ReferenceRange | None
    critical_limits: CriticalLimits | None


class TestCatalogue(Protocol):
    """The tests results can be posted for."""

    def find(self, code: str) -> TestDefinition | None: ...


@dataclass(frozen=True)
class ReportedObservation:
    """An observation as the laboratory reports it: a code, a value, perhaps its own range."""

    code: str
    value: Quantity | Coding | str
    reference_range: ReferenceRange | None = None


@dataclass(frozen=True)
class Observation:
    """An observation as recorded: exactly one of quantity, coded and text is set."""

    code: str
    display: str
    quantity: Quantity | None
    coded: Coding | None
    text: str | None
    reference_range: ReferenceRange | None
    interpretation: Interpretation | None


def interpret(
    value: Decimal, reference_range: ReferenceRange | None, critical: CriticalLimits | None
) -> Interpretation | None:
    """The interpretation of a quantity; None when there is nothing to compare it with."""
    if critical is not None:
        if critical.low is not None and value < critical.low:
            return Interpretation.CRITICAL_LOW
        if critical.high is not None and value > critical.high:
            return Interpretation.CRITICAL_HIGH
    if reference_range is None or (reference_range.low is None and reference_range.high is None):
        return None
    if reference_range.low is not None and value < reference_range.low:
        return Interpretation.LOW
    if reference_range.high is not None and value > reference_range.high:
        return Interpretation.HIGH
    return Interpretation.NORMAL


def record_observations(
    reported: Sequence[ReportedObservation], catalogue: TestCatalogue
) -> tuple[Observation, ...]:
    """Check every reported observation and interpret it; InvalidResult lists all problems."""
    violations: list[FieldViolation] = []
    if not reported:
        violations.append(FieldViolation("observations", "must hold at least one observation"))
    if len(reported) > MAX_OBSERVATIONS:
        violations.append(FieldViolation("observations", f"must be at most {MAX_OBSERVATIONS}"))
    recorded: list[Observation] = []
    seen: set[str] = set()
    for index, observation in enumerate(reported):
        field = f"observations[{index}]"
        test = catalogue.find(observation.code)
        problems = _problems(observation, test, seen)
        violations += [FieldViolation(f"{field}{path}", text) for path, text in problems]
        seen.add(observation.code)
        if test is not None and not problems:
            recorded.append(_recorded(observation, test))
    if violations:
        raise InvalidResult(violations)
    return tuple(recorded)


def _problems(
    observation: ReportedObservation, test: TestDefinition | None, seen: set[str]
) -> list[tuple[str, str]]:
    problem = loinc_problem(observation.code)
    if problem:
        return [(".code", problem)]
    if test is None:
        return [(".code", "is not in the test catalogue")]
    problems: list[tuple[str, str]] = []
    if observation.code in seen:
        problems.append((".code", "appears more than once in the result"))
    value = observation.value
    if isinstance(value, Quantity):
        problems += _quantity_problems(value, test)
    elif isinstance(value, Coding):
        if not (value.system and value.code):
            problems.append((".coded", "must have a system and a code"))
    elif not value.strip() or len(value) > MAX_TEXT_CHARS:
        problems.append((".text", f"must be 1 to {MAX_TEXT_CHARS} characters"))
    limits = observation.reference_range
    if limits and limits.low is not None and limits.high is not None and limits.low > limits.high:
        problems.append((".reference_range", "must not have its low limit above its high limit"))
    return problems


def _quantity_problems(quantity: Quantity, test: TestDefinition) -> list[tuple[str, str]]:
    problems = []
    if not quantity.value.is_finite():
        problems.append((".quantity.value", "must be a finite decimal"))
    unit_problem = ucum_problem(quantity.unit)
    if test.unit is None:
        problems.append((".quantity", "is not allowed: the test reports a code or text"))
    elif unit_problem:
        problems.append((".quantity.unit", unit_problem))
    elif quantity.unit != test.unit:
        problems.append((".quantity.unit", f"must be {test.unit} for this test"))
    return problems


def _recorded(observation: ReportedObservation, test: TestDefinition) -> Observation:
    value = observation.value
    if not isinstance(value, Quantity):
        return Observation(
            code=test.code, display=test.display, quantity=None,
            coded=value if isinstance(value, Coding) else None,
            text=value if isinstance(value, str) else None,
            reference_range=None, interpretation=None,
        )  # fmt: skip
    reference_range = observation.reference_range or test.reference_range
    return Observation(
        code=test.code, display=test.display, quantity=value, coded=None, text=None,
        reference_range=reference_range,
        interpretation=interpret(value.value, reference_range, test.critical_limits),
    )  # fmt: skip
