"""What every HTTP request gets at the edge: a request id, W3C trace context, a body size
limit and security headers on every answer (pure ASGI, so streaming stays streaming)."""

from __future__ import annotations

import json
import re
import secrets
import uuid

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
)


class RequestTooLargeError(Exception):
    """The body is over the gateway's limit."""


def trace_headers(traceparent: str, tracestate: str) -> dict[str, str]:
    """The caller's trace context when valid, else a new trace (sampled flag off)."""
    match = TRACEPARENT.match(traceparent)
    if match and set(match.group(1)) != {"0"} and set(match.group(2)) != {"0"}:
        headers = {"traceparent": traceparent}
        if tracestate and len(tracestate) <= 512:
            headers["tracestate"] = tracestate
        return headers
    return {"traceparent": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"}


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self._app = app
        self._max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if REQUEST_ID.match(given) else str(uuid.uuid4())
        trace = trace_headers(headers.get("traceparent", ""), headers.get("tracestate", ""))
        scope.setdefault("state", {})
        scope["state"].update(request_id=request_id, trace_headers=trace)
        extra = [*SECURITY_HEADERS, (b"x-request-id", request_id.encode()),
                 (b"traceparent", trace["traceparent"].encode())]  # fmt: skip

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self._max_body_bytes:
            body = json.dumps(
                {
                    "error": "request_too_large",
                    "message": f"the body is over {self._max_body_bytes} bytes",
                    "details": [],
                }
            )
            await send_with_headers(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send_with_headers({"type": "http.response.body", "body": body.encode()})
            return  # fmt: skip
        await self._app(scope, receive, send_with_headers)


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
