"""The ``/metrics`` endpoint of a service process: Prometheus text format, on its own port.

A thread of prometheus-client's serves it, so a scrape never waits on the event loop and a
busy loop still answers (its lag shows in the numbers, not in a failed scrape).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from clinical_platform.observability.metrics import REGISTRY

logger = logging.getLogger(__name__)


@dataclass
class MetricsEndpoint:
    """A started endpoint; `stop()` closes its socket."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The port actually bound (differs from the one asked for when that was 0)."""
        return int(self.server.server_port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_metrics_endpoint(host: str, port: int) -> MetricsEndpoint:
    """Serve every platform metric at ``http://host:port/metrics``."""
    server, thread = start_http_server(port, addr=host, registry=REGISTRY)
    endpoint = MetricsEndpoint(server, thread)
    logger.info("metrics endpoint listening", extra={"host": host, "port": endpoint.port})
    return endpoint
