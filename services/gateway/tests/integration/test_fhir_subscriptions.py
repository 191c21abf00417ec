"""FHIR Subscriptions (R4, Subscriptions R5 Backport IG) through the gateway to the real notify
and orders services, with Keycloak tokens, the gateway served by uvicorn on 127.0.0.1.

notify follows the orders service's own event topic, as deployed; a rest-hook receiver on
127.0.0.1 checks the Standard Webhooks signature and the notification Bundle; the websocket
channel is bound with ``$get-ws-binding-token``. Every resource is checked with the R4B models.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from clinical_testing.endpoints import ServerEndpoints, isolated_service_values
from clinical_testing.kafka import delete_event_log
from clinical_testing.keycloak import Keycloak
from clinical_testing.plugin import TopicFactory, TransitKeyFactory, unique_name
from clinical_testing.webhooks import WebhookReceiver, webhook_receiver
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.subscription import Subscription
from pymongo.asynchronous.database import AsyncDatabase
from standardwebhooks.webhooks import Webhook

from clinical_platform.eventlog.topics import events_topic
from clinical_platform.fhir_notifications import FILTER_CRITERIA, PAYLOAD_CONTENT, TOPIC_BASE
from gateway.bootstrap import gateway_http_app
from gateway.settings import GatewaySettings
from notify.bootstrap import running_notify
from notify.settings import NotifySettings
from orders.settings import OrdersSettings

from .conftest import internal_verifiers
from .order_result_stack import serve_orders_and

pytestmark = pytest.mark.integration

FHIR = {"content-type": "application/fhir+json"}
PATIENT_ID = "5b0c7a53-7d0b-4d3e-9a40-2f3e3c1d6a01"  # the realm's patient user's record
ORDER_SIGNED = TOPIC_BASE + "order-signed"


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with webhook_receiver() as endpoint:
        yield endpoint


@pytest.fixture
async def gateway(  # noqa: PLR0917 - pytest passes fixtures by name
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any], tmp_path: Path,
    kafka_topic: TopicFactory, transit_key: TransitKeyFactory, keycloak: Keycloak,
) -> AsyncIterator[str]:  # fmt: skip
    """The gateway's base URL (``http://127.0.0.1:<port>``), served by uvicorn, in front of
    an orders and a notify service of this test's own."""
    keys = tmp_path / "gateway-keys.pem"
    verifier = internal_verifiers(keys)
    access_topic = await kafka_topic(prefix="clinical.audit.access-test.")
    orders_log, notify_log = unique_name("orders-"), unique_name("notify-")
    orders_settings = OrdersSettings.model_validate(isolated_service_values(
        servers, event_log_name=orders_log, database=mongo_database.name,
        state_dir=tmp_path / "orders", access_topic=access_topic,
    ))  # fmt: skip
    notify_settings = NotifySettings.model_validate({
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap_servers,
        "VAULT_ADDR": servers.vault_addr, "VAULT_TOKEN": servers.vault_token,
        "MONGODB_URL": servers.mongodb_url, "grpc_port": 0, "event_partitions": 3,
        "event_log_name": notify_log, "mongodb_database": mongo_database.name,
        "state_dir": tmp_path / "notify", "webhook_allow_http": True,
        "webhook_allow_networks": "127.0.0.1/32", "webhook_timeout_s": 2.0,
        "secret_key": transit_key(), "orders_events_topic": events_topic(orders_log),
        "results_events_topic": await kafka_topic(prefix="clinical.results-test."),
        "ACCESS_AUDIT_TOPIC": access_topic,
    })  # fmt: skip
    try:
        async with AsyncExitStack() as stack:
            addresses = await serve_orders_and(
                stack, orders_settings, verifier, PATIENT_ID,
                notify=running_notify(notify_settings, verifier=verifier("clinical-notify")),
            )  # fmt: skip
            settings = GatewaySettings.model_validate({
                "oidc_issuer": keycloak.issuer, "signing_keys_file": keys, "access_trail": False,
                "orders_audience": "clinical-orders", "notify_audience": "clinical-notify",
                **addresses,
            })  # fmt: skip
            asgi, _ = await stack.enter_async_context(gateway_http_app(settings))
            config = uvicorn.Config(asgi, host="127.0.0.1", port=0, log_level="warning",
                                    lifespan="off")  # fmt: skip
            server = uvicorn.Server(config)
            task = asyncio.create_task(server.serve())
            for _ in range(500):  # the server binds its port in a moment
                if server.started:
                    break
                await asyncio.sleep(0.02)
            port = server.servers[0].sockets[0].getsockname()[1]
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True
                await task
    finally:
        await delete_event_log(servers.kafka_bootstrap_servers, orders_log)
        await delete_event_log(servers.kafka_bootstrap_servers, notify_log)


