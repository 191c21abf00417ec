"""``POST [base]/Patient/$match``: FindMatches as a searchset Bundle.

The body is a Parameters resource: ``resource`` (a Patient, required: its demographics are
matched), ``onlyCertainMatches`` (boolean: only ``certain`` grades) and ``count`` (1 to
`MAX_MATCHES`, `DEFAULT_MATCHES` by default). Each entry is a candidate record the caller may read
(others are left out), with ``search.mode: match``, ``search.score`` (the matcher's weight as a
probability, 1/(1+2^-weight)), the match-grade extension (MATCH -> certain, POSSIBLE_MATCH ->
possible, NO_MATCH -> certainly-not) and `MATCH_EXPLANATION`: the weight, the deciding rule if
one decided, and each field's comparison level and weight. Records nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from gateway.entrypoints.fhir.outcomes import FhirError

MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"
MATCH_EXPLANATION = "urn:clinical-platform:fhir:StructureDefinition:match-explanation"
DEFAULT_MATCHES = 10
MAX_MATCHES = 50
_GRADES = {"MATCH_GRADE_MATCH": "certain", "MATCH_GRADE_POSSIBLE_MATCH": "possible",
           "MATCH_GRADE_NO_MATCH": "certainly-not"}  # fmt: skip
_PARAMETERS = {"resource", "onlyCertainMatches", "count"}


def _invalid(diagnostics: str, expression: str, status: int = 400) -> FhirError:
    return FhirError.of(status, "invalid", diagnostics, expression=(expression,))


def match_parameters(body: Mapping[str, Any]) -> tuple[dict[str, Any], bool, int]:
    """The Patient to match, onlyCertainMatches and count of a $match body; FhirError 400."""
    if body.get("resourceType") != "Parameters":
        raise _invalid("send a Parameters resource", "Parameters")
    given: dict[str, Mapping[str, Any]] = {}
    for index, parameter in enumerate(body.get("parameter") or []):
        name = parameter.get("name") if isinstance(parameter, Mapping) else None
        where = f"Parameters.parameter[{index}]"
        if name not in _PARAMETERS:
            raise _invalid("a parameter of $match is resource, onlyCertainMatches or count",
                           f"{where}.name")  # fmt: skip
        if name in given:
            raise _invalid(f"{name} is given twice", where)
        given[str(name)] = parameter
    resource = given.get("resource", {}).get("resource")
    if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
        raise _invalid("resource (a Patient) is required", "Parameters.parameter.resource")
    only_certain = given.get("onlyCertainMatches", {}).get("valueBoolean", False)
    count = given.get("count", {}).get("valueInteger", DEFAULT_MATCHES)
    if not isinstance(only_certain, bool):
        raise _invalid("onlyCertainMatches takes valueBoolean", "Parameters.parameter.value")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_MATCHES:
        raise _invalid(f"count takes valueInteger from 1 to {MAX_MATCHES}",
                       "Parameters.parameter.value")  # fmt: skip
    return resource, only_certain, count


def score(weight: float) -> float:
    """The matcher's weight (a log2 likelihood ratio) as a probability in [0, 1]."""
    return round(1 / (1 + 2 ** max(min(-weight, 60.0), -60.0)), 4)


def match_search(candidate: Mapping[str, Any]) -> dict[str, Any]:
    """The entry's ``search`` of a MatchCandidate (protobuf JSON)."""
    weight = float(candidate.get("score", 0.0))
    explanation: list[dict[str, Any]] = [{"url": "weight", "valueDecimal": weight}]
    if rule := candidate.get("rule"):
        explanation.append({"url": "rule", "valueString": rule})
    explanation += [
        {"url": "field", "extension": [
            {"url": "name", "valueString": field.get("field", "")},
            {"url": "level", "valueString": field.get("level", "")},
            {"url": "weight", "valueDecimal": float(field.get("weight", 0.0))},
        ]}
        for field in candidate.get("fields", [])
    ]  # fmt: skip
    return {"mode": "match", "score": score(weight), "extension": [
        {"url": MATCH_GRADE, "valueCode": grade_of(candidate)},
        {"url": MATCH_EXPLANATION, "extension": explanation},
    ]}  # fmt: skip


def grade_of(candidate: Mapping[str, Any]) -> str:
    return _GRADES.get(str(candidate.get("grade", "")), "certainly-not")


def match_bundle(entries: list[tuple[dict[str, Any], dict[str, Any]]], base: str,
                 ) -> dict[str, Any]:  # fmt: skip
    """The searchset of (resource, search) pairs, best first."""
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(entries),
              "entry": [{"fullUrl": f"{base}/Patient/{r['id']}", "resource": r, "search": s}
                        for r, s in entries]}  # fmt: skip
    return Bundle.model_validate(bundle).model_dump(mode="json", exclude_none=True)
