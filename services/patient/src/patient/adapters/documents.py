"""Demographics as MongoDB documents, and the normalised fields the indexes search."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from patient.domain.demographics import (
    AdministrativeSex,
    PatientAddress,
    PatientDemographics,
    PatientIdentifier,
    PatientName,
)
from patient.matching.nicknames import formal_given_name
from patient.matching.normalize import compact, fold


def demographics_document(demographics: PatientDemographics) -> dict[str, Any]:
    document = asdict(demographics)
    document["sex"] = demographics.sex.value
    converted: dict[str, Any] = _lists(document)
    return converted


def _lists(value: Any) -> Any:
    # BSON has arrays, not tuples; converting here keeps documents equal after a round trip.
    if isinstance(value, dict):
        return {key: _lists(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_lists(item) for item in value]
    return value


def demographics_from(document: dict[str, Any]) -> PatientDemographics:
    name = document["name"]
    address = document["address"]
    return PatientDemographics(
        name=PatientName(
            tuple(name["given"]), name["family"], tuple(name["prefix"]), tuple(name["suffix"])
        ),
        birth_date=document["birth_date"],
        sex=AdministrativeSex(document["sex"]),
        address=PatientAddress(
            tuple(address["lines"]),
            address["city"],
            address["district"],
            address["postal_code"],
            address["country"],
        ),
        phone=document["phone"],
        email=document["email"],
        identifiers=tuple(
            PatientIdentifier(i["system"], i["value"]) for i in document["identifiers"]
        ),
    )


def search_terms(demographics: PatientDemographics) -> dict[str, Any]:
    """Normalised values the search indexes hold (nicknames folded into formal names).

    Top-level fields: the read-model store pushes equality on a top-level field down to its
    index, and on a dotted path it reads every document instead (docs/read-models.md).
    """
    return {
        "search_family": compact(demographics.name.family),
        "search_given": sorted(given_terms(" ".join(demographics.name.given))),
        "search_identifiers": sorted(identifier_term(i) for i in demographics.identifiers),
        "search_birth_date": demographics.birth_date,
    }


def given_terms(given: str) -> set[str]:
    return {formal_given_name(token) for token in fold(given).split()}


def identifier_term(identifier: PatientIdentifier) -> str:
    return f"{identifier.system.strip()}|{compact(identifier.value)}"
