"""OpenTelemetry bootstrap: one tracer and meter provider per process, gRPC clients instrumented.

Where spans go is chosen by the standard variables: ``OTEL_TRACES_EXPORTER=otlp`` (production,
to ``OTEL_EXPORTER_OTLP_ENDPOINT``; also chosen when only that endpoint is set) or ``zipkin``
(the local stack, to ``OTEL_EXPORTER_ZIPKIN_ENDPOINT``); unset or ``none`` exports nothing.
Metrics for Prometheus are clinical_platform.observability's; OTLP also receives the SDK's.
Tests pass their own in-memory exporters and ``install_globals=False`` so they never fight over
the process-wide providers, which OpenTelemetry lets a process set only once. A server's spans
come from its own interceptor (clinical_platform.observability.rpc), outgoing calls' from
OpenTelemetry's gRPC client instrumentation. Health checks are traced like any RPC; set
OTEL_PYTHON_GRPC_EXCLUDED_SERVICES=grpc.health.v1.Health to silence probe noise.

The Kafka hop is traced by clinical_platform.observability.messaging, not by aiokafka's
instrumentation: the event log writes whole record batches (which that instrumentation does not
see), and its per-poll receive spans would start a trace of their own for every fetch.
"""

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased

logger = logging.getLogger(__name__)


class _Instrumentor(Protocol):
    # The part of opentelemetry's BaseInstrumentor we use; mypy cannot see that class's members.
    def instrument(self, **kwargs: Any) -> Any: ...
    def uninstrument(self, **kwargs: Any) -> Any: ...


@dataclass
class Telemetry:
    """The providers of one configured process; `shutdown()` flushes and uninstruments."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    _instrumentors: list[_Instrumentor] = field(default_factory=list)
    _tracers: dict[str, trace.Tracer] = field(default_factory=dict)

    @property
    def drops_children_of_unsampled(self) -> bool:
        """Whether a span started under a parent that was not sampled is never recorded (every
        ``parentbased_*`` sampler, the SDK's default among them)."""
        return isinstance(self.tracer_provider.sampler, ParentBased)

    def shutdown(self) -> None:
        """Undo instrumentation, flush what is buffered and allow `configure_telemetry` again."""
        for instrumentor in self._instrumentors:
            instrumentor.uninstrument()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
        if _process.active is self:
            _process.active = None


@dataclass
class _ProcessTelemetry:
    active: Telemetry | None = None
    globals_installed: bool = False


_process = _ProcessTelemetry()


def configure_telemetry(
    *,
    service_name: str,
    service_version: str,
    otlp_endpoint: str | None = None,
    traces_exporter: str | None = None,
    span_exporters: Sequence[SpanExporter] = (),
    metric_readers: Sequence[MetricReader] = (),
    install_globals: bool = True,
    trace_grpc_clients: bool = True,
) -> Telemetry:
    """Set up tracing and metrics for this process and instrument grpc.aio's client side.

    Idempotent: while a configuration is active, calling again returns it unchanged. Call before
    building channels, because instrumentation patches their factories.
    ``traces_exporter`` is OTEL_TRACES_EXPORTER's value (``otlp``, ``zipkin``, ``none``).
    `span_exporters` export synchronously, which suits tests; OTLP and Zipkin export is batched.
    ``trace_grpc_clients=False`` leaves outgoing calls untraced (a benchmark whose callers share
    the process would otherwise charge their client spans to the service).
    """
    if _process.active is not None:
        return _process.active

    resource = Resource.create(
        {
            SERVICE_NAME: service_name,
            SERVICE_VERSION: service_version,
            # Replicas share name and version; the instance id tells their spans apart.
            SERVICE_INSTANCE_ID: str(uuid.uuid4()),
        }
    )
    tracer_provider = TracerProvider(resource=resource)
    for exporter in span_exporters:
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    readers = list(metric_readers)
    exporter_name = (traces_exporter or ("otlp" if otlp_endpoint else "none")).strip().lower()
    if exporter_name == "otlp":
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(otlp_endpoint)))
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(otlp_endpoint)))
    elif exporter_name == "zipkin":
        # The endpoint comes from OTEL_EXPORTER_ZIPKIN_ENDPOINT, read by the exporter itself.
        tracer_provider.add_span_processor(BatchSpanProcessor(ZipkinExporter()))
    elif exporter_name != "none":
        raise ValueError(f"OTEL_TRACES_EXPORTER must be otlp, zipkin or none, not {exporter_name}")
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)

    if install_globals and not _process.globals_installed:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        _process.globals_installed = True

    instrumentors: list[_Instrumentor] = []
    if trace_grpc_clients:
        instrumentors.append(GrpcAioInstrumentorClient())  # type: ignore[no-untyped-call]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

    _process.active = Telemetry(tracer_provider, meter_provider, instrumentors)
    logger.info("telemetry configured", extra={"traces_exporter": exporter_name})
    return _process.active


def configured() -> bool:
    """Whether a configuration is active (a server's interceptor makes spans only then)."""
    return _process.active is not None


def unsampled_children_dropped() -> bool:
    """Whether the active configuration never records a span whose parent was not sampled."""
    active = _process.active
    return active is not None and active.drops_children_of_unsampled


def w3c_trace_context(span_context: trace.SpanContext) -> dict[str, str]:
    """``traceparent`` (and ``tracestate`` when there is one) of a valid span context, formatted
    directly: what the W3C propagator writes, without the composite propagator's per-call
    machinery (it runs for every append). Empty for an invalid context."""
    if not span_context.is_valid:
        return {}
    header = {
        "traceparent": f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
        f"{span_context.trace_flags:02x}"
    }
    if span_context.trace_state:
        header["tracestate"] = span_context.trace_state.to_header()
    return header


def tracer(name: str) -> trace.Tracer:
    """A tracer of the active configuration (also one with ``install_globals=False``, as tests
    make), else of the process-wide provider."""
    active = _process.active
    if active is None:
        return trace.get_tracer(name)
    # Kept per configuration: the SDK builds a new tracer (and scope) on every call, which
    # costs more than the span it is asked for on the append path.
    found = active._tracers.get(name)
    if found is None:
        found = active._tracers[name] = active.tracer_provider.get_tracer(name)
    return found
