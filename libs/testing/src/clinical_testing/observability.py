"""Test helpers for traces and metrics: consumed records as the consumer spans read them,
and what Zipkin, Prometheus and a metrics endpoint hold."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clinical.events.v1 import envelope_pb2
from clinical.notify.v1.notify_pb2_grpc import NotifyServiceStub
from clinical.orders.v1.orders_pb2_grpc import OrderServiceStub
from clinical.patient.v1.patient_pb2_grpc import PatientServiceStub
from clinical_testing.service_process import ServiceProcess

TOPIC = "clinical.orders.events.v1"


@dataclass
class Record:
    """A consumed Kafka record, as the consumer spans read it."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def an_envelope() -> envelope_pb2.Envelope:
    return envelope_pb2.Envelope(
        event_id=str(uuid.uuid4()),
        event_type="OrderSigned",
        aggregate_type="Order",
        aggregate_id=str(uuid.uuid4()),
        source="//clinical/orders",
    )


Publish = Callable[..., tuple[Record, envelope_pb2.Envelope]]
"""``publish(offset=7)``: an envelope appended under a producer span, and its record."""


def http_get(url: str, timeout_s: float = 10) -> bytes:
    """GET a loopback URL (Zipkin, Prometheus, a metrics endpoint) and return the body."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"not a loopback URL: {url}")
    with urllib.request.urlopen(url, timeout=timeout_s) as answer:  # noqa: S310  # checked above
        body: bytes = answer.read()
        return body


def zipkin_trace(zipkin: str, trace_id: str) -> list[dict[str, Any]]:
    """The spans Zipkin holds of one trace (empty while none arrived)."""
    try:
        spans: list[dict[str, Any]] = json.loads(http_get(f"{zipkin}/api/v2/trace/{trace_id}"))
    except urllib.error.HTTPError as missing:
        if missing.code == 404:
            return []
        raise
    return spans


def zipkin_everything(zipkin: str, lookback_s: int = 3600) -> bytes:
    """Every span of every service Zipkin received in the last ``lookback_s``, as raw JSON."""
    services: list[str] = json.loads(http_get(f"{zipkin}/api/v2/services"))
    now_ms = int(time.time() * 1000)
    chunks = [
        http_get(
            f"{zipkin}/api/v2/traces?serviceName={urllib.parse.quote(service)}"
            f"&endTs={now_ms}&lookback={lookback_s * 1000}&limit=100000"
        )
        for service in services
    ]
    return b"\n".join(chunks)


def prometheus_query(prometheus: str, query: str) -> list[dict[str, Any]]:
    """The instant vector a PromQL query returns now."""
    answer = json.loads(http_get(f"{prometheus}/api/v1/query?query={urllib.parse.quote(query)}"))
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


@dataclass(frozen=True)
class ObserveStack:
    """The local Prometheus and Zipkin (base URLs)."""

    prometheus: str
    zipkin: str


@dataclass
class Clinic:
    """patient, orders and notify as processes with their stubs, the gateway's HTTP base URL,
    and every process's metrics port."""

    patients: PatientServiceStub
    orders: OrderServiceStub
    notify: NotifyServiceStub
    gateway: str
    orders_topic: str
    metrics_ports: dict[str, int]
    processes: list[ServiceProcess]
