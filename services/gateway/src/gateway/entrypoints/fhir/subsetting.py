"""``_summary`` and ``_elements``: the parts of each resource a caller asked for.

Which elements are summary ones, and which are mandatory, comes from the R4B models' field
metadata (``summary_element_property``, ``element_required``), the flags of the R4 definitions;
a choice element (``value[x]``) is named by its stem (``value``). A subset keeps
``resourceType``, ``id`` and ``meta``, and is tagged SUBSETTED so nobody takes it for the whole
record. In a Bundle the subsetting applies to each entry's resource, never to the Bundle's own
elements; ``_summary=count`` keeps only the Bundle's ``total``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from gateway.entrypoints.fhir.outcomes import FhirError

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}
SUMMARY_VALUES = ("true", "text", "data", "count", "false")
PARAMETERS = ("_summary", "_elements")
# Parameters of any interaction that shape the answer (formats.py reads _format).
ANSWER_PARAMETERS = frozenset({*PARAMETERS, "_format"})
_ALWAYS = ("resourceType", "id", "meta")
_ELEMENT = re.compile(r"^[a-z][A-Za-z0-9]{0,63}$")


@dataclass(frozen=True)
class Subset:
    """What a request asked to keep: a ``_summary`` mode, or ``_elements``' names."""

    summary: str = "false"
    elements: frozenset[str] = frozenset()

    @property
    def whole(self) -> bool:
        return self.summary == "false" and not self.elements


WHOLE = Subset()


def requested_subset(params: Sequence[tuple[str, str]], *, bundle: bool) -> Subset:
    """The subset ``_summary`` or ``_elements`` ask for of an answer (a Bundle when ``bundle``:
    a search's or a history's); FhirError 400 naming the parameter for a value it cannot use."""
    given: dict[str, str] = {}
    for name, value in params:
        if name in PARAMETERS:
            if name in given:
                raise _invalid(name, f"{name} is given twice: one value")
            given[name] = value.strip()
    if len(given) == 2:
        raise _invalid("_elements", "_summary and _elements cannot be combined")
    if "_summary" in given:
        summary = given["_summary"]
        if summary not in SUMMARY_VALUES:
            raise _invalid("_summary", f"_summary must be one of {', '.join(SUMMARY_VALUES)}")
        if summary == "count" and not bundle:
            raise _invalid("_summary", "_summary=count applies to searches and histories")
        return Subset(summary=summary)
    if "_elements" in given:
        names = frozenset(n.strip() for n in given["_elements"].split(",") if n.strip())
        if not names or not all(_ELEMENT.match(n) for n in names):
            raise _invalid("_elements", "_elements must name top-level elements: a,b,c")
        return Subset(elements=names)
    return WHOLE


def _invalid(parameter: str, diagnostics: str) -> FhirError:
    return FhirError.of(400, "invalid", diagnostics, expression=(parameter,))


def subset_answer(resource: Mapping[str, Any], subset: Subset) -> dict[str, Any]:
    """The answer to send: a Bundle's entries subset one by one (``count``: none at all), any
    other resource subset itself."""
    if resource.get("resourceType") != "Bundle":
        return subset_resource(resource, subset)
    if subset.summary == "count":
        return _counted(resource)
    bundle = dict(resource)
    if "entry" in bundle:
        bundle["entry"] = [_subset_entry(entry, subset) for entry in bundle["entry"]]
    return bundle


def _subset_entry(entry: Mapping[str, Any], subset: Subset) -> dict[str, Any]:
    if "resource" not in entry:
        return dict(entry)
    return {**entry, "resource": subset_resource(entry["resource"], subset)}


def _counted(bundle: Mapping[str, Any]) -> dict[str, Any]:
    """The Bundle's count alone: its total, no entries (nor a next page of them)."""
    if "total" not in bundle:
        raise FhirError.of(
            422, "too-costly", "_summary=count: the matches are more than one page and their "
            "total is not known; page through them instead", expression=("_summary",),
        )  # fmt: skip
    links = [link for link in bundle.get("link", []) if link.get("relation") == "self"]
    kept = {key: value for key, value in bundle.items() if key not in {"entry", "link"}}
    return {**kept, "link": links} if links else kept


def subset_resource(resource: Mapping[str, Any], subset: Subset) -> dict[str, Any]:
    """The resource with only the elements ``subset`` keeps, tagged SUBSETTED; the resource
    unchanged when nothing is left out."""
    if subset.whole:
        return dict(resource)
    kind = str(resource.get("resourceType", ""))
    kept = {key: value for key, value in resource.items() if _keeps(subset, kind, key)}
    return _tagged(kept)


def _keeps(subset: Subset, kind: str, key: str) -> bool:
    if key in _ALWAYS:
        return True
    if subset.elements:
        return choice_elements(kind).get(key, key) in subset.elements
    match subset.summary:
        case "true":
            return key in summary_elements(kind)
        case "text":
            return key == "text" or key in mandatory_elements(kind)
        case "data":
            return key != "text"
    return True


def _tagged(resource: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta", {}))
    tags = [t for t in meta.get("tag", []) if t.get("code") != SUBSETTED["code"]]
    meta["tag"] = [*tags, SUBSETTED]
    return {**resource, "meta": meta}


@cache
def summary_elements(kind: str) -> frozenset[str]:
    """The JSON names of ``kind``'s elements marked summary in R4 (choice types expanded)."""
    return _elements_where(kind, lambda extra: bool(extra.get("summary_element_property")))


@cache
def mandatory_elements(kind: str) -> frozenset[str]:
    """The JSON names of ``kind``'s top-level elements with a minimum cardinality of 1."""
    required = _elements_where(kind, lambda extra: bool(
        extra.get("element_required") or extra.get("one_of_many_required")
    ))  # fmt: skip
    model = get_fhir_model_class(kind)
    return required | {field.alias or name for name, field in model.model_fields.items()
                       if field.is_required()}  # fmt: skip


@cache
def choice_elements(kind: str) -> Mapping[str, str]:
    """The JSON names of ``kind``'s choice elements, each to its stem (``valueQuantity`` ->
    ``value``): ``_elements`` names a choice by its stem."""
    model = get_fhir_model_class(kind)
    stems: dict[str, str] = {}
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra
        if isinstance(extra, dict) and isinstance(extra.get("one_of_many"), str):
            stems[field.alias or name] = str(extra["one_of_many"])
    return stems


def _elements_where(kind: str, wanted: Any) -> frozenset[str]:
    model = get_fhir_model_class(kind)
    names = set()
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra
        if isinstance(extra, dict) and wanted(extra):
            names.add(field.alias or name)
    return frozenset(names)