@pytest.fixture
async def fhir(gateway: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{gateway}/fhir/r4/", timeout=20) as client:
        yield client


def auth(token: str, **headers: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", **headers}


def new_subscription(channel: dict[str, Any], *, criteria: str = ORDER_SIGNED,
                     content: str = "id-only") -> dict[str, Any]:  # fmt: skip
    return {
        "resourceType": "Subscription", "status": "requested", "reason": "tests",
        "criteria": criteria,
        "_criteria": {"extension": [
            {"url": FILTER_CRITERIA, "valueString": f"patient=Patient/{PATIENT_ID}"}]},
        "channel": {"payload": "application/fhir+json", **channel, "_payload": {
            "extension": [{"url": PAYLOAD_CONTENT, "valueCode": content}]}},
    }  # fmt: skip


async def subscribe(
    fhir: httpx.AsyncClient, token: str, resource: dict[str, Any]
) -> dict[str, Any]:
    created = await fhir.post("Subscription", headers=auth(token, **FHIR), json=resource)
    assert created.status_code == 201, created.text
    Subscription.model_validate(created.json())
    assert created.json()["status"] == "active"
    return dict(created.json())


async def sign_order(fhir: httpx.AsyncClient, token: str) -> str:
    order = {
        "resourceType": "ServiceRequest", "status": "draft", "intent": "order",
        "priority": "stat", "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
        "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10",
                                    "code": "E11.9"}]}],
    }  # fmt: skip
    placed = await fhir.post("ServiceRequest", headers=auth(token, **FHIR), json=order)
    assert placed.status_code == 201, placed.text
    signed = await fhir.post(f"ServiceRequest/{placed.json()['id']}/$sign", headers=auth(token))
    assert signed.status_code == 200, signed.text
    return str(placed.json()["id"])


def notification_of(bundle_json: dict[str, Any]) -> tuple[str, dict[str, Any], list[Any]]:
    """The status's type, its parts by name, and the other entries, of a validated Bundle."""
    bundle = Bundle.model_validate(bundle_json)
    assert bundle.type == "history"
    entries = bundle_json["entry"]
    status = Parameters.model_validate(entries[0]["resource"])
    parts = {p.name: p for p in status.parameter or []}
    return str(parts["type"].valueCode), entries[0]["resource"], entries[1:]


def events_of(status: dict[str, Any]) -> list[dict[str, str]]:
    """Each notification-event's event-number and focus."""
    found = []
    for parameter in status["parameter"]:
        if parameter["name"] == "notification-event":
            parts = {p["name"]: p for p in parameter["part"]}
            found.append({"number": parts["event-number"]["valueString"],
                          "focus": parts.get("focus", {}).get("valueReference", {})
                          .get("reference", "")})  # fmt: skip
    return found


