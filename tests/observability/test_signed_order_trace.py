"""A signed order's one trace, from the gateway's HTTP request through orders, Kafka and notify
to the webhook POST, and no PHI anywhere in what the services export.

The gateway (trusting the local Keycloak), patient, orders and notify run as processes
(``python -m <service>``) exporting spans to the local Zipkin and serving /metrics, which the
local Prometheus scrapes; both are started through localinfra as `make run` starts them.
High-entropy canaries go into the patient's names, identifier, address and an order's
cancellation reason; afterwards every span Zipkin holds, every metric the services export and
every line they logged is searched for them.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from clinical_testing.keycloak import Keycloak
from clinical_testing.observability import (
    Clinic,
    ObserveStack,
    http_get,
    prometheus_query,
    zipkin_everything,
    zipkin_trace,
)
from clinical_testing.tokens import TokenMint
from clinical_testing.webhooks import WebhookReceiver, webhook_receiver
from playwright.async_api import async_playwright

from clinical.notify.v1 import notify_pb2 as notify_pb
from clinical.orders.v1 import orders_pb2 as orders_pb
from clinical.patient.v1 import patient_pb2 as patient_pb
from clinical_platform.principals import Role
from localinfra import chromium
from localinfra.config import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

WAIT_S = 60.0
# The browser check's screenshots (CI keeps them as the run's artifacts).
ARTIFACTS = REPO_ROOT / ".infra" / "test-artifacts" / "observability"


@pytest.fixture(scope="module")
async def webhook() -> AsyncIterator[WebhookReceiver]:
    """The subscriber's endpoint: answers the handshake, keeps every delivery."""
    async with webhook_receiver() as endpoint:
        yield endpoint


def deliveries(webhook: WebhookReceiver) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """Each delivery's headers and parsed body, in arrival order."""
    return [(headers, json.loads(body)) for headers, body in webhook.posts]


@pytest.fixture(scope="module")
def canary() -> str:
    # 128 random bits: no id, hash or timestamp contains it by chance.
    return secrets.token_hex(16)


async def eventually(check: Any, what: str, within_s: float = WAIT_S) -> Any:
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        found = await asyncio.to_thread(check)
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


@dataclass(frozen=True)
class Journey:
    """What one registration, signed order and cancelled order left behind."""

    canary: str
    family_read_back: str
    signing_status: int
    signed_order: str
    deliveries: list[tuple[dict[str, str], dict[str, Any]]]
    trace_id: str
    post_span_id: str
    spans: dict[tuple[str, str, str], dict[str, Any]]


