"""The floor: what the gRPC harness alone sustains, with a handler that does nothing."""

from __future__ import annotations

from uuid import uuid4

import grpc

from bench.load import LoadResult, Phase, command_requests, drive, unary_endpoint


async def _answer_nothing(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return b""


async def measure_grpc_floor(phase: Phase) -> LoadResult:
    """Requests per second of an empty unary handler; the same request bytes as the append."""
    requests = command_requests([uuid4() for _ in range(phase.concurrency)])
    async with unary_endpoint(_answer_nothing) as call:
        return await drive(call, requests, phase)
