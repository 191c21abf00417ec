"""An HTTP front door's server span and RED metrics, as an ASGI middleware.

The span continues the caller's ``traceparent`` and is named ``<METHOD> <route template>``
(``POST /api/v1/orders/{order_id}/sign``); the gRPC calls the handler makes are its children
(the gRPC client instrumentation takes the current span). Attributes and labels are the method,
the route template and the status code: never the path (ids), the query (a search may name a
patient) or a header value. A path no route matches is counted as ``unmatched``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, Protocol

from opentelemetry import propagate
from opentelemetry.trace import SpanKind, StatusCode

from clinical_platform.observability.metrics import HTTP_DURATION, HTTP_REQUESTS
from clinical_platform.telemetry import tracer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

TRACER_NAME = "clinical_platform.http"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_FULL_MATCH = 2  # starlette.routing.Match.FULL, without importing a web framework here


class Route(Protocol):
    """A route that can tell whether it serves a request, and has a ``path`` template (a
    Starlette route)."""

    def matches(self, scope: Scope) -> tuple[Any, Scope]: ...


class HttpTelemetry:
    """Wraps an ASGI app: one SERVER span and one count and timing per HTTP request."""

    def __init__(self, app: Asgi, routes: Sequence[Route]) -> None:
        self._app = app
        self._routes = routes

    def _route_of(self, scope: Scope) -> str:
        for route in self._routes:
            match, _ = route.matches(scope)
            if getattr(match, "value", match) == _FULL_MATCH:
                return str(getattr(route, "path", "unmatched"))
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in _METHODS else "_OTHER"
        route = self._route_of(scope)
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name in (b"traceparent", b"tracestate")
        }
        status = 500  # unless the app answers
        started = time.perf_counter()
        with tracer(TRACER_NAME).start_as_current_span(
            f"{method} {route}",
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": route},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:

            async def send_noting_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            try:
                await self._app(scope, receive, send_noting_status)
            finally:
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
                    span.set_attribute("error.type", str(status))
                HTTP_REQUESTS.labels(route, method, f"{status // 100}xx").inc()
                HTTP_DURATION.labels(route, method).observe(time.perf_counter() - started)
