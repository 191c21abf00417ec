"""gRPC services under test, served on a free loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import grpc

from clinical_platform.grpc_server import GrpcService, start_grpc_server


@asynccontextmanager
async def channel_to(services: Sequence[GrpcService]) -> AsyncIterator[grpc.aio.Channel]:
    """Serve ``services`` on 127.0.0.1 at a free port; yield a channel to them; stop after."""
    server = await start_grpc_server(host="127.0.0.1", port=0, services=services)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield channel
    finally:
        await server.stop(0)
