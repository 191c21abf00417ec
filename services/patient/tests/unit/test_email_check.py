"""The email check is linear and capped first: the ReDoS of issue 13 is refused at once.

``"a@" + "." * n + "@"`` made the old regex backtrack quadratically (0.83 s at 8 KB, minutes at
100 KB, all on the event loop). The work of the new check is measured in operations, not time:
a profiler counts every Python and C call it makes, and that count must not grow with the
input, while no regex runs at all. Each call is one pass of a string primitive (partition,
split, isprintable, ``in``), so the whole check is linear in the length it is given, and the
cap means it is never given more than 254 characters.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from types import FrameType
from typing import Any

import pytest

from clinical.patient.v1 import patient_pb2 as pb
from clinical_platform.limits import EMAIL_CHARS
from clinical_platform.validation import InvalidRequest
from patient.domain import demographics as module
from patient.domain.demographics import PatientDemographics, email_problem, violations
from patient.entrypoints.translate import registration_from

pytestmark = pytest.mark.unit

TODAY = date(2025, 6, 1)


def redos(dots: int) -> str:
    return "a@" + "." * dots + "@"


def _operations(check: Callable[[str], object], text: str) -> tuple[int, list[str]]:
    """The calls ``check(text)`` makes (Python and C), and the regex methods among them."""
    calls: Counter[str] = Counter()
    regexes: list[str] = []

    def profile(_frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            calls["python"] += 1
        elif event == "c_call":
            calls["c"] += 1
            if isinstance(getattr(arg, "__self__", None), re.Pattern) or (
                getattr(arg, "__module__", "") == "re"
            ):
                regexes.append(arg.__name__)

    sys.setprofile(profile)
    try:
        check(text)
    finally:
        sys.setprofile(None)
    return sum(calls.values()), regexes


@pytest.mark.parametrize(
    "shape",
    [
        redos,
        lambda n: "a" * n + "@example.org",
        lambda n: "a@" + "b." * n + "org",
        lambda n: "a@" + "." * n,
    ],
    ids=["redos", "long-local-part", "many-labels", "dots"],
)
def test_the_syntax_check_does_no_more_operations_on_longer_input(
    shape: Callable[[int], str],
) -> None:
    # Past the cap, to show the check itself is linear, not only that the cap protects it.
    small, regexes = _operations(module._email_syntax_problem, shape(10))
    large, more_regexes = _operations(module._email_syntax_problem, shape(100_000))

    # No more calls for 10,000 times the input (fewer when a long part fails a check early).
    assert large <= small
    assert regexes == more_regexes == []


def test_an_email_over_the_cap_is_refused_before_any_syntax_check() -> None:
    operations, _ = _operations(email_problem, redos(100_000))
    syntax_operations, _ = _operations(module._email_syntax_problem, redos(10))

    assert email_problem(redos(100_000)) == f"must be at most {EMAIL_CHARS} characters"
    assert operations < syntax_operations


@pytest.mark.parametrize(
    ("email", "problem"),
    [
        ("m.thornton@example.org", None),
        ("peggy@example.org", None),
        ("o'brien+clinic@mail.example.co.uk", None),
        ("not an address", "is not an email address"),
        ("a@b", "is not an email address"),
        ("a@@example.org", "is not an email address"),
        ("@example.org", "is not an email address"),
        ("a@example..org", "is not an email address"),
        ("a@.example.org", "is not an email address"),
        ("a b@example.org", "is not an email address"),
        ("a@example.org\n", "is not an email address"),
        ("x" * 65 + "@example.org", "is not an email address"),
        (redos(8_000), f"must be at most {EMAIL_CHARS} characters"),
        (redos(EMAIL_CHARS - 3), "is not an email address"),
    ],
)
def test_email_addresses_are_checked(email: str, problem: str | None) -> None:
    assert email_problem(email) == problem


def test_the_redos_request_is_a_field_violation_of_the_email(
    margaret: PatientDemographics,
) -> None:
    request = pb.RegisterPatientRequest(
        request_id="register-1",
        demographics=pb.Demographics(
            name=pb.HumanName(given=["Margaret"], family="Thornton"), email=redos(100_000)
        ),
    )

    with pytest.raises(InvalidRequest) as refused:
        registration_from(request)

    assert [v.field for v in refused.value.violations] == ["demographics.email"]
    assert [v.field for v in violations(replace(margaret, email=redos(100_000)), today=TODAY)] == [
        "demographics.email"
    ]
