"""The HTTP front door's server span and RED metrics: route templates, never paths or queries."""

from __future__ import annotations

import secrets

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clinical_platform.observability.http import HttpTelemetry
from clinical_platform.observability.metrics import REGISTRY

pytestmark = pytest.mark.unit

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def order(request: Request) -> Response:
    return JSONResponse({"order_id": request.path_params["order_id"]})


def client() -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/api/v1/orders/{order_id}", order, methods=["GET"])])
    transport = httpx.ASGITransport(app=HttpTelemetry(app, app.routes))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


def served(route: str, status_class: str) -> float:
    labels = {"http_route": route, "http_request_method": "GET", "http_status_class": status_class}
    return REGISTRY.get_sample_value("clinical_http_server_requests_total", labels) or 0.0


async def test_a_request_is_a_server_span_named_by_its_route_continuing_the_callers_trace(
    spans: InMemorySpanExporter,
) -> None:
    canary = secrets.token_hex(16)
    before = served("/api/v1/orders/{order_id}", "2xx")
    async with client() as http:
        answer = await http.get(
            f"/api/v1/orders/{canary}?family={canary}", headers={"traceparent": CALLER}
        )

    [span] = spans.get_finished_spans()
    assert answer.status_code == 200
    assert span.name == "GET /api/v1/orders/{order_id}"
    assert span.parent is not None
    assert f"{span.context.trace_id:032x}" == CALLER.split("-")[1]
    assert canary not in repr(dict(span.attributes or {}))
    assert served("/api/v1/orders/{order_id}", "2xx") == before + 1


async def test_a_path_no_route_serves_is_counted_as_unmatched(
    spans: InMemorySpanExporter,
) -> None:
    before = served("unmatched", "4xx")
    async with client() as http:
        answer = await http.get(f"/{secrets.token_hex(8)}")

    assert answer.status_code == 404
    assert spans.get_finished_spans()[0].name == "GET unmatched"
    assert served("unmatched", "4xx") == before + 1
