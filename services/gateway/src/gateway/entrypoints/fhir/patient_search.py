"""Patient search: FHIR search parameters to SearchPatients requests, answers to a searchset.

The service matches names whole, ignoring case, accents and punctuation (nicknames count), and
sorts by id; it has no page token yet, so pages are windows the gateway cuts from the first
`MAX_MATCHES` matches (``_offset``, carried by the ``next``/``previous`` links). ``name`` is the
family name or a given name: two searches, merged by id. Unknown parameters are ignored (and
left out of the ``self`` link) unless the caller sends ``Prefer: handling=strict``. ``_at``
searches the records as they stood at that instant (each at the version current then). The
Bundle's ``total`` is the service's count of the matches (one search; ``name``'s two searches
overlap, so theirs is known only when every match fits the window).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fhir.resources.R4B.bundle import Bundle

from gateway.entrypoints.fhir.listing import (
    DEFAULT_COUNT,
    MAX_COUNT,
    given_parameters,
    invalid,
    whole_number,
)
from gateway.entrypoints.fhir.records import instant

# The service's largest page: the matches a search can reach.
MAX_MATCHES = 200
PARAMETERS = ("name", "family", "given", "birthdate", "identifier", "_at", "_count", "_offset")
_DATE = re.compile(r"^(?:eq)?(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True)
class PatientQuery:
    """What a search asks the service, and which window of the matches it shows."""

    requests: tuple[dict[str, Any], ...]  # SearchPatientsRequest values, merged by id
    applied: tuple[tuple[str, str], ...]  # the parameters used, for the links
    count: int
    offset: int

    @property
    def fetch(self) -> int:
        """How many matches each request asks for: the window's end, plus one to tell whether
        there is more."""
        return min(self.offset + self.count + 1, MAX_MATCHES)


def patient_query(params: Sequence[tuple[str, str]], *, strict: bool) -> PatientQuery:
    """The query of a search's parameters; FhirError 400 for one it cannot answer."""
    given = given_parameters(params, PARAMETERS, strict=strict)
    count = whole_number(given, "_count", DEFAULT_COUNT, low=1, high=MAX_COUNT)
    offset = whole_number(given, "_offset", 0, low=0, high=MAX_MATCHES - 1)
    fetch = PatientQuery((), (), count, offset).fetch
    criteria = {**_criteria(given), "page_size": fetch}
    if "_at" in given:
        criteria["as_of"] = instant(given["_at"])
    requests = [criteria]
    if "name" in given:
        if "family" in given or "given" in given:
            raise invalid("name cannot be combined with family or given yet")
        requests = [{**criteria, "family_name": given["name"]},
                    {**criteria, "given_name": given["name"]}]  # fmt: skip
    elif not set(criteria) - {"page_size", "as_of"}:
        raise invalid("at least one of name, family, given, birthdate, identifier is needed")
    applied = tuple((k, v) for k, v in given.items() if not k.startswith("_") or k == "_at")
    return PatientQuery(tuple(requests), applied, count, offset)


def _criteria(given: Mapping[str, str]) -> dict[str, Any]:
    """SearchPatientsRequest's criteria of the parameters (``name`` aside)."""
    criteria: dict[str, Any] = {}
    if "family" in given:
        criteria["family_name"] = given["family"]
    if "given" in given:
        criteria["given_name"] = given["given"]
    if "birthdate" in given:
        date = _DATE.match(given["birthdate"])
        if not date:
            raise invalid("birthdate: only a whole date (YYYY-MM-DD, prefix eq) is supported")
        criteria["birth_date"] = date[1]
    if "identifier" in given:
        system, bar, value = given["identifier"].partition("|")
        if not (bar and system and value):
            raise invalid("identifier: give system|value")
        criteria["identifier"] = {"system": system, "value": value}
    return criteria


@dataclass(frozen=True)
class Matches:
    """The first matches of a query, up to its `PatientQuery.fetch`, by id."""

    records: list[Mapping[str, Any]]
    complete: bool  # these are all the matches there are
    total: int | None = None  # how many there are, when known

    def window(self, query: PatientQuery) -> list[Mapping[str, Any]]:
        return self.records[query.offset : query.offset + query.count]


def merged(query: PatientQuery, answers: Sequence[Mapping[str, Any]]) -> Matches:
    """The records of every request's answer (SearchPatientsResponse) once each, in the
    service's order (by id), and their total when it is known."""
    pages = [answer.get("patients", []) for answer in answers]
    records = {r["patient_id"]: r for page in pages for r in page}
    ordered = [records[key] for key in sorted(records)][: query.fetch]
    complete = all(len(page) < query.fetch for page in pages)
    total = len(ordered) if complete else None
    if len(answers) == 1 and "total" in answers[0]:
        total = int(answers[0]["total"])
    return Matches(ordered, complete, total)


def searchset(query: PatientQuery, matches: Matches, resources: Sequence[dict[str, Any]],
              base: str) -> dict[str, Any]:  # fmt: skip
    """The searchset Bundle of one window; ``resources`` are its Patient resources."""
    end = query.offset + query.count

    def link(relation: str, offset: int) -> dict[str, str]:
        params = [*query.applied, ("_count", str(query.count))]
        if offset:
            params.append(("_offset", str(offset)))
        return {"relation": relation, "url": f"{base}/Patient?{urlencode(params)}"}

    links = [link("self", query.offset), link("first", 0)]
    if query.offset:
        links.append(link("previous", max(query.offset - query.count, 0)))
    if len(matches.records) > end:
        links.append(link("next", end))
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "link": links,
        "entry": [{"fullUrl": f"{base}/Patient/{r['id']}", "resource": r,
                   "search": {"mode": "match"}} for r in resources]}  # fmt: skip
    if matches.total is not None:
        bundle["total"] = matches.total
    return Bundle.model_validate(bundle).model_dump(mode="json", exclude_none=True)
