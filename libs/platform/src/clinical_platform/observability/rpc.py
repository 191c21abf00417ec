"""RED metrics of every gRPC method a server hosts: rate, errors (by status code), duration.

The interceptor sits outermost, so refusals by the other interceptors (authentication, the
request guard) are counted too. Methods the server does not host are not counted at all: their
names come from the caller and would make the label set unbounded.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from clinical_platform.observability.metrics import RPC_DURATION, RPC_REQUESTS

_Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


def _names(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return service, name


def _code_of(context: grpc.aio.ServicerContext[Any, Any], failure: BaseException | None) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if isinstance(failure, asyncio.CancelledError):
        return "CANCELLED"  # the caller went away (or the server is stopping)
    return "OK" if failure is None else "UNKNOWN"


class RpcMetrics(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # untyped upstream base
    """Counts each call by method and status code and times it."""

    async def intercept_service(
        self, continuation: _Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        service, method = _names(handler_call_details.method)
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=_unary(handler.unary_unary, service, method))
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=_unary(handler.stream_unary, service, method))
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=_stream(handler.unary_stream, service, method))
        if handler.stream_stream is not None:
            return handler._replace(stream_stream=_stream(handler.stream_stream, service, method))
        return handler


def _record(service: str, method: str, code: str, started: float) -> None:
    RPC_REQUESTS.labels(service, method, code).inc()
    RPC_DURATION.labels(service, method).observe(time.perf_counter() - started)


def _unary(behaviour: Any, service: str, method: str) -> Any:
    async def measured(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started, failure = time.perf_counter(), None
        try:
            return await behaviour(request, context)
        except BaseException as error:
            failure = error
            raise
        finally:
            _record(service, method, _code_of(context, failure), started)

    return measured


def _stream(behaviour: Any, service: str, method: str) -> Any:
    if not inspect.isasyncgenfunction(behaviour):
        # A coroutine that answers with context.write (the health Watch): timed like a unary.
        return _unary(behaviour, service, method)

    async def measured(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        started, failure = time.perf_counter(), None
        try:
            async for response in behaviour(request, context):
                yield response
        except BaseException as error:
            failure = error
            raise
        finally:
            _record(service, method, _code_of(context, failure), started)

    return measured
