"""A record's comparison features: demographics normalised once, compared many times."""

from __future__ import annotations

from dataclasses import dataclass

from patient.domain.demographics import AdministrativeSex, PatientDemographics
from patient.matching.nicknames import formal_given_name
from patient.matching.normalize import compact, digits, fold

# Unit and street designators carry little identity; dropping them avoids false overlaps.
_ADDRESS_NOISE = frozenset({"unit", "apt", "apartment", "flat", "apmnt", "no", "number"})


@dataclass(frozen=True)
class MatchRecord:
    given: tuple[str, ...]
    family: str
    birth: tuple[int, int, int] | None
    sex: str
    street_number: str
    address_tokens: frozenset[str]
    city: str
    district: str
    postal_code: str
    phone: str
    email: str
    identifiers: frozenset[tuple[str, str]]


def match_record(demographics: PatientDemographics) -> MatchRecord:
    """Normalise demographics for comparison (nicknames become formal names)."""
    given = tuple(
        formal_given_name(token) for name in demographics.name.given for token in fold(name).split()
    )
    birth = demographics.birth
    sex = demographics.sex
    street_number, address_tokens = _address(demographics.address.lines)
    phone = digits(demographics.phone)
    return MatchRecord(
        given=given,
        family=compact(demographics.name.family),
        birth=(birth.year, birth.month, birth.day) if birth else None,
        sex="" if sex in (AdministrativeSex.UNKNOWN, AdministrativeSex.OTHER) else sex.value,
        street_number=street_number,
        address_tokens=address_tokens,
        city=compact(demographics.address.city),
        district=compact(demographics.address.district),
        postal_code=compact(demographics.address.postal_code),
        # The last nine digits: a country prefix or trunk zero must not make numbers differ.
        phone=phone[-9:] if len(phone) >= 6 else "",
        email=demographics.email.strip().casefold(),
        identifiers=frozenset(
            (i.system.strip(), compact(i.value)) for i in demographics.identifiers
        ),
    )


def _address(lines: tuple[str, ...]) -> tuple[str, frozenset[str]]:
    tokens = [token for line in lines for token in fold(line).split()]
    number = next((t for t in tokens if t[0].isdigit()), "")
    words = frozenset(t for t in tokens if not t[0].isdigit() and t not in _ADDRESS_NOISE)
    return number, words