# pytest passes the fixtures by name.
@pytest.fixture(scope="module")
async def journey(  # noqa: PLR0917
    clinic: Clinic, stack: ObserveStack, webhook: WebhookReceiver, token_mint: TokenMint,
    canary: str, keycloak: Keycloak,
) -> Journey:  # fmt: skip
    """A clinician subscribes (full content); a patient is registered with canaries in every
    field that takes text; an order is signed through the gateway, another is cancelled with a
    canary reason; both reach the webhook, and the signed one's trace reaches Zipkin."""
    registrar = token_mint.metadata("registrar-1", Role.REGISTRAR)
    clinician = token_mint.metadata("dr-a", Role.CLINICIAN)
    await clinic.notify.CreateSubscription(
        notify_pb.CreateSubscriptionRequest(
            request_id=str(uuid.uuid4()), content=notify_pb.CONTENT_FULL,
            # Full content for staff: the clinician's own orders (their care team's).
            filter=notify_pb.Filter(orderers=["dr-a"]),
            topics=[notify_pb.TOPIC_ORDER_SIGNED, notify_pb.TOPIC_ORDER_CANCELLED],
            webhook=notify_pb.Webhook(url=webhook.url),
        ),
        metadata=clinician, timeout=15,
    )  # fmt: skip
    registered = await clinic.patients.RegisterPatient(
        patient_pb.RegisterPatientRequest(
            request_id=str(uuid.uuid4()),
            demographics=patient_pb.Demographics(
                name=patient_pb.HumanName(given=[f"Ada{canary}"], family=f"Lovelace{canary}"),
                birth_date="1985-12-10", sex=patient_pb.ADMINISTRATIVE_SEX_FEMALE,
                address=patient_pb.Address(lines=[f"{canary} St James's Square"], city="London"),
                identifiers=[patient_pb.Identifier(system="urn:mrn:kedron-hospital", value=canary)],
            ),
        ),
        metadata=registrar, timeout=15,
    )  # fmt: skip
    read_back = await clinic.patients.GetPatient(
        patient_pb.GetPatientRequest(
            patient_id=registered.patient_id, min_version=registered.version
        ),
        metadata=registrar, timeout=15,
    )  # fmt: skip
    signed_order = await place(clinic, registered.patient_id, clinician)
    # Signed through the gateway's HTTP API, by Keycloak's clinician with OTP.
    async with httpx.AsyncClient(base_url=clinic.gateway, timeout=15) as http:
        signing = await http.post(
            f"/api/v1/orders/{signed_order}/sign",
            headers={"authorization": f"Bearer {await otp_token(keycloak)}"},
            json={"request_id": str(uuid.uuid4())},
        )
    cancelled_order = await place(clinic, registered.patient_id, clinician)
    await clinic.orders.CancelOrder(
        orders_pb.CancelOrderRequest(
            request_id=str(uuid.uuid4()), order_id=cancelled_order,
            reason=f"duplicate of {canary}",
        ),
        metadata=clinician, timeout=15,
    )  # fmt: skip
    await eventually(lambda: len(webhook.posts) >= 2, "two webhook deliveries")
    headers = next(h for h, p in deliveries(webhook) if p["data"].get("order_id") == signed_order)
    _version, trace_id, post_span_id, _flags = headers["traceparent"].split("-")
    spans = await eventually(
        lambda: _complete(zipkin_trace(stack.zipkin, trace_id), clinic.orders_topic),
        "the signed order's spans in Zipkin",
    )
    return Journey(
        canary, read_back.patient.demographics.name.family, signing.status_code, signed_order,
        deliveries(webhook), trace_id, post_span_id,
        {(s["localEndpoint"]["serviceName"], s["name"], s.get("kind", "")): s for s in spans},
    )  # fmt: skip


async def test_a_signed_order_is_one_trace_from_the_gateway_to_the_webhook(
    journey: Journey, clinic: Clinic
) -> None:
    spans, topic = journey.spans, clinic.orders_topic
    http = spans["gateway", "post /api/v1/orders/{order_id}/sign", "SERVER"]
    forwarded = spans["gateway", "/clinical.orders.v1.orderservice/signorder", "CLIENT"]
    sign_rpc = spans["orders", "/clinical.orders.v1.orderservice/signorder", "SERVER"]
    send = spans["orders", f"send {topic}", "PRODUCER"]
    matched = spans["notify", f"process {topic}", "CONSUMER"]
    post = spans["notify", "post", "CLIENT"]

    assert journey.signing_status == 200
    assert "parentId" not in http  # the trace starts at the front door
    assert forwarded["parentId"] == http["id"]
    assert sign_rpc["parentId"] == forwarded["id"]
    assert send["parentId"] == sign_rpc["id"]
    assert matched["parentId"] == send["id"]  # the Kafka hop, through the record's headers
    assert post["parentId"] == matched["id"]
    assert post["id"] == journey.post_span_id  # the POST carried its own span's traceparent
    assert send["tags"]["messaging.destination.name"] == topic


async def test_prometheus_scrapes_the_projection_lag_and_renders_the_console(
    clinic: Clinic, stack: ObserveStack
) -> None:
    orders_instance = f"127.0.0.1:{clinic.metrics_ports['orders']}"
    projection_lag = (
        f'clinical_consumer_lag_seconds{{instance="{orders_instance}",'
        r'consumer_group=~"projection\\..+"}'
    )
    lag = await eventually(
        lambda: prometheus_query(stack.prometheus, projection_lag),
        "the orders projections' lag series in Prometheus",
    )
    console = http_get(f"{stack.prometheus}/consoles/clinical.html").decode()

    assert {series["metric"]["topic"] for series in lag} >= {clinic.orders_topic}
    assert "Consumer and projection lag" in console
    assert orders_instance in json.dumps(prometheus_query(stack.prometheus, "up == 1"))


async def test_no_canary_reaches_a_span_a_metric_or_a_log_line(
    journey: Journey, clinic: Clinic, stack: ObserveStack
) -> None:
    # The canaries went in and came out where they belong: the read and the full webhook.
    assert journey.family_read_back == f"Lovelace{journey.canary}"
    assert any(journey.canary in json.dumps(p) for _, p in journey.deliveries)
    await _assert_no_canary_leaves_the_services(clinic, stack, journey.canary)