async def test_a_rest_hook_receives_a_signed_order_signed_bundle_and_events_replay(
    fhir: httpx.AsyncClient, receiver: WebhookReceiver, clinician_otp_token: str
) -> None:
    token = clinician_otp_token
    created = await subscribe(fhir, token, new_subscription(
        {"type": "rest-hook", "endpoint": receiver.url}))  # fmt: skip
    secret = next(e["valueString"] for e in created["extension"] if "webhook-secret" in e["url"])
    read = await fhir.get(f"Subscription/{created['id']}", headers=auth(token))
    assert read.status_code == 200, read.text
    assert "extension" not in Subscription.model_validate(read.json()).model_dump(
        exclude_none=True)  # the secret is shown once  # fmt: skip

    order_ids = [await sign_order(fhir, token) for _ in range(3)]
    for _ in range(200):
        if len(receiver.posts) >= 3:
            break
        await asyncio.sleep(0.1)
    headers, body = receiver.posts[0]
    assert headers["Content-Type"].startswith("application/fhir+json")
    Webhook(secret).verify(body, headers)  # Standard Webhooks: raises when it does not verify
    kind, status, focus = notification_of(json.loads(body))
    assert kind == "event-notification"
    assert events_of(status) == [{"number": "1", "focus": f"ServiceRequest/{order_ids[0]}"}]
    assert focus[0]["fullUrl"] == f"ServiceRequest/{order_ids[0]}"

    for since in (1, 2, 3):
        replay = await fhir.get(f"Subscription/{created['id']}/$events", headers=auth(token),
                                params={"eventsSinceNumber": str(since)})  # fmt: skip
        assert replay.status_code == 200, replay.text
        kind, status, _ = notification_of(replay.json())
        assert kind == "query-event"
        numbers = [int(e["number"]) for e in events_of(status)]
        assert numbers == list(range(since, 4))  # inclusive, no gap, up to the newest
    until = await fhir.get(f"Subscription/{created['id']}/$events", headers=auth(token),
                           params={"eventsSinceNumber": "2", "eventsUntilNumber": "2"})  # fmt: skip
    assert [e["focus"] for e in events_of(notification_of(until.json())[1])] == [
        f"ServiceRequest/{order_ids[1]}"
    ]

    counted = await fhir.get(f"Subscription/{created['id']}/$status", headers=auth(token))
    assert counted.status_code == 200, counted.text
    Bundle.model_validate(counted.json())
    status = counted.json()["entry"][0]["resource"]
    Parameters.model_validate(status)
    values = {p["name"]: p for p in status["parameter"]}
    assert values["events-since-subscription-start"]["valueString"] == "3"
    assert values["type"]["valueCode"] == "query-status"

    deleted = await fhir.delete(f"Subscription/{created['id']}", headers=auth(token))
    assert deleted.status_code == 204, deleted.text


