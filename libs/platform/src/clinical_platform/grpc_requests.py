"""The request guard every server runs: bytes that are no request, and requests over their limits.

grpc answers UNKNOWN when a request's bytes do not parse (the deserializer raised), yet a
caller's mistake is INVALID_ARGUMENT. `RequestGuard` wraps each unary-request method's
deserializer so that a `DecodeError` is answered INVALID_ARGUMENT with a short message, and
checks each parsed request against the limits its package declared (`clinical_platform.limits`)
before the servicer runs: a request unsafe to read (a string, bytes or repeated field over its
cap, a Timestamp out of range) is refused before authentication, any regex or any I/O, with a
field violation per broken cap; so is a declared purpose of use (``x-purpose-of-use``) that is
not one HL7 PurposeOfUse code, and a malformed break-glass reason (`break_glass`).
Unknown enum numbers are left to the translators, which refuse
them together with the request's other problems.

`start_grpc_server` installs it on every server, innermost of the interceptors.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message

from clinical_platform.break_glass import break_glass_violation
from clinical_platform.grpc_context import purpose_of_use_violation
from clinical_platform.grpc_errors import invalid_argument
from clinical_platform.limits import limits_of


class _Undecodable:
    """What the guarded deserializer hands on for bytes that are not the request message."""

    __slots__ = ()


_UNDECODABLE = _Undecodable()
_NOT_A_MESSAGE = "the request is not a valid protobuf message of this method"

Handler = Any  # grpc.RpcMethodHandler: a namedtuple grpc does not type


class RequestGuard(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """INVALID_ARGUMENT for undecodable bytes and for requests over their declared limits."""

    def __init__(self) -> None:
        # Method -> (the handler grpc gave, the guarded one): wrapped once, not on every call.
        self._guarded: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        known = self._guarded.get(handler_call_details.method)
        if known is not None and known[0] is handler:
            return known[1]
        guarded = _guarded(handler)
        self._guarded[handler_call_details.method] = (handler, guarded)
        return guarded


def _guarded(handler: Handler) -> Handler:
    if handler.unary_unary is not None:
        return handler._replace(
            request_deserializer=_tolerant(handler.request_deserializer),
            unary_unary=_guarded_unary(handler.unary_unary),
        )
    if handler.unary_stream is not None:
        return handler._replace(
            request_deserializer=_tolerant(handler.request_deserializer),
            unary_stream=_guarded_stream(handler.unary_stream),
        )
    return handler  # streamed requests (reflection) parse message by message, unguarded


def _tolerant(deserialize: Callable[[bytes], Message]) -> Callable[[bytes], Any]:
    def parse(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except DecodeError:
            return _UNDECODABLE

    return parse


async def _refuse_if_bad(request: Any, context: grpc.aio.ServicerContext) -> None:
    if request is _UNDECODABLE:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _NOT_A_MESSAGE)
    metadata = context.invocation_metadata() or ()
    declared = [
        v for v in (purpose_of_use_violation(metadata), break_glass_violation(metadata)) if v
    ]
    if declared:
        await invalid_argument(context, declared)
    if isinstance(request, Message):
        violations = limits_of(request).unsafe_violations(request)
        if violations:
            await invalid_argument(context, violations)


def _guarded_unary(
    behavior: Callable[[Any, grpc.aio.ServicerContext], Any],
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _refuse_if_bad(request, context)
        answer = behavior(request, context)
        return await answer if inspect.isawaitable(answer) else answer

    return guarded


def _guarded_stream(behavior: Callable[[Any, grpc.aio.ServicerContext], Any]) -> Any:
    if not inspect.isasyncgenfunction(behavior):
        # A coroutine that answers with context.write: guarded like a unary method.
        return _guarded_unary(behavior)

    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await _refuse_if_bad(request, context)
        async for answer in behavior(request, context):
            yield answer

    return guarded
