"""JSON log lines: the standard fields, plus trace and span ids while a span is current."""

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from clinical_platform.logs import ClinicalJsonFormatter, configure_logging

pytestmark = pytest.mark.unit


def _logged(message: str, **extra: Any) -> dict[str, Any]:
    record = logging.LogRecord("orders.application", logging.INFO, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    line = ClinicalJsonFormatter(service="orders").format(record)
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def test_log_line_carries_timestamp_level_logger_message_service_and_extra_ids() -> None:
    line = _logged("order signed", order_id="ord-1")

    assert line["level"] == "INFO"
    assert line["logger"] == "orders.application"
    assert line["message"] == "order signed"
    assert line["service"] == "orders"
    assert line["order_id"] == "ord-1"
    assert "timestamp" in line
    assert "trace_id" not in line


def test_log_line_inside_a_span_carries_its_trace_and_span_ids() -> None:
    # A private provider: no global state, and span contexts are valid (not the no-op kind).
    tracer = TracerProvider().get_tracer(__name__)

    with tracer.start_as_current_span("sign order") as span:
        line = _logged("order signed")

    context = span.get_span_context()
    assert line["trace_id"] == trace.format_trace_id(context.trace_id)
    assert line["span_id"] == trace.format_span_id(context.span_id)


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_configuring_logging_twice_writes_each_record_once(root_logger: logging.Logger) -> None:
    stream = io.StringIO()
    configure_logging(service="orders", level="INFO", stream=io.StringIO())
    configure_logging(service="orders", level="DEBUG", stream=stream)

    logging.getLogger("orders.application").debug("projection caught up")

    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["projection caught up"]
