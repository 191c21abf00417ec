"""One FHIR request's exchange with the gateway application: the caller, the service calls, the
request's body and headers, and the answer (``application/fhir+json``, OperationOutcomes for
every refusal).

Authentication, rate limits and SMART scopes are the JSON API's (`GatewayApp`); only the shape
of the answers differs: 401 and 403 carry the same RFC 6750 challenges, as OperationOutcomes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from opentelemetry import trace
from starlette.requests import Request
from starlette.responses import Response

from gateway.adapters.downstream import InvalidRequestBodyError
from gateway.application import (
    GatewayApp,
    InsufficientScopeError,
    NotAuthenticatedError,
    RateLimitedError,
    Route,
)
from gateway.domain.identity import Caller
from gateway.entrypoints.bearer import bearer_of, scope_challenge, token_challenge
from gateway.entrypoints.edge import RequestTooLargeError, read_body
from gateway.entrypoints.fhir.formats import JSON_TYPES, check_format
from gateway.entrypoints.fhir.outcomes import (
    BASE_PATH,
    FHIR_JSON,
    FhirError,
    Issue,
    operation_outcome,
)
from gateway.entrypoints.fhir.subsetting import WHOLE, Subset, requested_subset, subset_answer
from gateway.ports import DownstreamAnswer, IdentityProviderUnavailableError

_WEAK_ETAG = re.compile(r'^(?:W/)?"(\d{1,19})"$')

Handler = Callable[[Request], Awaitable[Response]]


class FhirExchange:
    """The gateway application as the FHIR API's handlers use it."""

    def __init__(self, app: GatewayApp, *, max_body_bytes: int) -> None:
        self._app = app
        self._max_body_bytes = max_body_bytes

    async def caller(self, request: Request) -> Caller:
        """The authenticated, admitted caller; FhirError 401, 429 or 503 otherwise."""
        try:
            caller = await self._app.authenticate(
                bearer_of(request), request_id=request.state.request_id
            )
            await self._app.admit(caller)
        except NotAuthenticatedError as refused:
            challenge = {"WWW-Authenticate": token_challenge(refused.error)}
            raise FhirError.of(
                401, "login", "a valid access token is required", headers=challenge
            ) from None
        except IdentityProviderUnavailableError:
            raise FhirError.of(
                503, "transient", "the identity provider cannot be reached",
                headers={"Retry-After": "5"},
            ) from None  # fmt: skip
        except RateLimitedError as limited:
            retry = {"Retry-After": str(limited.retry_after_s)}
            raise FhirError.of(429, "throttled", "too many requests", headers=retry) from None
        return caller

    async def call(
        self, caller: Caller, route: Route, values: Mapping[str, Any], request: Request
    ) -> DownstreamAnswer:
        """The service's answer to one RPC; FhirError 403 when the scopes do not allow it."""
        try:
            return await self._app.perform(
                caller, route, values, request_id=request.state.request_id
            )
        except InsufficientScopeError as missing:
            raise FhirError.of(
                403, "forbidden", f"the token's scopes do not allow this; needs {missing.scope}",
                headers={"WWW-Authenticate": scope_challenge(missing.scope)},
            ) from None  # fmt: skip
        except InvalidRequestBodyError as invalid:
            raise FhirError.of(400, "invalid", str(invalid)) from None

    async def resource_body(self, request: Request) -> dict[str, Any]:
        """The JSON resource a create or update sends; FhirError 400, 413 or 415."""
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in JSON_TYPES:
            raise FhirError.of(415, "not-supported", "send application/fhir+json")
        try:
            raw = await read_body(request, self._max_body_bytes)
        except RequestTooLargeError:
            raise FhirError.of(
                413, "too-long", f"the body is over {self._max_body_bytes} bytes"
            ) from None
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise FhirError.of(400, "structure", "the body is not JSON") from None
        if not isinstance(body, dict):
            raise FhirError.of(400, "structure", "the body must be a JSON object (a resource)")
        return body


def endpoint(path: str, handlers: Mapping[str, Handler]) -> Handler:
    """The handler of the request's method (HEAD is GET's), answering FhirError with its
    OperationOutcome: 405 for another method, 406 to a caller that accepts no JSON (or asks
    another ``_format``), 400 for a ``_summary`` or ``_elements`` it cannot use; a read's
    answer subset as those ask."""
    allowed = ", ".join(handlers)
    # Searches and histories answer Bundles: the only answers _summary=count can count.
    bundles = path.endswith("/_history") or (
        "{" not in path.removeprefix(BASE_PATH) and not path.endswith("/metadata")
    )

    async def handle(request: Request) -> Response:
        # The span's name is the route, never the path with its ids.
        trace.get_current_span().update_name(f"{request.method} {path}")
        reading = request.method in {"GET", "HEAD"}
        handler = handlers.get("GET" if reading else request.method)
        try:
            if handler is None:
                raise FhirError.of(405, "not-supported", f"this path serves {allowed}",
                                   headers={"Allow": allowed})  # fmt: skip
            params = list(request.query_params.multi_items())
            check_format(params, request.headers.get("accept", ""))
            subset = requested_subset(params, bundle=bundles) if reading else WHOLE
            return subsetted(await handler(request), subset)
        except FhirError as failed:
            return outcome_response(failed)

    return handle


def subsetted(response: Response, subset: Subset) -> Response:
    """The handler's answer with only what ``_summary``/``_elements`` keep (a success's)."""
    if subset.whole or response.status_code != 200 or not response.body:
        return response
    resource = subset_answer(json.loads(bytes(response.body)), subset)
    headers = {key: value for key, value in response.headers.items()
               if key not in {"content-length", "content-type"}}  # fmt: skip
    return fhir_response(resource, response.status_code, headers)


def preference(request: Request, name: str) -> str:
    """A ``Prefer`` header's value for ``name`` (``return``, ``handling``), or ""."""
    for part in request.headers.get("prefer", "").split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"')
    return ""


def expected_version(request: Request) -> int | None:
    """The version ``If-Match`` names (``W/"3"``), None without one; FhirError 400 if unreadable."""
    header = request.headers.get("if-match")
    if header is None:
        return None
    match = _WEAK_ETAG.match(header.strip())
    if not match:
        raise FhirError.of(400, "invalid", 'If-Match must name a version: W/"<versionId>"')
    return int(match[1])


def etag(version: int | str) -> str:
    return f'W/"{version}"'


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + BASE_PATH


def fhir_response(
    resource: Mapping[str, Any] | None, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    content = b"" if resource is None else json.dumps(resource, separators=(",", ":")).encode()
    media_type = None if resource is None else f"{FHIR_JSON}; charset=utf-8"
    return Response(content, status_code=status, headers=dict(headers or {}),
                    media_type=media_type)  # fmt: skip


def outcome_response(failed: FhirError) -> Response:
    return fhir_response(operation_outcome(failed.issues), failed.status, failed.headers)


def information(diagnostics: str) -> dict[str, Any]:
    """An OperationOutcome that informs (``Prefer: return=OperationOutcome``)."""
    return operation_outcome([Issue("informational", diagnostics, severity="information")])
