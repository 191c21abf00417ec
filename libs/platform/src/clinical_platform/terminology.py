"""Syntax checks for the clinical code systems the services accept: LOINC, ICD-10, SNOMED CT, UCUM.

Pure functions without I/O, shared by the domains of the services that take codes (orders and
results); whether a well-formed code is also one a service supports is the service's catalogue's
business. Each check returns a short reason when the code is malformed, never the code itself
(a code next to a patient can be PHI).
"""

from __future__ import annotations

import re

_LOINC = re.compile(r"^(\d{1,7})-(\d)$")
# ICD-10 and its clinical modifications: a letter, two characters (a digit, then a digit or a
# letter as in ICD-10-CM's C4A), then an optional dot and up to four characters.
_ICD10 = re.compile(r"^[A-Z]\d[0-9A-Z](\.[0-9A-Z]{1,4})?$")
_SCTID = re.compile(r"^[1-9]\d{5,17}$")
# A SNOMED CT identifier's partition digits; "00" and "10" are concepts (short and long format).
_CONCEPT_PARTITIONS = frozenset({"00", "10"})
# UCUM's case-sensitive unit syntax draws from printable ASCII without spaces.
_UCUM = re.compile(r"^[!-~]{1,64}$")


def loinc_problem(code: str) -> str | None:
    """Why ``code`` is not a LOINC code (``NNNNN-N`` with its mod-10 check digit), or None."""
    match = _LOINC.match(code)
    if match is None:
        return "must be a LOINC code: digits, a hyphen and a check digit, e.g. 2345-7"
    number, check = match.groups()
    if _loinc_check_digit(number) != int(check):
        return "has a wrong LOINC check digit"
    return None


def _loinc_check_digit(number: str) -> int:
    # LOINC's mod-10 algorithm (the Luhn scheme): from the right, double every other digit
    # starting with the last, add up the digits of everything, and top up to a multiple of 10.
    total = 0
    for position, digit in enumerate(int(d) for d in reversed(number)):
        doubled = digit * 2 if position % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return (10 - total % 10) % 10


def icd10_problem(code: str) -> str | None:
    """Why ``code`` is not an ICD-10 code such as ``E11.9`` or ``I10``, or None."""
    if _ICD10.match(code) is None:
        return "must be an ICD-10 code: a letter, two characters, optionally a dot and up to 4 more"
    return None


def snomed_concept_problem(code: str) -> str | None:
    """Why ``code`` is not a SNOMED CT concept id (digits ending in a Verhoeff check), or None."""
    if _SCTID.match(code) is None:
        return "must be a SNOMED CT identifier: 6 to 18 digits, not starting with 0"
    if not verhoeff_valid(code):
        return "has a wrong SNOMED CT (Verhoeff) check digit"
    if code[-3:-1] not in _CONCEPT_PARTITIONS:
        return "is a SNOMED CT identifier, but not of a concept"
    return None


def ucum_problem(unit: str) -> str | None:
    """Why ``unit`` cannot be a UCUM unit expression (a syntax check only), or None."""
    if _UCUM.match(unit) is None:
        return "must be a UCUM unit: 1 to 64 printable ASCII characters, no spaces"
    if unit.count("[") != unit.count("]") or unit.count("{") != unit.count("}"):
        return "has unbalanced brackets for a UCUM unit"
    return None


# Verhoeff's dihedral-group tables: multiplication in D5 and the position permutation.
_D5 = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_PERMUTATION = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)


def verhoeff_valid(digits: str) -> bool:
    """True when the last digit of ``digits`` is the Verhoeff check digit of the others."""
    check = 0
    for position, digit in enumerate(int(d) for d in reversed(digits)):
        check = _D5[check][_PERMUTATION[position % 8][digit]]
    return check == 0
