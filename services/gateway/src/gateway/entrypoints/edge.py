"""What every HTTP request gets at the edge: a request id, a SERVER span in the caller's W3C
trace (or a new trace), the client's origin, a body size limit and security headers on every
answer (pure ASGI, so streaming stays streaming). The span and the origin are current while the
request runs, so the service's call is in the same trace and records the end user's address."""

from __future__ import annotations

import json
import re
import secrets
import uuid

from opentelemetry import propagate, trace
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.domain.origin import IpNetwork, client_origin, current_origin
from gateway.entrypoints.fhir.outcomes import BASE_PATH, FHIR_JSON, Issue, operation_outcome

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_tracer = trace.get_tracer("gateway.http")
CSP = b"content-security-policy"
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (CSP, b"default-src 'none'; frame-ancestors 'none'"),
)


class RequestTooLargeError(Exception):
    """The body is over the gateway's limit."""


def _traceparent(span: trace.Span) -> str:
    context = span.get_span_context()
    if not context.is_valid:
        return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int,
                 trusted_proxies: tuple[IpNetwork, ...] = ()) -> None:  # fmt: skip
        self._app = app
        self._max_body_bytes = max_body_bytes
        self._trusted_proxies = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if REQUEST_ID.match(given) else str(uuid.uuid4())
        scope.setdefault("state", {})
        scope["state"].update(request_id=request_id)
        # Only the W3C headers are read (a malformed traceparent starts a new trace).
        carrier = {k: headers[k] for k in ("traceparent", "tracestate") if k in headers}
        peer = (scope.get("client") or ("", 0))[0]
        forwarded = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
        origin = current_origin.set(client_origin(peer, forwarded, headers.get("user-agent", ""),
                                                  self._trusted_proxies))  # fmt: skip
        try:
            with _tracer.start_as_current_span(
                str(scope["method"]), context=propagate.extract(carrier),
                kind=trace.SpanKind.SERVER,
                attributes={"http.request.method": str(scope["method"])},
            ) as span:  # fmt: skip
                await self._serve(scope, receive, send, span)
        finally:
            current_origin.reset(origin)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, span: trace.Span) -> None:
        request_id = scope["state"]["request_id"]
        extra = [*SECURITY_HEADERS, (b"x-request-id", request_id.encode()),
                 (b"traceparent", _traceparent(span).encode())]  # fmt: skip

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                own = list(message.get("headers", []))
                # A page that sets its own policy (the console's) keeps it: two CSP headers
                # would both be enforced, and ours allows nothing.
                has_csp = any(k.lower() == b"content-security-policy" for k, _ in own)
                message["headers"] = [*own, *(h for h in extra
                                              if not (has_csp and h[0] == CSP))]  # fmt: skip
                span.set_attribute("http.response.status_code", int(message["status"]))
            await send(message)

        length = next((v.decode() for k, v in scope["headers"] if k == b"content-length"), "")
        if length.isdigit() and int(length) > self._max_body_bytes:
            content_type, body = self._too_large(str(scope["path"]))
            start = {"type": "http.response.start", "status": 413,
                     "headers": [(b"content-type", content_type)]}  # fmt: skip
            await send_with_headers(start)
            await send_with_headers({"type": "http.response.body", "body": body})
            return
        await self._app(scope, receive, send_with_headers)

    def _too_large(self, path: str) -> tuple[bytes, bytes]:
        """The 413's content type and body: an OperationOutcome on the FHIR API's paths."""
        message = f"the body is over {self._max_body_bytes} bytes"
        if path.startswith(f"{BASE_PATH}/"):
            outcome = operation_outcome([Issue("too-long", message)])
            return FHIR_JSON.encode(), json.dumps(outcome).encode()
        body = {"error": "request_too_large", "message": message, "details": []}
        return b"application/json", json.dumps(body).encode()


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (RequestTooLargeError) once it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)
