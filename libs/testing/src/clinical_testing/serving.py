"""gRPC services under test: served on a free loopback port, and what their refusals say."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import grpc

# Neither package marks itself typed (google.rpc ships .pyi files but no py.typed marker).
from google.rpc import error_details_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status  # type: ignore[import-untyped]

from clinical_platform.grpc_server import GrpcService, start_grpc_server


@asynccontextmanager
async def channel_to(
    services: Sequence[GrpcService], *, user_agent: str | None = None
) -> AsyncIterator[grpc.aio.Channel]:
    """Serve ``services`` on 127.0.0.1 at a free port; yield a channel to them (saying it is
    ``user_agent`` when given); stop after."""
    server = await start_grpc_server(host="127.0.0.1", port=0, services=services)
    options = [("grpc.primary_user_agent", user_agent)] if user_agent else []
    try:
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{server.port}", options=options
        ) as channel:
            yield channel
    finally:
        await server.stop(0)


def bad_request_fields(error: grpc.aio.AioRpcError) -> list[str]:
    """The field names of an INVALID_ARGUMENT's google.rpc.BadRequest details."""
    status = rpc_status.from_call(error)
    bad_request = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad_request)
    return [violation.field for violation in bad_request.field_violations]
