"""Searches the services answer page by page (ListOrders, ListResults): FHIR search parameters
to a List request, one page of answers to a searchset Bundle.

The services page by an opaque keyset token (newest first); the gateway carries it in the
``next`` link as ``_page_token``, so paging goes forward only (``first`` starts over). Unknown
parameters are ignored (and left out of the links) unless the caller sends ``Prefer:
handling=strict``, as Patient's search does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fhir.resources.R4B.bundle import Bundle

from gateway.entrypoints.fhir.outcomes import FhirError
from gateway.entrypoints.fhir.subsetting import ANSWER_PARAMETERS

DEFAULT_COUNT = 20
MAX_COUNT = 100  # the services allow 200; a FHIR page stays small
# The services' page tokens: base64url of a position (an instant and a record id).
_PAGE_TOKEN = re.compile(r"^[A-Za-z0-9_=-]{1,1024}$")

# The services' record ids (UUIDs, lower case).
RECORD_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# A parameter's value -> the List request's fields it sets; FhirError 400 when unusable.
Criterion = Callable[[str], Mapping[str, Any]]


@dataclass(frozen=True)
class ListQuery:
    """A List request's values and what the links repeat."""

    values: dict[str, Any]
    applied: tuple[tuple[str, str], ...]
    count: int
    filters: Mapping[str, str] = field(default_factory=dict)  # applied by the gateway


def list_query(params: Sequence[tuple[str, str]], criteria: Mapping[str, Criterion], *,
               strict: bool, filters: Sequence[str] = ()) -> ListQuery:  # fmt: skip
    """The List request of a search's parameters: ``criteria`` name the service's, ``filters``
    the ones the gateway applies to each page itself."""
    known = {*criteria, *filters, "_count", "_page_token"}
    given = given_parameters(params, known, strict=strict)
    count = whole_number(given, "_count", DEFAULT_COUNT, low=1, high=MAX_COUNT)
    values: dict[str, Any] = {"page_size": count}
    if "_page_token" in given:
        if not _PAGE_TOKEN.match(given["_page_token"]):
            raise invalid("_page_token is not a token this server gave")
        values["page_token"] = given["_page_token"]
    for name, criterion in criteria.items():
        if name in given:
            values.update(criterion(given[name]))
    applied = tuple((k, v) for k, v in given.items() if not k.startswith("_"))
    kept = {k: v for k, v in given.items() if k in filters}
    return ListQuery(values, applied, count, kept)


def patient_reference(parameter: str) -> Criterion:
    """``patient``/``subject``: ``Patient/<id>`` or a bare id, as ``patient_id``."""

    def criterion(value: str) -> Mapping[str, Any]:
        return {"patient_id": reference_id(parameter, value, "Patient")}

    return criterion


def reference_id(parameter: str, value: str, kind: str) -> str:
    """The id of a reference parameter's value (``<kind>/<id>`` or ``<id>``); 400 if not one."""
    text = value.removeprefix(f"{kind}/")
    if not RECORD_ID.match(text):
        raise invalid(f"{parameter}: give {kind}/<id>, the id of a {kind}")
    return text


def given_parameters(params: Sequence[tuple[str, str]], known: Collection[str], *,
                     strict: bool) -> dict[str, str]:  # fmt: skip
    """The ``known`` parameters of a search, one value each; the others ignored (400 when
    ``strict``); FhirError 400 for a parameter given twice or with several values."""
    given: dict[str, str] = {}
    for name, value in params:
        if name in ANSWER_PARAMETERS:
            continue  # shape the answer, not the search: the endpoint applies them
        if name not in known:
            if strict:
                raise invalid(f"the search parameter {_shown(name)} is not supported")
            continue
        if name in given:
            raise invalid(f"{name} is given twice: one value per parameter")
        if "," in value and not name.startswith("_"):
            raise invalid(f"{name}: several values (OR) are not supported")
        given[name] = value
    return given


def whole_number(given: Mapping[str, str], name: str, default: int, *, low: int,
                 high: int) -> int:  # fmt: skip
    """A number parameter's value, ``default`` without one; FhirError 400 out of range."""
    text = given.get(name)
    if text is None:
        return default
    if not re.fullmatch(r"[0-9]{1,6}", text) or not low <= int(text) <= high:
        raise invalid(f"{name} must be a whole number from {low} to {high}")
    return int(text)


def _shown(name: str) -> str:
    # Parameter names are the caller's text too: show them only when they look like names.
    return name if re.fullmatch(r"[A-Za-z_:.-]{1,40}", name) else "(unreadable)"


def invalid(diagnostics: str) -> FhirError:
    return FhirError.of(400, "invalid", diagnostics)


def page_bundle(kind: str, query: ListQuery, resources: Sequence[Mapping[str, Any]], *,
                next_token: str, base: str,
                total: int | None = None) -> dict[str, Any]:  # fmt: skip
    """The searchset Bundle of one page of ``kind`` resources; ``next_token`` the service's,
    ``total`` the matches on every page when the service counts them."""

    def link(relation: str, token: str) -> dict[str, str]:
        params = [*query.applied, ("_count", str(query.count))]
        if token:
            params.append(("_page_token", token))
        return {"relation": relation, "url": f"{base}/{kind}?{urlencode(params)}"}

    links = [link("self", str(query.values.get("page_token", ""))), link("first", "")]
    if next_token:
        links.append(link("next", next_token))
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "link": links,
        "entry": [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r,
                   "search": {"mode": "match"}} for r in resources]}  # fmt: skip
    if total is not None:
        bundle["total"] = total
    elif not next_token and "page_token" not in query.values:
        bundle["total"] = len(resources)  # the first page is the only one: these are all
    return Bundle.model_validate(bundle).model_dump(mode="json", exclude_none=True)
