"""The gRPC harness every served figure shares: one grpc.aio server, one client, C callers.

Both sides run on this process's event loop. Each caller sends its next request as soon as the
previous answer arrives (a closed loop), so the rate measures what the server sustains at C
requests in flight. The wire format is bytes in, bytes out: no proto, no serialisation cost.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from uuid import UUID, uuid4

import grpc

from bench.cpu import CpuUse, cpu_use, read_cpu

UnaryHandler = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]
UnaryCall = Callable[[bytes], Awaitable[bytes]]
RequestSource = Callable[[int], bytes]
"""The next request of caller ``i``."""

_SERVICE = "clinical.bench.v1.BenchService"
_METHOD = "Call"
# Generous: a call this slow is a failure worth seeing, not a latency sample.
_CALL_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Phase:
    """C callers, a warm-up window (connections, first commands), then the measured window."""

    concurrency: int
    seconds: float
    warmup_s: float


@dataclass(frozen=True)
class LoadResult:
    """What one measured window saw: a latency per answered call, failures by status code."""

    latencies_s: list[float]
    failures: Counter[str]
    cpu: CpuUse

    @property
    def seconds(self) -> float:
        return self.cpu.wall_s

    @property
    def answered_per_s(self) -> float:
        return len(self.latencies_s) / self.seconds

    @property
    def loop_cpu_ms_per_call(self) -> float:
        """The loop thread's CPU time per answered call: what one call costs, both sides."""
        if not self.latencies_s:
            return float("nan")
        return self.cpu.loop_cpu_s * 1000 / len(self.latencies_s)

    @property
    def machine_busy(self) -> float:
        return self.cpu.machine_busy

    def percentile_ms(self, percent: int) -> float:
        return percentile_ms(self.latencies_s, percent)


def percentile_ms(latencies_s: list[float], percent: int) -> float:
    """The `percent` percentile of latencies in seconds, in milliseconds (NaN below 2)."""
    if len(latencies_s) < 2:
        return float("nan")
    cut_points = statistics.quantiles(latencies_s, n=100, method="inclusive")
    return cut_points[percent - 1] * 1000


def command_requests(aggregate_ids: list[UUID]) -> RequestSource:
    """Caller ``i`` commands ``aggregate_ids[i]``, each time with a fresh request id."""
    prefixes = [f"{aggregate_id} " for aggregate_id in aggregate_ids]

    def next_request(caller: int) -> bytes:
        return f"{prefixes[caller]}{uuid4()}".encode()

    return next_request


def parse_command_request(request: bytes) -> tuple[UUID, str]:
    """The aggregate id and request id of a `command_requests` request."""
    aggregate_id, _, request_id = request.decode().partition(" ")
    return UUID(aggregate_id), request_id


@asynccontextmanager
async def unary_endpoint(
    handler: UnaryHandler, interceptors: Sequence[grpc.aio.ServerInterceptor] = ()
) -> AsyncIterator[UnaryCall]:
    """Serve `handler` on a loopback port; yield a client call to it over one channel."""
    server = grpc.aio.server(interceptors=interceptors, options=[("grpc.so_reuseport", 0)])
    method = grpc.unary_unary_rpc_method_handler(handler)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(_SERVICE, {_METHOD: method}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call: UnaryCall = partial(
                channel.unary_unary(f"/{_SERVICE}/{_METHOD}"), timeout=_CALL_TIMEOUT_S
            )
            yield call
    finally:
        await server.stop(grace=None)


async def drive(call: UnaryCall, requests: RequestSource, phase: Phase) -> LoadResult:
    """Run the phase's warm-up window, then its measured window, whose result this is."""
    await _window(call, requests, phase.concurrency, phase.warmup_s)
    return await _window(call, requests, phase.concurrency, phase.seconds)


async def _window(
    call: UnaryCall, requests: RequestSource, concurrency: int, seconds: float
) -> LoadResult:
    latencies_s: list[float] = []
    failures: Counter[str] = Counter()
    started = read_cpu()
    deadline = started.wall_s + seconds

    async def caller(index: int) -> None:
        while time.perf_counter() < deadline:
            request = requests(index)
            sent = time.perf_counter()
            try:
                await call(request)
            except grpc.aio.AioRpcError as error:
                failures[error.code().name] += 1
            else:
                latencies_s.append(time.perf_counter() - sent)

    await asyncio.gather(*(caller(index) for index in range(concurrency)))
    # Calls sent before the deadline count, so the window ends when the last one is answered.
    return LoadResult(latencies_s, failures, cpu_use(started, read_cpu()))
