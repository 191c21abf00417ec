"""The gateway's OpenAPI 3.1 document (``GET /openapi.json``), generated from what it serves.

- ``/api/v1``: each row of `ROUTES`; query parameters and JSON bodies are the RPC's request
  message (path parameters taken out), the 200 answer its response message, both as JSON
  Schemas derived from the protobuf descriptors in protobuf's JSON mapping with the proto
  field names (the gateway answers with them; it reads both spellings). Errors are
  ``{"error", "message", "details"}``.
- ``/fhir/r4``: each route of the FHIR table (`FhirRoute`) with the methods it serves; the
  interaction follows from the path's shape (search, create, read, update, history, vread,
  ``$operation``), the search parameters from the CapabilityStatement; bodies are
  ``application/fhir+json`` resources of the path's type, errors OperationOutcomes.

Nothing here is written by hand per route: a route added to either table is described.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from importlib.metadata import version as package_version
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from starlette.routing import BaseRoute
from starlette.routing import Route as StarletteRoute

from gateway.adapters.downstream import SERVICES
from gateway.entrypoints.fhir.api import FhirRoute
from gateway.entrypoints.fhir.capability import capability_statement
from gateway.entrypoints.fhir.formats import JSON_FORMATS
from gateway.entrypoints.fhir.listing import MAX_COUNT
from gateway.entrypoints.fhir.outcomes import BASE_PATH, FHIR_JSON
from gateway.entrypoints.fhir.subsetting import SUMMARY_VALUES
from gateway.entrypoints.routes import HttpRoute

JSON = "application/json"
_REF = "#/components/schemas/"
_ERROR = "Error"
_OUTCOME = "OperationOutcome"
_INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32 = {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
_INT64 = {"anyOf": [{"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
                    {"type": "string", "pattern": "^-?[0-9]{1,19}$"}]}  # fmt: skip
_UINT64 = {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 2**64 - 1},
                     {"type": "string", "pattern": "^[0-9]{1,20}$"}]}  # fmt: skip
_FLOAT = {"anyOf": [{"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}]}
_T = FieldDescriptor
_SCALARS: Mapping[int, Mapping[str, Any]] = {
    _T.TYPE_DOUBLE: _FLOAT, _T.TYPE_FLOAT: _FLOAT,
    _T.TYPE_INT32: _INT32, _T.TYPE_SINT32: _INT32, _T.TYPE_SFIXED32: _INT32,
    _T.TYPE_UINT32: _UINT32, _T.TYPE_FIXED32: _UINT32,
    _T.TYPE_INT64: _INT64, _T.TYPE_SINT64: _INT64, _T.TYPE_SFIXED64: _INT64,
    _T.TYPE_UINT64: _UINT64, _T.TYPE_FIXED64: _UINT64,
    _T.TYPE_BOOL: {"type": "boolean"}, _T.TYPE_STRING: {"type": "string"},
    _T.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}  # fmt: skip
_WELL_KNOWN: Mapping[str, Mapping[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
}
# A query value is text: in a query, a 64-bit integer is its digits.
_QUERY_INT64 = {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}

# Every JSON API answer other than 200 (http.py's refusals and HTTP_STATUS's translations).
_API_ERRORS = {
    "400": "The body or a parameter does not fit the operation (invalid_request, "
           "invalid_argument: details name the fields)",
    "401": "No valid access token (WWW-Authenticate: Bearer, RFC 6750)",
    "403": "The token's scopes do not allow this (insufficient_scope), or the service's "
           "policy refuses the caller (permission_denied)",
    "404": "No such record the caller may see",
    "409": "A conflict: a duplicate, a stale expected_version or a state that does not allow it",
    "429": "Too many requests (Retry-After)",
    "503": "The identity provider or the service cannot be reached (Retry-After)",
    "504": "The service did not answer in time",
}  # fmt: skip
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


_DESCRIPTION = (
    "The JSON API under /api/v1 (the services' RPCs, protobuf's JSON mapping with proto field "
    f"names) and the FHIR R4 API under {BASE_PATH} (application/fhir+json; its "
    f"CapabilityStatement is {BASE_PATH}/metadata). Generated from the gateway's route tables."
)


def openapi_document(routes: Iterable[BaseRoute], api_routes: Sequence[HttpRoute], *,
                     oidc_issuer: str) -> dict[str, Any]:  # fmt: skip
    """The OpenAPI 3.1 document of ``routes`` (the Starlette application's), whose ``/api/v1``
    rows are ``api_routes``; OAuth2 at ``oidc_issuer`` (an OpenID Connect provider)."""
    schemas: dict[str, Any] = {_ERROR: _error_schema(), _OUTCOME: _resource_schema("")}
    paths: dict[str, dict[str, Any]] = {}
    by_path = {(r.path, r.method): r for r in api_routes}
    statement = capability_statement(
        BASE_PATH, software_version=package_version("clinical-gateway"), date="2026-01-01"
    )
    for route in routes:
        if isinstance(route, FhirRoute):
            operations = _fhir_operations(route, statement["rest"][0])
        elif isinstance(route, StarletteRoute):
            operations = {
                method.lower(): _api_operation(by_path[route.path, method], schemas)
                for method in sorted(route.methods or ())
                if (route.path, method) in by_path
            } or _fixed_operations(route.path)
        else:
            continue
        if operations:
            paths.setdefault(route.path, {}).update(operations)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Clinical record platform gateway",
            "version": package_version("clinical-gateway"),
            "description": _DESCRIPTION,
        },
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": _security(oidc_issuer)},
        "security": [{"bearer": []}, {"oauth2": []}],
    }


def _security(issuer: str) -> dict[str, Any]:
    endpoints = f"{issuer.rstrip('/')}/protocol/openid-connect"
    scopes = {
        "openid": "OpenID Connect",
        "user/*.cruds": "SMART v2: everything the user may do",
        "user/*.rs": "SMART v2: read and search what the user may see",
        "patient/*.rs": "SMART v2: a patient's own record",
        "system/*.cruds": "SMART v2: a partner system",
    }
    return {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                   "description": "An access token of the OpenID Connect provider"},
        "oauth2": {"type": "oauth2", "flows": {
            "authorizationCode": {"authorizationUrl": f"{endpoints}/auth",
                                  "tokenUrl": f"{endpoints}/token", "scopes": scopes},
            "clientCredentials": {"tokenUrl": f"{endpoints}/token", "scopes": scopes},
        }},
        "openIdConnect": {"type": "openIdConnect", "openIdConnectUrl":
                          f"{issuer.rstrip('/')}/.well-known/openid-configuration"},
    }  # fmt: skip


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error", "message", "details"],
        "properties": {
            "error": {"type": "string", "description": "A code: invalid_request, ..."},
            "message": {"type": "string", "description": "What went wrong; no request values"},
            "details": {"type": "array", "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "description": {"type": "string"}},
            }},
        },
    }  # fmt: skip


def _errors(statuses: Mapping[str, str], schema: str, media_type: str) -> dict[str, Any]:
    content = {media_type: {"schema": {"$ref": _REF + schema}}}
    return {status: {"description": text, "content": content} for status, text in statuses.items()}


# -- the JSON API: protobuf messages as JSON Schemas


def _api_operation(row: HttpRoute, schemas: dict[str, Any]) -> dict[str, Any]:
    route = row.route
    method = SERVICES[route.service].methods_by_name[route.operation.name]
    path_names = {part[1:-1] for part in row.path.split("/") if part.startswith("{")}
    request = method.input_type
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": _field_schema(
            request.fields_by_name[name], schemas)}
        for name in sorted(path_names)
    ]  # fmt: skip
    operation: dict[str, Any] = {
        "operationId": route.operation.name,
        "summary": f"{route.operation.name} ({route.service} service): "
                   f"{route.operation.interaction.value} {route.operation.resource}",
        "tags": [route.service],
    }  # fmt: skip
    statuses = dict(_API_ERRORS)
    if row.method == "GET":
        parameters += [
            {"name": field.name, "in": "query", "schema": _query_schema(field)}
            for field in request.fields
            if field.name not in path_names and _query_schema(field) is not None
        ]
    else:
        body = _message_schema(request, schemas, omit=path_names)
        operation["requestBody"] = {"required": False, "content": {JSON: {"schema": body}}}
        statuses["413"] = "The body is over the gateway's limit"
    operation["parameters"] = parameters
    answer = {"$ref": _REF + _schema_name(method.output_type, schemas)}
    operation["responses"] = {
        "200": {"description": "The service's answer", "content": {JSON: {"schema": answer}}},
        **_errors(dict(sorted(statuses.items())), _ERROR, JSON),
    }
    return operation


def _query_schema(field: FieldDescriptor) -> dict[str, Any] | None:
    """A query parameter's schema: scalar and enum fields only (a query has no messages)."""
    if field.type == _T.TYPE_MESSAGE or _is_repeated(field):
        return None
    if field.type == _T.TYPE_ENUM:
        return _enum_schema(field)
    if field.type in {_T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64}:
        return dict(_QUERY_INT64)
    if field.type in {_T.TYPE_UINT64, _T.TYPE_FIXED64}:
        return {"type": "integer", "minimum": 0, "maximum": 2**64 - 1}
    if field.type in {_T.TYPE_DOUBLE, _T.TYPE_FLOAT}:
        return {"type": "number"}
    return dict(_SCALARS[field.type])


def _schema_name(message: Descriptor, schemas: dict[str, Any]) -> str:
    """The component named after ``message`` (added with the messages it holds)."""
    name = message.full_name
    if name not in schemas:
        schemas[name] = {}  # taken before recursing: messages may hold themselves
        schemas[name] = _message_schema(message, schemas)
    return name


def _message_schema(message: Descriptor, schemas: dict[str, Any],
                    omit: Iterable[str] = ()) -> dict[str, Any]:  # fmt: skip
    if message.full_name in _WELL_KNOWN:
        return dict(_WELL_KNOWN[message.full_name])
    left_out = set(omit)
    properties = {
        field.name: _field_schema(field, schemas)
        for field in message.fields
        if field.name not in left_out
    }
    return {"type": "object", "properties": properties, "additionalProperties": False}


def _field_schema(field: FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value = field.message_type.fields_by_name["value"]
        return {"type": "object", "additionalProperties": _single_schema(value, schemas)}
    single = _single_schema(field, schemas)
    return {"type": "array", "items": single} if _is_repeated(field) else single


def _single_schema(field: FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    message = field.message_type
    if message is not None:
        if message.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[message.full_name])
        return {"$ref": _REF + _schema_name(message, schemas)}
    if field.type == _T.TYPE_ENUM:
        return _enum_schema(field)
    return dict(_SCALARS[field.type])


def _enum_schema(field: FieldDescriptor) -> dict[str, Any]:
    values = field.enum_type.values if field.enum_type is not None else ()
    return {"type": "string", "enum": [v.name for v in values]}


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


# -- the gateway's own routes


def _fixed_operations(path: str) -> dict[str, Any]:
    plain = {"type": "object"}
    fixed: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
        "/healthz": ("Whether the gateway serves", plain, ()),
        "/.well-known/jwks.json": ("The keys of the gateway's internal tokens", plain, ()),
        "/api/v1/whoami": ("The caller as the gateway sees them", plain, ("401", "429", "503")),
    }
    if path not in fixed:
        return {}
    summary, schema, errors = fixed[path]
    answers = {"200": {"description": summary, "content": {JSON: {"schema": schema}}},
               **_errors({s: _API_ERRORS[s] for s in errors}, _ERROR, JSON)}  # fmt: skip
    operation = {"operationId": path.strip("/").replace("/", "_").replace(".", "_"),
                 "summary": summary, "responses": answers}  # fmt: skip
    if not errors:
        operation["security"] = []
    return {"get": operation}


# -- the FHIR API: from its route table and CapabilityStatement


def _resource_schema(kind: str, *others: str) -> dict[str, Any]:
    """A FHIR resource of type ``kind`` (any type when ""), checked to its resourceType."""
    kinds = [k for k in (kind, *others) if k]
    resource_type: dict[str, Any] = {"enum": kinds} if kinds else {"type": "string"}
    return {"type": "object", "required": ["resourceType"],
            "properties": {"resourceType": resource_type}}  # fmt: skip


def _fhir_operations(route: FhirRoute, rest: Mapping[str, Any]) -> dict[str, Any]:
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
    answer, status, interaction = _resource_schema(kind), "200", ""
    body: dict[str, Any] | None = None
    operation = next((p for p in parts if p.startswith("$")), "")
    if last == "metadata":
        answer, interaction = _resource_schema("CapabilityStatement"), "capabilities"
    elif operation:
        interaction = f"operation {operation}"
        answer = _resource_schema("")
        if not reading:
            body = _resource_schema("")
    elif shape == "" and reading:
        answer, interaction = _resource_schema("Bundle"), "search-type"
    elif shape == "" and method == "POST":
        answer, status, interaction = _resource_schema(kind, _OUTCOME), "201", "create"
        body = _resource_schema(kind)
    elif shape == "{}":
        interaction = "read" if reading else "update"
        if method == "PUT":
            answer, body = _resource_schema(kind, _OUTCOME), _resource_schema(kind)
    elif shape == "{}/_history":
        answer, interaction = _resource_schema("Bundle"), "history-instance"
    elif shape == "_history":
        answer, interaction = _resource_schema("Bundle"), "history-type"
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
            **_errors({s: _FHIR_ERRORS[s] for s in errors}, _OUTCOME, FHIR_JSON),
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
