"""The gateway's OpenAPI 3.1 document (``GET /openapi.json``), generated from what it serves.

- ``/api/v1``: each row of `ROUTES`; query parameters and JSON bodies are the RPC's request
  message (path parameters taken out), the 200 answer its response message, both as JSON
  Schemas derived from the protobuf descriptors (`openapi_schemas`). Errors are
  ``{"error", "message", "details"}``.
- ``/fhir/r4``: each route of the FHIR table with the methods it serves (`openapi_fhir`).

Nothing here is written by hand per route: a route added to either table is described.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib.metadata import version as package_version
from typing import Any

from starlette.routing import BaseRoute
from starlette.routing import Route as StarletteRoute

from gateway.adapters.downstream import SERVICES
from gateway.entrypoints.fhir.api import FhirRoute
from gateway.entrypoints.fhir.capability import capability_statement
from gateway.entrypoints.fhir.outcomes import BASE_PATH
from gateway.entrypoints.openapi_fhir import OUTCOME, fhir_operations, resource_schema
from gateway.entrypoints.openapi_schemas import (
    JSON,
    SCHEMA_REF,
    error_responses,
    field_schema,
    message_schema,
    query_schema,
    schema_name,
)
from gateway.entrypoints.routes import HttpRoute

_ERROR = "Error"

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


_DESCRIPTION = (
    "The JSON API under /api/v1 (the services' RPCs, protobuf's JSON mapping with proto field "
    f"names) and the FHIR R4 API under {BASE_PATH} (application/fhir+json; its "
    f"CapabilityStatement is {BASE_PATH}/metadata). Generated from the gateway's route tables."
)


def openapi_document(routes: Iterable[BaseRoute], api_routes: Sequence[HttpRoute], *,
                     oidc_issuer: str) -> dict[str, Any]:  # fmt: skip
    """The OpenAPI 3.1 document of ``routes`` (the Starlette application's), whose ``/api/v1``
    rows are ``api_routes``; OAuth2 at ``oidc_issuer`` (an OpenID Connect provider)."""
    schemas: dict[str, Any] = {_ERROR: _error_schema(), OUTCOME: resource_schema("")}
    paths: dict[str, dict[str, Any]] = {}
    by_path = {(r.path, r.method): r for r in api_routes}
    statement = capability_statement(
        BASE_PATH, software_version=package_version("clinical-gateway"), date="2026-01-01"
    )
    for route in routes:
        if isinstance(route, FhirRoute):
            operations = fhir_operations(route, statement["rest"][0])
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


# -- the JSON API: its RPCs' messages as JSON Schemas


def _api_operation(row: HttpRoute, schemas: dict[str, Any]) -> dict[str, Any]:
    route = row.route
    method = SERVICES[route.service].methods_by_name[route.operation.name]
    path_names = {part[1:-1] for part in row.path.split("/") if part.startswith("{")}
    request = method.input_type
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": field_schema(
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
            {"name": field.name, "in": "query", "schema": query_schema(field)}
            for field in request.fields
            if field.name not in path_names and query_schema(field) is not None
        ]
    else:
        body = message_schema(request, schemas, omit=path_names)
        operation["requestBody"] = {"required": False, "content": {JSON: {"schema": body}}}
        statuses["413"] = "The body is over the gateway's limit"
    operation["parameters"] = parameters
    answer = {"$ref": SCHEMA_REF + schema_name(method.output_type, schemas)}
    operation["responses"] = {
        "200": {"description": "The service's answer", "content": {JSON: {"schema": answer}}},
        **error_responses(dict(sorted(statuses.items())), _ERROR, JSON),
    }
    return operation


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
               **error_responses({s: _API_ERRORS[s] for s in errors}, _ERROR, JSON)}  # fmt: skip
    operation = {"operationId": path.strip("/").replace("/", "_").replace(".", "_"),
                 "summary": summary, "responses": answers}  # fmt: skip
    if not errors:
        operation["security"] = []
    return {"get": operation}