async def _assert_no_canary_leaves_the_services(
    clinic: Clinic, stack: ObserveStack, canary: str
) -> None:
    spans = await asyncio.to_thread(zipkin_everything, stack.zipkin)
    metrics = {
        name: await asyncio.to_thread(http_get, f"http://127.0.0.1:{port}/metrics")
        for name, port in clinic.metrics_ports.items()
    }
    logs = {process.module: process.log_path.read_bytes() for process in clinic.processes}
    scanned_spans = spans.count(b'"traceId"')

    assert scanned_spans > 10
    assert all(b"clinical_rpc_server_requests_total" in text for text in metrics.values())
    assert canary.encode() not in spans
    for name, text in metrics.items():
        assert canary.encode() not in text, f"{name}'s metrics hold PHI"
    for name, lines in logs.items():
        assert lines, name
        assert canary.encode() not in lines, f"{name}'s log holds PHI"


async def otp_token(keycloak: Keycloak) -> str:
    """The OTP clinician's token; Keycloak takes each TOTP code once, so a refusal (another
    test logged in within the same 30 s) waits for the next code."""
    for _ in range(2):
        try:
            return await asyncio.to_thread(
                keycloak.user_token, "clinician", "user/*.cruds", otp=True
            )
        except AssertionError:
            await asyncio.sleep(31 - time.time() % 30)
    return await asyncio.to_thread(keycloak.user_token, "clinician", "user/*.cruds", otp=True)


async def place(clinic: Clinic, patient_id: str, clinician: Any) -> str:
    placed = await clinic.orders.PlaceOrder(
        orders_pb.PlaceOrderRequest(
            request_id=str(uuid.uuid4()), patient_id=patient_id, test_code="2823-3",
            priority=orders_pb.PRIORITY_ROUTINE,
            reason_codes=[orders_pb.ReasonCode(system=orders_pb.CODE_SYSTEM_ICD10, code="N18.3")],
        ),
        metadata=clinician, timeout=15,
    )  # fmt: skip
    return str(placed.order_id)


def _complete(spans: list[dict[str, Any]], orders_topic: str) -> list[dict[str, Any]] | None:
    """The trace once the gateway's, orders' and notify's spans are all in."""
    names = {span["name"] for span in spans}
    wanted = {
        "post /api/v1/orders/{order_id}/sign",
        "/clinical.orders.v1.orderservice/signorder",
        f"send {orders_topic}",
        "post",
    }
    return spans if wanted <= names else None


@pytest.fixture(scope="module")
def browser_executable() -> Path:
    # Debian's chromium (installed by the project's installer when missing), never a download.
    return chromium.install()


async def test_the_browser_finds_the_trace_in_zipkin_and_the_lag_in_prometheus(
    journey: Journey, clinic: Clinic, stack: ObserveStack, browser_executable: Path
) -> None:
    topic = clinic.orders_topic
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    lag_query = urllib.parse.quote(
        r'clinical_consumer_lag_seconds{consumer_group=~"projection\\..+"}'
    )
    async with async_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        browser = await playwright.chromium.launch(
            executable_path=str(browser_executable), args=["--no-sandbox"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            await page.goto(f"{stack.zipkin}/zipkin/")
            search = page.get_by_placeholder("Trace ID")
            await search.fill(journey.trace_id)
            await search.press("Enter")
            await page.get_by_text(f"notify: process {topic}").wait_for(timeout=30_000)
            trace_page = await page.inner_text("body")
            await page.screenshot(path=ARTIFACTS / "zipkin-signed-order-trace.png", full_page=True)

            await page.goto(f"{stack.prometheus}/graph?g0.expr={lag_query}&g0.tab=1")
            await page.get_by_text(topic).first.wait_for(timeout=30_000)
            graph_page = await page.inner_text("body")
            await page.screenshot(path=ARTIFACTS / "prometheus-projection-lag.png", full_page=True)
        finally:
            await browser.close()

    for span in (
        "gateway: post /api/v1/orders/{order_id}/sign",
        "gateway: /clinical.orders.v1.orderservice/signorder",
        "orders: /clinical.orders.v1.orderservice/signorder",
        f"orders: send {topic}",
        f"notify: process {topic}",
        "notify: post",
    ):
        assert span in trace_page
    assert "clinical_consumer_lag_seconds" in graph_page
    assert "projection." in graph_page
