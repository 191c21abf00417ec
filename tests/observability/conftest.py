"""Telemetry of a test: spans kept in memory, the process-wide providers left alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clinical_testing.observability import TOPIC, Publish, Record, an_envelope
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from clinical.events.v1 import envelope_pb2
from clinical_platform.eventlog.envelope import cloudevents_headers
from clinical_platform.observability.messaging import publishing
from clinical_platform.telemetry import configure_telemetry


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    telemetry = configure_telemetry(
        service_name="observed",
        service_version="0.0.0",
        span_exporters=[exporter],
        install_globals=False,
    )
    yield exporter
    telemetry.shutdown()


@pytest.fixture
def publish(spans: InMemorySpanExporter) -> Publish:
    """``publish(offset=7)``: an envelope appended under a producer span, as its record."""

    def published(offset: int = 7) -> tuple[Record, envelope_pb2.Envelope]:
        envelope = an_envelope()
        with publishing(TOPIC, 2, [envelope]):
            pass
        headers = cloudevents_headers(envelope)
        return Record(TOPIC, 2, offset, 1_700_000_000_000, headers), envelope

    return published
