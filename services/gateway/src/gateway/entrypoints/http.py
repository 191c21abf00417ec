"""The gateway's HTTP API (Starlette on uvicorn): authenticate, admit, forward, translate.

Refusals follow RFC 6750: 401 with ``WWW-Authenticate: Bearer`` (``error="invalid_token"``
when a token was sent and failed), 403 ``insufficient_scope`` naming a scope that would do.
Error bodies are JSON ``{"error", "message", "details"}`` and never echo request values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute

from gateway.adapters.downstream import InvalidRequestBodyError
from gateway.application import (
    GatewayApp,
    InsufficientScopeError,
    NotAuthenticatedError,
    RateLimitedError,
    Route,
)
from gateway.domain.origin import IpNetwork
from gateway.entrypoints.bearer import bearer_of, scope_challenge, token_challenge
from gateway.entrypoints.console.pages import ConsoleConfig, console_routes
from gateway.entrypoints.edge import EdgeMiddleware, RequestTooLargeError, read_body
from gateway.entrypoints.fhir.api import fhir_routes
from gateway.entrypoints.fhir.export_api import Exports
from gateway.entrypoints.fhir.subscription_tokens import BindingTokens
from gateway.entrypoints.fhir.subscription_websocket import subscription_socket_route
from gateway.entrypoints.openapi import openapi_document
from gateway.entrypoints.routes import ROUTES
from gateway.ports import DownstreamAnswer, IdentityProviderUnavailableError

HTTP_STATUS = {
    "OK": 200, "INVALID_ARGUMENT": 400, "OUT_OF_RANGE": 400, "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "ABORTED": 409,
    "FAILED_PRECONDITION": 409, "RESOURCE_EXHAUSTED": 429, "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504, "UNIMPLEMENTED": 501,
}  # fmt: skip


def error(status: int, code: str, message: str, *, details: Any = (),
          headers: Mapping[str, str] | None = None) -> JSONResponse:  # fmt: skip
    body = {"error": code, "message": message, "details": list(details)}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def build_http_app(app: GatewayApp, *, jwks: dict[str, Any], max_body_bytes: int,
                   cors_origins: Sequence[str], console: ConsoleConfig | None = None,
                   trusted_proxies: tuple[IpNetwork, ...] = (),
                   oidc_issuer: str = "", exports: Exports | None = None,
                   ) -> Starlette:  # fmt: skip
    """The ASGI application: the routes of `ROUTES`, the FHIR API, the JWKS, whoami, health,
    their OpenAPI document (OAuth2 at ``oidc_issuer``) and the audit console when ``console``
    is given. X-Forwarded-For counts only from ``trusted_proxies``."""

    # One answer per kind of refusal (RFC 6750's table, then ours): clearer flat than split.
    async def forward(request: Request, route: Route) -> Response:  # noqa: PLR0911
        request_id = request.state.request_id
        try:
            caller = await app.authenticate(bearer_of(request), request_id=request_id)
            await app.admit(caller)
            values = await _values(request, max_body_bytes)
            answer = await app.perform(caller, route, values, request_id=request_id)
        except NotAuthenticatedError as refused:
            return _unauthenticated(refused)
        except IdentityProviderUnavailableError:
            return error(503, "unavailable", "the identity provider cannot be reached",
                         headers={"Retry-After": "5"})  # fmt: skip
        except RateLimitedError as limited:
            return _too_many(limited)
        except InsufficientScopeError as missing:
            challenge = scope_challenge(missing.scope)
            return error(
                403,
                "insufficient_scope",
                f"the token's scopes do not allow this; needs {missing.scope}",
                headers={"WWW-Authenticate": challenge},
            )
        except RequestTooLargeError:
            return error(413, "request_too_large", f"the body is over {max_body_bytes} bytes")
        except (InvalidRequestBodyError, ValueError) as invalid:
            return error(400, "invalid_request", str(invalid))
        return _translate(answer)

    def endpoint(route: Route, path: str) -> Any:
        async def handle(request: Request) -> Response:
            # The span's name is the route, never the path with its ids.
            trace.get_current_span().update_name(f"{request.method} {path}")
            return await forward(request, route)

        return handle

    async def whoami(request: Request) -> Response:
        try:
            caller = await app.authenticate(bearer_of(request), request_id=request.state.request_id)
            await app.admit(caller)
        except NotAuthenticatedError as refused:
            return _unauthenticated(refused)
        except RateLimitedError as limited:
            return _too_many(limited)
        p = caller.principal
        return JSONResponse({
            "subject": p.subject, "roles": sorted(p.roles), "privileges": sorted(p.privileges),
            "mfa": p.mfa, "patient_id": p.patient_id, "client_id": p.client_id,
            "on_behalf_of": p.on_behalf_of, "contexts": sorted(caller.contexts),
            "scopes": sorted(s.text for s in caller.scopes),
        })  # fmt: skip

    async def jwks_document(_: Request) -> Response:
        return JSONResponse(jwks, headers={"Cache-Control": "max-age=300"})

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "SERVING"})

    binding_tokens = BindingTokens()  # $get-ws-binding-token issues, the websocket redeems
    routes = [
        StarletteRoute("/healthz", health, methods=["GET"]),
        StarletteRoute("/.well-known/jwks.json", jwks_document, methods=["GET"]),
        StarletteRoute("/api/v1/whoami", whoami, methods=["GET"]),
        *(StarletteRoute(r.path, endpoint(r.route, r.path), methods=[r.method]) for r in ROUTES),
        *fhir_routes(
            app, max_body_bytes=max_body_bytes, exports=exports, binding_tokens=binding_tokens
        ),
        subscription_socket_route(app, binding_tokens),
        *(console_routes(app, console) if console else ()),
    ]
    described = openapi_document(routes, ROUTES, oidc_issuer=oidc_issuer)

    async def openapi(_: Request) -> Response:
        return JSONResponse(described)

    routes.append(StarletteRoute("/openapi.json", openapi, methods=["GET"]))
    middleware = [
        Middleware(EdgeMiddleware, max_body_bytes=max_body_bytes, trusted_proxies=trusted_proxies),
        Middleware(
            CORSMiddleware,
            allow_origins=cors_origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "PUT", "DELETE"],  # DELETE: a FHIR Subscription
            allow_headers=[
                "authorization",
                "content-type",
                "x-request-id",
                "traceparent",
                "tracestate",
                "if-match",
                "prefer",
            ],
            expose_headers=["x-request-id", "etag", "location"],
            max_age=600,
        ),
    ]
    return Starlette(routes=routes, middleware=middleware)


async def _values(request: Request, max_body_bytes: int) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if request.method == "POST":
        raw = await read_body(request, max_body_bytes)
        if raw.strip():
            try:
                body = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise ValueError("the body is not JSON") from None
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            values.update(body)
    else:
        for name in request.query_params:
            listed = request.query_params.getlist(name)
            values[name] = listed if len(listed) > 1 else listed[0]
    values.update(request.path_params)
    return values


def _unauthenticated(refused: NotAuthenticatedError) -> JSONResponse:
    return error(401, refused.error or "unauthenticated", "a valid access token is required",
                 headers={"WWW-Authenticate": token_challenge(refused.error)})  # fmt: skip


def _too_many(limited: RateLimitedError) -> JSONResponse:
    return error(429, "rate_limited", "too many requests",
                 headers={"Retry-After": str(limited.retry_after_s)})  # fmt: skip


def _translate(answer: DownstreamAnswer) -> Response:
    status = HTTP_STATUS.get(answer.status, 502)
    if status == 200:
        return JSONResponse(dict(answer.body))
    return error(status, answer.status.lower(), answer.message, details=answer.violations)
