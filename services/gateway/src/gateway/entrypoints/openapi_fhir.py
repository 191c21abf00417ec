"""The FHIR R4 API's part of the OpenAPI document: each route of the FHIR table (`FhirRoute`)
with the methods it serves. The interaction follows from the path's shape (search, create, read,
update, history, vread, ``$operation``), the search parameters from the CapabilityStatement;
bodies are ``application/fhir+json`` resources of the path's type, errors OperationOutcomes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.entrypoints.fhir.api import FhirRoute
from gateway.entrypoints.fhir.formats import JSON_FORMATS
from gateway.entrypoints.fhir.listing import MAX_COUNT
from gateway.entrypoints.fhir.outcomes import BASE_PATH, FHIR_JSON
from gateway.entrypoints.fhir.subsetting import SUMMARY_VALUES
from gateway.entrypoints.openapi_schemas import JSON, error_responses

OUTCOME = "OperationOutcome"
_FHIR_ERRORS = {
    "400": "Invalid: the OperationOutcome's expression names the element or parameter",
    "401": "No valid access token (WWW-Authenticate: Bearer)",
    "403": "The token's scopes or the service's policy do not allow this",
    "404": "No such resource the caller may see",
    "406": "The answer cannot be JSON (_format or Accept)",
    "409": "A conflict with the resource's state or version",
    "410": "The resource was erased",
    "412": "If-Match names another version",
    "413": "The body is too large",
    "415": "The body is not application/fhir+json",
    "422": "A business rule refuses the change",
    "429": "Too many requests (Retry-After)",
    "503": "The identity provider or a service cannot be reached (Retry-After)",
    "504": "A service did not answer in time",
}
_FHIR_READ_ERRORS = ("400", "401", "403", "404", "406", "410", "429", "503", "504")
_FHIR_WRITE_ERRORS = tuple(_FHIR_ERRORS)
_FHIR_ID = {"type": "string", "pattern": "^[A-Za-z0-9.-]{1,64}$"}
_FHIR_TYPES = {"number": {"type": "integer"}, "date": {"type": "string"}}
# The parameters every read takes, as the gateway checks them (subsetting.py, listing.py).
_KNOWN_PARAMETERS: Mapping[str, Mapping[str, Any]] = {
    "_summary": {"enum": list(SUMMARY_VALUES)},
    "_elements": {"type": "string", "pattern": "^[A-Za-z]+(,[A-Za-z]+)*$"},
    "_count": {"type": "integer", "minimum": 1, "maximum": MAX_COUNT},
}
# A _history's own (history_pages.py).
_HISTORY_PARAMETERS = {
    "_since": "An instant with its zone: the changes recorded at or after it",
    "_count": "Versions a page, 1 to 100 (20 by default), newest first",
    "_page_token": "Where the next page starts: follow the next link",
}


def resource_schema(kind: str, *others: str) -> dict[str, Any]:
    """A FHIR resource of type ``kind`` (any type when ""), checked to its resourceType."""
    kinds = [k for k in (kind, *others) if k]
    resource_type: dict[str, Any] = {"enum": kinds} if kinds else {"type": "string"}
    return {"type": "object", "required": ["resourceType"],
            "properties": {"resourceType": resource_type}}  # fmt: skip


def fhir_operations(route: FhirRoute, rest: Mapping[str, Any]) -> dict[str, Any]:
    relative = route.path.removeprefix(BASE_PATH)
    if "{rest:path}" in relative:
        return {}
    parts = relative.strip("/").split("/")
    kind = parts[0] if parts[0][:1].isupper() else ""
    resource = next((r for r in rest["resource"] if r["type"] == kind), None)
    return {method.lower(): _fhir_operation(method, parts, kind, resource, rest)
            for method in route.served}  # fmt: skip


_Interaction = tuple[str, str, dict[str, Any], dict[str, Any] | None]


def _fhir_interaction(method: str, parts: list[str], kind: str) -> _Interaction:
    """What ``method`` on a path of these ``parts`` does: the interaction, the success's
    status and answer, and the body it takes (None: none)."""
    last = parts[-1]
    shape = "/".join("{}" if p.startswith("{") else p for p in parts[1:])
    reading = method == "GET"
    answer, status, interaction = resource_schema(kind), "200", ""
    body: dict[str, Any] | None = None
    operation = next((p for p in parts if p.startswith("$")), "")
    if last == "metadata":
        answer, interaction = resource_schema("CapabilityStatement"), "capabilities"
    elif operation:
        interaction = f"operation {operation}"
        answer = resource_schema("")
        if not reading:
            body = resource_schema("")
    elif shape == "" and reading:
        answer, interaction = resource_schema("Bundle"), "search-type"
    elif shape == "" and method == "POST":
        answer, status, interaction = resource_schema(kind, OUTCOME), "201", "create"
        body = resource_schema(kind)
    elif shape == "{}":
        interaction = "read" if reading else "update"
        if method == "PUT":
            answer, body = resource_schema(kind, OUTCOME), resource_schema(kind)
    elif shape == "{}/_history":
        answer, interaction = resource_schema("Bundle"), "history-instance"
    elif shape == "_history":
        answer, interaction = resource_schema("Bundle"), "history-type"
    elif shape == "{}/_history/{}":
        interaction = "vread"
    else:
        interaction = method.lower()
    return interaction, status, answer, body


def _fhir_operation(method: str, parts: list[str], kind: str,
                    resource: Mapping[str, Any] | None,
                    rest: Mapping[str, Any]) -> dict[str, Any]:  # fmt: skip
    last = parts[-1]
    reading = method == "GET"
    interaction, status, answer, body = _fhir_interaction(method, parts, kind)
    parameters = [{"name": p[1:-1].split(":")[0], "in": "path", "required": True,
                   "schema": dict(_FHIR_ID)} for p in parts if p.startswith("{")]  # fmt: skip
    if reading:
        parameters += _fhir_query(rest, resource if interaction == "search-type" else None)
    if interaction.startswith("history"):
        parameters += [{"name": name, "in": "query", "required": False, "description": text,
                        "schema": dict(_KNOWN_PARAMETERS.get(name, {"type": "string"}))}
                       for name, text in _HISTORY_PARAMETERS.items()]  # fmt: skip
    if method in {"PUT", "POST"} and interaction != "create":
        parameters.append({"name": "If-Match", "in": "header", "required": False,
                           "schema": {"type": "string", "pattern": '^W/"[0-9]{1,19}"$'},
                           "description": "The version the change is based on"})  # fmt: skip
    errors = _FHIR_READ_ERRORS if reading else _FHIR_WRITE_ERRORS
    operation: dict[str, Any] = {
        "operationId": f"fhir_{method.lower()}_{'_'.join(parts).replace('$', '')}"
                       .replace("{", "").replace("}", ""),
        "summary": f"FHIR {interaction}" + (f" of {kind}" if kind else ""),
        "tags": ["FHIR R4"],
        "parameters": parameters,
        "responses": {
            status: {"description": f"The {interaction} answer",
                     "content": {FHIR_JSON: {"schema": answer}}},
            **error_responses({s: _FHIR_ERRORS[s] for s in errors}, OUTCOME, FHIR_JSON),
        },
    }  # fmt: skip
    if interaction.startswith("operation"):
        # An operation may answer JSON that is no resource (a bulk export's manifest), or
        # accept the work and answer later (202, Content-Location).
        operation["responses"][status]["content"][JSON] = {"schema": {"type": "object"}}
        operation["responses"]["202"] = {"description": "Accepted: it runs asynchronously"}
    if last == "metadata":
        operation["security"] = []
        operation["responses"] = {s: a for s, a in operation["responses"].items()
                                  if s in {"200", "400", "406"}}  # fmt: skip
    if body is not None:
        operation["requestBody"] = {"required": True,
                                    "content": {FHIR_JSON: {"schema": body}}}  # fmt: skip
    return operation


def _fhir_query(rest: Mapping[str, Any], resource: Mapping[str, Any] | None) -> list[Any]:
    params: list[Mapping[str, Any]] = [*rest.get("searchParam", ()),
                                       *(resource or {}).get("searchParam", ())]  # fmt: skip
    described = [
        {"name": p["name"], "in": "query", "required": False,
         "description": p.get("documentation", ""),
         "schema": dict(_KNOWN_PARAMETERS.get(p["name"])
                        or _FHIR_TYPES.get(p["type"], {"type": "string"}))}
        for p in params
    ]  # fmt: skip
    described.append({"name": "_format", "in": "query", "required": False,
                      "description": "json, application/fhir+json or application/json",
                      "schema": {"enum": sorted(JSON_FORMATS)}})  # fmt: skip
    return described
