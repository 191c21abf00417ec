"""The provenance of an inbound gRPC read, read from the call itself (as `command_context` does
for commands)."""

from __future__ import annotations

import grpc

from clinical_platform.access.records import RequestOrigin
from clinical_platform.eventlog.envelope import current_trace_context
from clinical_platform.grpc_context import (
    DEFAULT_PURPOSE_OF_USE,
    PURPOSE_OF_USE_HEADER,
    caller_origin,
)


def request_origin(context: grpc.aio.ServicerContext) -> RequestOrigin:
    """The end user's address and user agent (`caller_origin`), ``x-purpose-of-use``
    (default ``TREAT``), ``x-request-id`` and the current span's trace context."""
    metadata = {key: value for key, value in context.invocation_metadata() or () if key}
    source_ip, user_agent = caller_origin(metadata, context.peer())
    return RequestOrigin(
        source_ip=source_ip,
        user_agent=user_agent,
        purpose_of_use=str(metadata.get(PURPOSE_OF_USE_HEADER, DEFAULT_PURPOSE_OF_USE)),
        request_id=str(metadata.get("x-request-id", "")),
        trace_context=current_trace_context(),
    )
