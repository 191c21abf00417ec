"""Structured JSON logs, one object per line, correlated with the current trace.

Never log PHI. Log identifiers (patient_id, order_id, event ids, versions), never names, dates
of birth, results, notes or whole requests and events; pass them as ``extra={...}``, e.g.
``logger.info("order signed", extra={"order_id": order_id, "version": version})``. Logs leave the
clinical boundary (aggregators, support tickets) where record-level access control does not apply.
"""

import logging
import sys
from typing import Any, TextIO

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter


class ClinicalJsonFormatter(JsonFormatter):
    """Formats records as JSON with timestamp, level, logger, message, service and trace ids."""

    def __init__(self, *, service: str) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            static_fields={"service": service},
            timestamp=True,
        )

    def add_fields(
        self,
        log_data: dict[str, Any],
        record: logging.LogRecord,
        message_dict: dict[str, Any],
    ) -> None:
        """Add the standard fields, then the ids of the span active when the record was made."""
        super().add_fields(log_data, record, message_dict)
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            # The W3C hex forms, so a log line can be pasted straight into the trace viewer.
            log_data["trace_id"] = trace.format_trace_id(span_context.trace_id)
            log_data["span_id"] = trace.format_span_id(span_context.span_id)


class _ClinicalLogHandler(logging.StreamHandler[TextIO]):
    """Marks the handler this module installed, so reconfiguring replaces only it."""


def configure_logging(*, service: str, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send this process's logs to `stream` (stdout by default) as JSON lines at `level`.

    Safe to call again: it replaces the handler it installed before and leaves others alone.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _ClinicalLogHandler)]:
        root.removeHandler(handler)
    handler = _ClinicalLogHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(ClinicalJsonFormatter(service=service))
    root.addHandler(handler)
    root.setLevel(level)
    # At DEBUG, pymongo logs whole documents and aiokafka whole records, i.e. PHI: keep them at
    # WARNING whatever LOG_LEVEL says. Their warnings and errors carry neither.
    for driver in ("pymongo", "aiokafka"):
        driver_logger = logging.getLogger(driver)
        driver_logger.setLevel(max(driver_logger.getEffectiveLevel(), logging.WARNING))
