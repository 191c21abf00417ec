"""The telemetry section: the append path with tracing and metrics on, next to it with them off.

"Off" is a server without telemetry: no tracer provider (the producer span and the gRPC spans
are not recorded), no RPC metrics interceptor and no metrics endpoint. "On" is what a service
runs: server spans, producer spans and the RPC metrics interceptor, spans batched to an
exporter (one that discards them, so the figure is the services' cost, not a collector's), and
the metrics endpoint scraped every second.

Both servers serve the same event store and counters, and the section measures in rounds of
one window per mode (off, on, and on with head sampling at SAMPLED_RATIO), the order rotating
from round to round: each round gives one ratio per mode against off, and a figure is their
median. On a shared machine the load of other processes moves by more than the overhead from
one second to the next; a round's windows see nearly the same machine, and the median drops
the rounds that did not.

Metric recording inside the event store (a histogram observation per append, a few per commit)
runs in both: ``telemetry_metrics_us_per_append`` prices it apart.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from statistics import median
from tempfile import TemporaryDirectory
from uuid import uuid4

from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.observability import http_get
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from bench.append_path import bench_store_config, counter_commands
from bench.load import LoadResult, Phase, command_requests, drive, unary_endpoint
from bench.options import Options, progress
from bench.report import Figure
from bench.topics import delete_topics
from clinical.events.v1 import envelope_pb2
from clinical_platform.eventlog.store import EventStore, EventStoreConfig
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.observability.endpoint import start_metrics_endpoint
from clinical_platform.observability.eventlog import CommitMetrics
from clinical_platform.observability.messaging import publishing
from clinical_platform.observability.metrics import APPEND_DURATION
from clinical_platform.observability.rpc import RpcTelemetry
from clinical_platform.telemetry import configure_telemetry, tracer

ROUNDS = 6
SAMPLED_RATIO = 0.1
_TOPIC = "clinical.bench.events.v1"


class _Discard(SpanExporter):
    """Accepts every batch and keeps nothing."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


@contextlib.contextmanager
def _observed(sampled_ratio: float | None) -> Iterator[None]:
    """Telemetry as a service configures it, plus a scraper of its metrics endpoint.

    ``sampled_ratio`` sets head sampling the way an operator does (``OTEL_TRACES_SAMPLER``
    ``parentbased_traceidratio`` with that ratio as its argument); None records every span.
    """
    sampler = (
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
         "OTEL_TRACES_SAMPLER_ARG": str(sampled_ratio)}
        if sampled_ratio is not None else {"OTEL_TRACES_SAMPLER": "parentbased_always_on"}
    )  # fmt: skip
    with _environment(sampler):
        # The callers share this process: their client spans are not the service's cost.
        telemetry = configure_telemetry(
            service_name="bench", service_version="0", install_globals=False,
            trace_grpc_clients=False,
        )  # fmt: skip
    telemetry.tracer_provider.add_span_processor(BatchSpanProcessor(_Discard()))
    endpoint = start_metrics_endpoint("127.0.0.1", 0)
    scraping = threading.Event()

    def scrape() -> None:
        url = f"http://127.0.0.1:{endpoint.port}/metrics"
        while not scraping.wait(1):
            http_get(url)

    scraper = threading.Thread(target=scrape, name="bench-scraper", daemon=True)
    scraper.start()
    try:
        yield
    finally:
        scraping.set()
        scraper.join()
        endpoint.stop()
        telemetry.shutdown()


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_MODES: dict[str, float | None] = {"on": None, "sampled": SAMPLED_RATIO}


async def _rounds(config: EventStoreConfig, phase: Phase) -> list[dict[str, LoadResult]]:
    """ROUNDS rounds of one window per mode (off, on, sampled) on one event store; the order
    inside a round rotates, so no mode always follows another."""
    store = EventStore(config)
    await store.start()
    try:
        commands = counter_commands(store)
        requests = command_requests([uuid4() for _ in range(phase.concurrency)])
        window = Phase(phase.concurrency, phase.seconds, min(0.5, phase.warmup_s))
        async with (
            unary_endpoint(commands) as bare,
            unary_endpoint(commands, [RpcTelemetry()]) as observed,
        ):
            await drive(bare, requests, phase)  # first commands, connections, warm caches

            async def measure(mode: str) -> LoadResult:
                if mode == "off":
                    return await drive(bare, requests, window)
                with _observed(_MODES[mode]):
                    return await drive(observed, requests, window)

            modes = ["off", *_MODES]
            rounds = []
            for index in range(ROUNDS):
                progress(f"telemetry: round {index + 1} of {ROUNDS}")
                order = modes[index % 3 :] + modes[: index % 3]
                rounds.append({mode: await measure(mode) for mode in order})
            return rounds
    finally:
        await store.stop()


def _overhead(rounds: list[dict[str, LoadResult]], mode: str) -> float:
    """1 - the median over rounds of the mode's throughput against off's in the same round."""
    return 1 - median(r[mode].answered_per_s / r["off"].answered_per_s for r in rounds)


def _cpu_overhead(rounds: list[dict[str, LoadResult]], mode: str) -> float:
    return median(r[mode].loop_cpu_ms_per_call / r["off"].loop_cpu_ms_per_call for r in rounds) - 1


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
    """Append throughput with telemetry off, on and head-sampled, in rotating rounds."""
    bootstrap = servers.kafka_bootstrap_servers
    service = f"bench-{uuid4().hex[:12]}"
    with TemporaryDirectory(prefix="bench-state-") as state_dir:
        config = bench_store_config(service, bootstrap, Path(state_dir))
        try:
            rounds = await _rounds(config, options.phase)
        finally:
            await delete_topics(bootstrap, [events_topic(service)])
    spans_us = _spans_us_per_append()
    off, on = (median(r[mode].answered_per_s for r in rounds) for mode in ("off", "on"))
    cpu_off = median(r["off"].loop_cpu_ms_per_call for r in rounds)
    return [
        Figure("telemetry_off_append_rps", off, "req/s", 0, "no tracer, no metrics (median)"),
        Figure("telemetry_on_append_rps", on, "req/s", 0, "every span, /metrics scraped 1/s"),
        Figure(
            "telemetry_overhead",
            _overhead(rounds, "on"),
            "share",
            3,
            f"1 - on/off, every span recorded, median of {ROUNDS} rounds (target <= 0.05)",
        ),
        Figure(
            "telemetry_cpu_overhead",
            _cpu_overhead(rounds, "on"),
            "share",
            3,
            "event loop CPU per append, on/off - 1, every span recorded",
        ),
        Figure(
            "telemetry_sampled_overhead",
            _overhead(rounds, "sampled"),
            "share",
            3,
            f"the same with head sampling (parentbased_traceidratio {SAMPLED_RATIO})",
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
