"""Request limits: every cap a request breaks is a field violation, found without reading values.

The caps come from a service's declaration (by field name or full proto name) or the defaults;
enum numbers must be defined and Timestamps must lie in the years 0001-9999.
"""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from clinical.patient.v1 import patient_pb2
from clinical.results.v1 import results_pb2
from clinical_platform.limits import (
    DEFAULT_COUNT,
    EARLIEST_SECONDS,
    IDENTIFIER_CHARS,
    LATEST_SECONDS,
    RequestLimits,
    timestamp_in_range,
)
from clinical_platform.validation import FieldViolation, InvalidRequest, Violations

pytestmark = pytest.mark.unit

LIMITS = RequestLimits(
    chars={"text": 10, "clinical.results.v1.Coding.display": 5, "display": 50},
    counts={"observations": 3},
)


def _fields(violations: list[FieldViolation]) -> list[str]:
    return [violation.field for violation in violations]


def test_a_request_within_its_caps_breaks_none() -> None:
    request = results_pb2.PostResultRequest(request_id="r-1", order_id="o-1")
    request.observations.add(code="2823-3", text="x" * 10, display="y" * 50)

    assert LIMITS.violations(request) == []


def test_strings_are_capped_by_full_name_then_by_name_then_by_default() -> None:
    request = results_pb2.PostResultRequest(request_id="r" * (IDENTIFIER_CHARS + 1))
    request.observations.add(text="x" * 11, display="y" * 51)
    request.observations.add(coded=results_pb2.Coding(system="s", code="c", display="z" * 6))

    found = LIMITS.violations(request)

    assert _fields(found) == [
        "request_id",
        "observations[0].display",
        "observations[0].text",
        "observations[1].coded.display",
    ]
    assert found[0].description == f"must be at most {IDENTIFIER_CHARS} characters"
    assert found[3].description == "must be at most 5 characters"


def test_a_repeated_field_over_its_count_is_one_violation_and_its_values_are_not_read() -> None:
    request = results_pb2.PostResultRequest()
    for _ in range(4):
        request.observations.add(text="x" * 1000)
    defaults = patient_pb2.RegisterPatientRequest()
    defaults.demographics.name.given.extend(["Ann"] * (DEFAULT_COUNT + 1))

    assert LIMITS.violations(request) == [
        FieldViolation("observations", "must have at most 3 values")
    ]
    assert _fields(RequestLimits().violations(defaults)) == ["demographics.name.given"]


def test_an_enum_number_the_proto_does_not_define_is_refused() -> None:
    request = results_pb2.AmendResultRequest(kind=7)  # type: ignore[arg-type]
    request.observations.add(interpretation=-3)

    assert LIMITS.violations(request) == [
        FieldViolation("kind", "is not a known value"),
        FieldViolation("observations[0].interpretation", "is not a known value"),
    ]
    assert (
        LIMITS.violations(results_pb2.AmendResultRequest(kind=results_pb2.REVISION_KIND_CORRECTION))
        == []
    )


@pytest.mark.parametrize(
    ("seconds", "nanos", "valid"),
    [
        (EARLIEST_SECONDS, 0, True),
        (LATEST_SECONDS, 999_999_999, True),
        (0, 0, True),
        (EARLIEST_SECONDS - 1, 0, False),
        (LATEST_SECONDS + 1, 0, False),
        (0, -1, False),
        (0, 1_000_000_000, False),
        (2**63 - 1, 0, False),
    ],
)
def test_timestamps_lie_in_the_years_0001_to_9999(seconds: int, nanos: int, valid: bool) -> None:
    request = results_pb2.PostResultRequest(effective_at=Timestamp(seconds=seconds, nanos=nanos))

    assert timestamp_in_range(seconds, nanos) is valid
    assert LIMITS.violations(request) == (
        []
        if valid
        else [FieldViolation("effective_at", "must be a time in the years 0001 to 9999")]
    )


def test_check_raises_what_was_found_before_with_the_broken_caps_named_once() -> None:
    violations = Violations()
    violations.add("request_id", "must be 1 to 128 printable characters")
    request = results_pb2.PostResultRequest(request_id="r" * 200, order_id="o" * 200)

    with pytest.raises(InvalidRequest) as refused:
        LIMITS.check(request, violations)

    assert _fields(list(refused.value.violations)) == ["request_id", "order_id"]


def test_check_lets_a_request_within_its_caps_through() -> None:
    violations = Violations()
    violations.add("request_id", "must be 1 to 128 printable characters")

    LIMITS.check(results_pb2.PostResultRequest(order_id="o-1"), violations)

    assert _fields(violations) == ["request_id"]


def test_an_unknown_enum_is_safe_to_carry_and_refused_with_the_other_problems() -> None:
    request = results_pb2.AmendResultRequest(kind=7)  # type: ignore[arg-type]
    violations = Violations()

    LIMITS.check(request, violations)  # no raise: a number is safe to read on
    violations.add("result_id", "must be a lowercase hyphenated UUID")

    assert LIMITS.unsafe_violations(request) == []
    with pytest.raises(InvalidRequest) as refused:
        violations.raise_if_any()
    assert _fields(list(refused.value.violations)) == ["result_id", "kind"]


def test_a_translators_own_check_of_an_enum_says_it_instead() -> None:
    request = results_pb2.AmendResultRequest(kind=7)  # type: ignore[arg-type]
    violations = Violations()

    LIMITS.check(request, violations)
    violations.add("kind", "must be AMENDMENT or CORRECTION")

    with pytest.raises(InvalidRequest) as refused:
        violations.raise_if_any()
    assert refused.value.violations == (FieldViolation("kind", "must be AMENDMENT or CORRECTION"),)


def test_an_unsafe_request_raises_at_once_with_its_unknown_enums() -> None:
    request = results_pb2.AmendResultRequest(kind=7, reason="x" * 200)  # type: ignore[arg-type]

    with pytest.raises(InvalidRequest) as refused:
        LIMITS.check(request, Violations())

    assert _fields(list(refused.value.violations)) == ["reason", "kind"]
