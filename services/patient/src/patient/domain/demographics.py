"""Demographics of a patient record, as registered: names, birth date, sex, contact, identifiers.

Values are kept as the registrar typed them; matching normalises its own copy. A birth date is an
ISO 8601 calendar date string (the event codec carries datetimes, not dates) or "" when unknown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from clinical_platform.limits import EMAIL_CHARS, NAME_CHARS, PHONE_CHARS
from clinical_platform.validation import FieldViolation

_MAX_TEXT = NAME_CHARS
_EARLIEST_BIRTH_DATE = date(1850, 1, 1)
_MAX_EMAIL_LOCAL_PART = 64  # RFC 5321 4.5.3.1.1
# One character class, anchored, at most 33 characters: linear, and only run within the cap.
_PHONE = re.compile(r"^\+?[0-9 ()./-]{3,32}$")


class AdministrativeSex(StrEnum):
    """FHIR administrative gender."""

    MALE = "male"
    FEMALE = "female"
    OTHER = "other"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class PatientName:
    given: tuple[str, ...] = ()
    family: str = ""
    prefix: tuple[str, ...] = ()
    suffix: tuple[str, ...] = ()


@dataclass(frozen=True)
class PatientAddress:
    lines: tuple[str, ...] = ()
    city: str = ""
    district: str = ""
    postal_code: str = ""
    country: str = ""


@dataclass(frozen=True)
class PatientIdentifier:
    """A business identifier and its issuing system (an MRN namespace, a national id's OID)."""

    system: str
    value: str


@dataclass(frozen=True)
class PatientDemographics:
    name: PatientName = PatientName()
    birth_date: str = ""
    sex: AdministrativeSex = AdministrativeSex.UNKNOWN
    address: PatientAddress = PatientAddress()
    phone: str = ""
    email: str = ""
    identifiers: tuple[PatientIdentifier, ...] = ()

    @property
    def birth(self) -> date | None:
        """The birth date as a date; None when unknown."""
        return date.fromisoformat(self.birth_date) if self.birth_date else None


FORGOTTEN = PatientDemographics()
"""What a forgotten record's demographics become: nothing at all."""


def violations(demographics: PatientDemographics, *, today: date) -> list[FieldViolation]:
    """Every rule the demographics break, by field path; descriptions never quote the value."""
    found: list[FieldViolation] = []
    name = demographics.name
    if not name.family.strip() and not any(g.strip() for g in name.given):
        found.append(FieldViolation("demographics.name", "needs a family or a given name"))
    texts = {
        "demographics.name.family": [name.family],
        "demographics.name.given": list(name.given),
        "demographics.name.prefix": list(name.prefix),
        "demographics.name.suffix": list(name.suffix),
        "demographics.address.lines": list(demographics.address.lines),
        "demographics.address.city": [demographics.address.city],
        "demographics.address.postal_code": [demographics.address.postal_code],
    }
    found += [
        FieldViolation(path, f"must be at most {_MAX_TEXT} characters")
        for path, values in texts.items()
        if any(len(value) > _MAX_TEXT for value in values)
    ]
    found += _birth_date_violations(demographics.birth_date, today)
    if demographics.email and (problem := email_problem(demographics.email)):
        found.append(FieldViolation("demographics.email", problem))
    if demographics.phone:
        if len(demographics.phone) > PHONE_CHARS:
            found.append(
                FieldViolation("demographics.phone", f"must be at most {PHONE_CHARS} characters")
            )
        elif not _PHONE.match(demographics.phone):
            found.append(FieldViolation("demographics.phone", "is not a phone number"))
    found += _identifier_violations(demographics.identifiers)
    return found


def email_problem(email: str) -> str | None:
    """Why ``email`` is not an email address, or None; capped at `EMAIL_CHARS` first.

    The check is a fixed number of linear string operations (no regex, no loop per character
    or per label), so its work grows with the length and no faster. It wants one ``@``, a
    local part of 1 to 64 characters, and a domain of two or more non-empty dot-separated
    labels; no whitespace or control characters anywhere.
    """
    if len(email) > EMAIL_CHARS:
        return f"must be at most {EMAIL_CHARS} characters"
    return _email_syntax_problem(email)


def _email_syntax_problem(email: str) -> str | None:
    local, at, domain = email.partition("@")
    labels = domain.split(".")
    well_formed = (
        at == "@"
        and 0 < len(local) <= _MAX_EMAIL_LOCAL_PART
        and "@" not in domain
        and email.isprintable()
        and len(email.split()) == 1  # no whitespace (isprintable lets the space through)
        and len(labels) >= 2  # a name and a top-level domain at least
        and "" not in labels
    )
    return None if well_formed else "is not an email address"


def _birth_date_violations(birth_date: str, today: date) -> list[FieldViolation]:
    if not birth_date:
        return []
    try:
        born = date.fromisoformat(birth_date)
    except ValueError:
        return [FieldViolation("demographics.birth_date", "must be a YYYY-MM-DD calendar date")]
    if len(birth_date) != 10:
        return [FieldViolation("demographics.birth_date", "must be a YYYY-MM-DD calendar date")]
    if not _EARLIEST_BIRTH_DATE <= born <= today:
        return [FieldViolation("demographics.birth_date", "must be after 1850 and not in future")]
    return []


def _identifier_violations(identifiers: tuple[PatientIdentifier, ...]) -> list[FieldViolation]:
    found = []
    systems: set[str] = set()
    for index, identifier in enumerate(identifiers):
        path = f"demographics.identifiers[{index}]"
        if not identifier.system.strip() or not identifier.value.strip():
            found.append(FieldViolation(path, "needs a system and a value"))
        if identifier.system in systems:
            found.append(FieldViolation(path, "repeats a system: one identifier per system"))
        systems.add(identifier.system)
    return found
