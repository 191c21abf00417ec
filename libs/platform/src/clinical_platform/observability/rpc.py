"""Every gRPC call a server hosts: its SERVER span and its RED metrics (rate, errors by status
code, duration), from one interceptor.

The span continues the caller's ``traceparent`` and is named ``/<service>/<method>``; attributes
are ``rpc.system``, ``rpc.service``, ``rpc.method`` and ``rpc.grpc.status_code``, never a request
field or an error's text (which may name a patient). Codes that are the server's fault (UNKNOWN,
DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS) mark the span as an error;
a caller's mistake does not. Spans are made only while telemetry is configured, and not for
the services named in ``OTEL_PYTHON_GRPC_EXCLUDED_SERVICES`` (comma-separated).

One interceptor, not OpenTelemetry's generic gRPC server instrumentation: that one wrapped each
call in several more layers and recorded a second set of metrics, which cost the append path
about 0.13 ms of the event loop per call (docs/observability.md, "What telemetry costs").

The interceptor sits outermost, so refusals by the other interceptors (authentication, the
request guard) are counted and traced too. Methods the server does not host are not counted at
all: their names come from the caller and would make the label set unbounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc
from opentelemetry import propagate
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, StatusCode

from clinical_platform import telemetry
from clinical_platform.observability.metrics import RPC_DURATION, RPC_REQUESTS

_Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]

TRACER_NAME = "clinical_platform.rpc"
_SERVER_FAULTS = frozenset({
    grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
})  # fmt: skip
_TRACE_HEADERS = ("traceparent", "tracestate")


def _names(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return service, name


def _excluded_services() -> frozenset[str]:
    listed = os.environ.get("OTEL_PYTHON_GRPC_EXCLUDED_SERVICES", "")
    return frozenset(name.strip() for name in listed.split(",") if name.strip())


def _code_of(
    context: grpc.aio.ServicerContext[Any, Any], failure: BaseException | None
) -> grpc.StatusCode:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(failure, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED  # the caller went away (or the server is stopping)
    return grpc.StatusCode.OK if failure is None else grpc.StatusCode.UNKNOWN


class RpcTelemetry(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # untyped upstream base
    """Traces, counts and times each call by method and status code."""

    def __init__(self) -> None:
        self._untraced = _excluded_services()
        # Method -> (the handler grpc gave, ours): a server hands out the same handler object
        # per method, so each is wrapped once, not on every call.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self, continuation: _Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        call = _Call(*_names(method), traced=_names(method)[0] not in self._untraced)
        wrapped = _observed(handler, call)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


def _observed(handler: grpc.RpcMethodHandler, call: _Call) -> grpc.RpcMethodHandler:
    if handler.unary_unary is not None:
        return handler._replace(unary_unary=call.unary(handler.unary_unary))
    if handler.stream_unary is not None:
        return handler._replace(stream_unary=call.unary(handler.stream_unary))
    if handler.unary_stream is not None:
        return handler._replace(unary_stream=call.stream(handler.unary_stream))
    if handler.stream_stream is not None:
        return handler._replace(stream_stream=call.stream(handler.stream_stream))
    return handler


class _Call:
    """One hosted method: wraps its behaviour in the span and the metrics."""

    def __init__(self, service: str, method: str, *, traced: bool) -> None:
        self.service = service
        self.method = method
        self.traced = traced
        self._name = f"/{service}/{method}"
        self._attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
        # Label children resolved once: labels() takes a lock and builds a key on every use.
        self._duration = RPC_DURATION.labels(service, method)
        self._requests: dict[grpc.StatusCode, Any] = {}

    def unary(self, behaviour: Any) -> Any:
        async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            with self._observing(context) as outcome:
                try:
                    return await behaviour(request, context)
                except BaseException as error:
                    outcome.append(error)
                    raise

        return observed

    def stream(self, behaviour: Any) -> Any:
        if not inspect.isasyncgenfunction(behaviour):
            # A coroutine that answers with context.write (the health Watch): like a unary.
            return self.unary(behaviour)

        async def observed(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            with self._observing(context) as outcome:
                try:
                    async for response in behaviour(request, context):
                        yield response
                except BaseException as error:
                    outcome.append(error)
                    raise

        return observed

    @contextlib.contextmanager
    def _observing(
        self, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Iterator[list[BaseException]]:
        """Yields a list the call puts its failure in; records span and metrics at the end."""
        outcome: list[BaseException] = []
        started = time.perf_counter()
        with self._span(context) as span:
            try:
                yield outcome
            finally:
                code = _code_of(context, outcome[0] if outcome else None)
                self._counted(code).inc()
                self._duration.observe(time.perf_counter() - started)
                if span.is_recording():
                    span.set_attribute("rpc.grpc.status_code", code.value[0])
                    if code in _SERVER_FAULTS:
                        span.set_status(StatusCode.ERROR, code.name)

    def _counted(self, code: grpc.StatusCode) -> Any:
        counter = self._requests.get(code)
        if counter is None:
            counter = self._requests[code] = RPC_REQUESTS.labels(
                self.service, self.method, code.name
            )
        return counter

    def _span(
        self, context: grpc.aio.ServicerContext[Any, Any]
    ) -> contextlib.AbstractContextManager[Span]:
        if not self.traced or not telemetry.configured():
            return contextlib.nullcontext(INVALID_SPAN)
        carrier = {
            key: value
            for key, value in context.invocation_metadata() or ()
            if key in _TRACE_HEADERS and isinstance(value, str)
        }
        return telemetry.tracer(TRACER_NAME).start_as_current_span(
            self._name,
            # A call without a traceparent starts a trace of its own (the task's context is
            # the server's, which holds no span).
            context=propagate.extract(carrier) if carrier else None,
            kind=SpanKind.SERVER,
            attributes=self._attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