async def test_the_websocket_binding_receives_the_same_notification(
    gateway: str, fhir: httpx.AsyncClient, clinician_otp_token: str
) -> None:
    token = clinician_otp_token
    created = await subscribe(fhir, token, new_subscription({"type": "websocket"}))
    issued = await fhir.post(f"Subscription/{created['id']}/$get-ws-binding-token",
                             headers=auth(token))  # fmt: skip
    assert issued.status_code == 200, issued.text
    parameters = {p["name"]: p for p in Parameters.model_validate(issued.json()).model_dump(
        mode="json", exclude_none=True)["parameter"]}  # fmt: skip
    binding = parameters["token"]["valueString"]
    url = parameters["websocket-url"]["valueUrl"]
    assert url == gateway.replace("http", "ws") + "/fhir/r4/subscriptions/ws"

    async with websockets.connect(url) as socket:
        await socket.send(f"bind-with-token {binding}")
        kind, status, _ = notification_of(json.loads(await socket.recv()))
        assert kind == "handshake"
        order_id = await sign_order(fhir, token)
        kind, status, focus = notification_of(json.loads(await asyncio.wait_for(socket.recv(), 20)))
        assert kind == "event-notification"
        assert events_of(status) == [{"number": "1", "focus": f"ServiceRequest/{order_id}"}]
        assert focus[0]["fullUrl"] == f"ServiceRequest/{order_id}"

    # Single use: the same token binds nothing more.
    async with websockets.connect(url) as again:
        await again.send(f"bind-with-token {binding}")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(again.recv(), 10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
    # A resumed binding replays what came after the number it names.
    issued = await fhir.get(f"Subscription/{created['id']}/$get-ws-binding-token",
                            headers=auth(token))  # fmt: skip
    fresh = issued.json()["parameter"][0]["valueString"]
    async with websockets.connect(url) as resumed:
        await resumed.send(f"bind-with-token {fresh} 0")
        assert notification_of(json.loads(await resumed.recv()))[0] == "handshake"
        kind, status, _ = notification_of(json.loads(await asyncio.wait_for(resumed.recv(), 20)))
        assert (kind, events_of(status)[0]["number"]) == ("event-notification", "1")


def outcome(answer: httpx.Response, status: int) -> OperationOutcome:
    assert answer.status_code == status, answer.text
    return OperationOutcome.model_validate(answer.json())


async def test_bad_subscriptions_are_refused_with_the_element_named(
    fhir: httpx.AsyncClient, keycloak: Keycloak, receiver: WebhookReceiver, clinician_otp_token: str
) -> None:
    token = clinician_otp_token
    headers = auth(token, **FHIR)
    unknown = await fhir.post("Subscription", headers=headers, json=new_subscription(
        {"type": "rest-hook", "endpoint": receiver.url}, criteria="urn:nothing"))  # fmt: skip
    assert outcome(unknown, 422).issue[0].expression == ["Subscription.criteria"]
    no_endpoint = await fhir.post("Subscription", headers=headers,
                                  json=new_subscription({"type": "rest-hook"}))  # fmt: skip
    assert outcome(no_endpoint, 400).issue[0].expression == ["Subscription.channel.endpoint"]
    dead = await fhir.post("Subscription", headers=headers, json=new_subscription(
        {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/hook"}))  # fmt: skip
    assert outcome(dead, 422).issue[0].expression == ["Subscription.channel.endpoint"]
    empty = await fhir.post("Subscription", headers=headers, json=new_subscription(
        {"type": "websocket"}, content="empty"))  # fmt: skip
    assert outcome(empty, 422).issue[0].expression == ["Subscription.channel.payload"]
    email = await fhir.post("Subscription", headers=headers,
                            json=new_subscription({"type": "email"}))  # fmt: skip
    assert outcome(email, 422).issue[0].expression == ["Subscription.channel.type"]
    bad_filter = new_subscription({"type": "websocket"})
    bad_filter["_criteria"]["extension"][0]["valueString"] = "colour=blue"
    refused = await fhir.post("Subscription", headers=headers, json=bad_filter)
    assert outcome(refused, 400).issue[0].expression == ["Subscription.criteria.extension[0]"]

    unfiltered = new_subscription({"type": "websocket"}, content="full-resource")
    del unfiltered["_criteria"]  # notify's rule: full content names the patients
    broad = await fhir.post("Subscription", headers=headers, json=unfiltered)
    assert outcome(broad, 400).issue[0].expression == ["Subscription.criteria"]

    mine = await subscribe(fhir, token, new_subscription({"type": "websocket"}))
    other = keycloak.user_token("clinician-no-otp", "user/*.cruds")
    for path in ("", "/$status", "/$events", "/$get-ws-binding-token"):
        foreign = await fhir.get(f"Subscription/{mine['id']}{path}", headers=auth(other))
        assert foreign.status_code == 403, (path, foreign.text)
        OperationOutcome.model_validate(foreign.json())
    missing = await fhir.get(f"Subscription/{uuid.uuid4()}", headers=auth(token))
    outcome(missing, 404)
    beyond = await fhir.get(f"Subscription/{mine['id']}/$events", headers=auth(token),
                            params={"eventsSinceNumber": "x"})  # fmt: skip
    assert outcome(beyond, 400).issue[0].expression == ["eventsSinceNumber"]
    no_scope = keycloak.user_token("clinician-no-otp", "user/ServiceRequest.rs")
    outcome(await fhir.get(f"Subscription/{mine['id']}", headers=auth(no_scope)), 403)


async def test_an_unknown_binding_token_or_message_binds_nothing(
    gateway: str, fhir: httpx.AsyncClient, clinician_otp_token: str
) -> None:
    created = await subscribe(fhir, clinician_otp_token, new_subscription({"type": "websocket"}))
    url = gateway.replace("http", "ws") + "/fhir/r4/subscriptions/ws"
    for attempt in ("bind-with-token never-issued", "hello"):
        async with websockets.connect(url) as socket:
            await socket.send(attempt)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), 10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1008
    deleted = await fhir.delete(f"Subscription/{created['id']}", headers=auth(clinician_otp_token))
    assert deleted.status_code == 204
