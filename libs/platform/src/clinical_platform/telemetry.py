"""OpenTelemetry bootstrap: one tracer and meter provider per process, gRPC and Kafka instrumented.

Spans and metrics leave the process only when OTEL_EXPORTER_OTLP_ENDPOINT is set. Tests pass their
own in-memory exporters and ``install_globals=False`` so they never fight over the process-wide
providers, which OpenTelemetry lets a process set only once. Health checks are traced like any RPC;
set OTEL_PYTHON_GRPC_EXCLUDED_SERVICES=grpc.health.v1.Health to silence probe noise.
"""

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcAioInstrumentorServer
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

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
    span_exporters: Sequence[SpanExporter] = (),
    metric_readers: Sequence[MetricReader] = (),
    install_globals: bool = True,
) -> Telemetry:
    """Set up tracing and metrics for this process and instrument grpc.aio and aiokafka.

    Idempotent: while a configuration is active, calling again returns it unchanged. Call before
    building servers, channels or Kafka clients, because instrumentation patches their factories.
    `span_exporters` export synchronously, which suits tests; OTLP export is batched.
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
    if otlp_endpoint:
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(otlp_endpoint)))
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(otlp_endpoint)))
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)

    if install_globals and not _process.globals_installed:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        _process.globals_installed = True

    instrumentors: list[_Instrumentor] = [
        GrpcAioInstrumentorServer(),  # type: ignore[no-untyped-call]  # untyped upstream
        GrpcAioInstrumentorClient(),  # type: ignore[no-untyped-call]  # untyped upstream
        AIOKafkaInstrumentor(),
    ]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

    _process.active = Telemetry(tracer_provider, meter_provider, instrumentors)
    logger.info("telemetry configured", extra={"otlp_export": bool(otlp_endpoint)})
    return _process.active
