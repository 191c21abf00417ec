"""The telemetry section: the append path with tracing and metrics on, next to it with them off.

"Off" is a process without telemetry: no tracer provider (the producer span and the gRPC spans
are not recorded) and no metrics endpoint. "On" is what a service runs: server spans, producer
spans and the RPC metrics interceptor, spans batched to an exporter (one that discards them,
so the figure is the services' cost, not a collector's), and the metrics endpoint scraped every
second. The two alternate twice and each side's rate is the mean of its two phases, so drift
over the run (a growing topic, a warming JIT of the broker) falls on both.

Metric recording itself (a histogram observation per append, a few per commit) is part of the
kernel and runs in both: ``telemetry_metrics_us_per_append`` prices it apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from statistics import mean
from tempfile import TemporaryDirectory
from uuid import uuid4

import grpc
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.observability import http_get
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from bench.append_path import bench_store_config, measure_append
from bench.load import LoadResult, Phase
from bench.options import Options, progress
from bench.report import Figure
from bench.topics import delete_topics
from clinical.events.v1 import envelope_pb2
from clinical_platform.eventlog.store import EventStoreConfig
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.observability.endpoint import start_metrics_endpoint
from clinical_platform.observability.eventlog import CommitMetrics
from clinical_platform.observability.messaging import publishing
from clinical_platform.observability.metrics import APPEND_DURATION
from clinical_platform.observability.rpc import RpcTelemetry
from clinical_platform.telemetry import configure_telemetry, tracer

ROUNDS = 2
_TOPIC = "clinical.bench.events.v1"


class _Discard(SpanExporter):
    """Accepts every batch and keeps nothing."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


@contextlib.asynccontextmanager
async def _observed() -> AsyncIterator[Sequence[grpc.aio.ServerInterceptor]]:
    """Telemetry as a service configures it, plus a scraper; yields the server interceptors."""
    # The callers share this process: their client spans are not the service's cost.
    telemetry = configure_telemetry(
        service_name="bench", service_version="0", install_globals=False, trace_grpc_clients=False
    )
    telemetry.tracer_provider.add_span_processor(BatchSpanProcessor(_Discard()))
    endpoint = start_metrics_endpoint("127.0.0.1", 0)

    async def scrape() -> None:
        url = f"http://127.0.0.1:{endpoint.port}/metrics"
        while True:
            await asyncio.to_thread(http_get, url)
            await asyncio.sleep(1)

    scraper = asyncio.create_task(scrape())
    try:
        yield [RpcTelemetry()]
    finally:
        scraper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scraper
        endpoint.stop()
        telemetry.shutdown()


async def _append(config: EventStoreConfig, phase: Phase, *, observed: bool) -> LoadResult:
    if not observed:
        return (await measure_append(config, phase)).load
    async with _observed() as interceptors:
        return (await measure_append(config, phase, interceptors)).load


def _spans_us_per_append(samples: int = 5_000) -> float:
    """What the spans of one append cost the loop: the server span and the producer span
    (stamping the envelope), recorded and batched to a discarding exporter."""
    telemetry = configure_telemetry(
        service_name="bench", service_version="0", install_globals=False, trace_grpc_clients=False
    )
    telemetry.tracer_provider.add_span_processor(BatchSpanProcessor(_Discard()))
    server = tracer("bench.server")
    envelope = envelope_pb2.Envelope(event_id=str(uuid4()), aggregate_id=str(uuid4()))
    try:
        started = time.perf_counter()
        for _ in range(samples):
            with (
                server.start_as_current_span("/bench.Counter/Increment", kind=SpanKind.SERVER),
                publishing(_TOPIC, 0, [envelope]),
            ):
                pass
        return (time.perf_counter() - started) / samples * 1e6
    finally:
        telemetry.shutdown()


def _metrics_us_per_append(samples: int = 20_000) -> float:
    """What the metric calls of one append and its share of a group commit cost."""
    started = time.perf_counter()
    for _ in range(samples):
        APPEND_DURATION.labels(_TOPIC, "ok").observe(0.002)
        CommitMetrics(_TOPIC).committed(1)
    return (time.perf_counter() - started) / samples * 1e6


async def run_section(options: Options, servers: ServerEndpoints) -> list[Figure]:
    """Append throughput with telemetry off and on, alternating, in one run."""
    bootstrap = servers.kafka_bootstrap_servers
    loads: dict[bool, list[LoadResult]] = {False: [], True: []}
    for round_ in range(ROUNDS):
        for observed in (False, True):
            service = f"bench-{uuid4().hex[:12]}"
            state = "on" if observed else "off"
            progress(f"telemetry {state} (round {round_ + 1} of {ROUNDS}): the append path")
            with TemporaryDirectory(prefix="bench-state-") as state_dir:
                config = bench_store_config(service, bootstrap, Path(state_dir))
                try:
                    load = await _append(config, options.phase, observed=observed)
                    loads[observed].append(load)
                finally:
                    await delete_topics(bootstrap, [events_topic(service)])
    spans_us = _spans_us_per_append()
    off, on = (mean(load.answered_per_s for load in loads[side]) for side in (False, True))
    cpu_off, cpu_on = (
        mean(load.loop_cpu_ms_per_call for load in loads[side]) for side in (False, True)
    )
    return [
        Figure("telemetry_off_append_rps", off, "req/s", 0, "no tracer, no metrics endpoint"),
        Figure("telemetry_on_append_rps", on, "req/s", 0, "spans batched, /metrics scraped 1/s"),
        Figure(
            "telemetry_overhead",
            1 - on / off,
            "share",
            3,
            "1 - on/off: append throughput lost to telemetry (target <= 0.05)",
        ),
        Figure(
            "telemetry_cpu_overhead",
            cpu_on / cpu_off - 1,
            "share",
            3,
            "event loop CPU per append, on/off - 1 (steadier on a shared machine)",
        ),
        Figure(
            "telemetry_spans_us_per_append",
            spans_us,
            "us",
            1,
            "server + producer span of one append, recorded and batched",
        ),
        Figure(
            "telemetry_spans_share_of_append_cpu",
            spans_us / 1000 / cpu_off,
            "share",
            3,
            "that against the loop CPU of one append with telemetry off",
        ),
        Figure(
            "telemetry_metrics_us_per_append",
            _metrics_us_per_append(),
            "us",
            2,
            "metric calls of one append and a one-event commit (in both runs)",
        ),
    ]
