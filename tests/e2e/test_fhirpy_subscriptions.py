"""A third-party FHIR client (fhirpy's AsyncFHIRClient) drives FHIR Subscriptions through the
gateway: the gateway, orders and notify run as real processes against the session's servers,
trusting the real Keycloak; a rest-hook receiver on 127.0.0.1 checks each POST's Standard
Webhooks signature and its notification Bundle.

fhirpy creates the Subscription (``save``), reads it (``reference(...).to_resource``), creates
and signs orders (``execute("$sign")``), and asks ``$status`` and ``$events`` (``execute``);
every answer is validated with the ``fhir.resources`` R4B models.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiokafka.errors import KafkaError
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.keycloak import Keycloak, running_keycloak
from clinical_testing.patients import PatientRegistry
from clinical_testing.plugin import unique_name
from clinical_testing.service_process import ServiceProcess, StartService, free_tcp_port
from clinical_testing.webhooks import WebhookReceiver, webhook_receiver
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.subscription import Subscription
from fhirpy import AsyncFHIRClient
from pymongo import AsyncMongoClient
from standardwebhooks.webhooks import Webhook

from clinical_platform.clients.kafka import build_admin
from clinical_platform.eventlog.topics import ensure_topic, event_topic_spec, events_topic
from clinical_platform.fhir_notifications import FILTER_CRITERIA, PAYLOAD_CONTENT, TOPIC_BASE

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PARTITIONS = 3


@pytest.fixture(scope="module")
def keycloak() -> Iterator[Keycloak]:
    with running_keycloak() as server:
        yield server


@pytest.fixture(scope="module")
async def gateway(servers: ServerEndpoints, keycloak: Keycloak, start_service: StartService,
                  tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:  # fmt: skip
    """The gateway's FHIR base, in front of orders and notify (following orders' topic)."""
    folder = tmp_path_factory.mktemp("fhirpy-subscriptions")
    orders_log, results_log = unique_name("orders-"), unique_name("results-")
    notify_log = unique_name("notify-")
    database = unique_name("e2e_subs_")
    key = Ed25519PrivateKey.generate()
    keys = folder / "gateway-keys.pem"
    keys.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    keys.chmod(0o600)
    public_pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    trust = {"JWT_PUBLIC_KEYS": public_pem.decode(), "ACCESS_AUDIT_PARTITIONS": "1",
             "ACCESS_AUDIT_TOPIC": unique_name("e2e.access.")}  # fmt: skip
    admin = build_admin(servers.kafka)
    await admin.start()
    # notify follows both before anyone writes them (no results service runs here).
    for log in (orders_log, results_log):
        spec = event_topic_spec(
            log, partitions=PARTITIONS, replication_factor=1, min_insync_replicas=1
        )
        await ensure_topic(admin, spec)
    orders = start_service("orders", ORDERS_EVENT_LOG_NAME=orders_log,
                           ORDERS_MONGODB_DATABASE=f"{database}_o",
                           ORDERS_EVENT_PARTITIONS=str(PARTITIONS),
                           ORDERS_RESULTS_EVENTS_TOPIC=events_topic(results_log),
                           **trust)  # fmt: skip
    notify = start_service(
        "notify", NOTIFY_EVENT_LOG_NAME=notify_log, NOTIFY_MONGODB_DATABASE=f"{database}_n",
        NOTIFY_ORDERS_EVENTS_TOPIC=events_topic(orders_log),
        NOTIFY_RESULTS_EVENTS_TOPIC=events_topic(results_log),
        NOTIFY_WEBHOOK_ALLOW_HTTP="true", NOTIFY_WEBHOOK_ALLOW_NETWORKS="127.0.0.1/32", **trust,
    )  # fmt: skip
    http_port = free_tcp_port()
    gateway = ServiceProcess.on_free_port(
        "gateway", port_variable="GATEWAY_GRPC_PORT", log_path=folder / "gateway.log",
        env=servers.as_env() | {
            "GATEWAY_HTTP_PORT": str(http_port), "GATEWAY_OIDC_ISSUER": keycloak.issuer,
            "GATEWAY_SIGNING_KEYS_FILE": str(keys), "GATEWAY_STATE_DIR": str(folder / "gw"),
            "GATEWAY_ACCESS_TRAIL": "false", "GATEWAY_RATE_LIMIT": "100000/minute",
            "GATEWAY_ORDERS_ADDRESS": orders.address, "GATEWAY_NOTIFY_ADDRESS": notify.address,
        },
    )  # fmt: skip
    try:
        await asyncio.gather(*(p.wait_serving(within_s=90) for p in (orders, notify, gateway)))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:
            for _ in range(150):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.2)
        yield f"http://127.0.0.1:{http_port}/fhir/r4"
    finally:
        for process in (gateway, notify, orders):  # before their topics go
            process.kill()
        with contextlib.suppress(KafkaError):
            await admin.delete_topics(
                [events_topic(log) for log in (orders_log, results_log, notify_log)]
            )
        await admin.close()
        mongo: AsyncMongoClient[Any] = AsyncMongoClient(servers.mongodb_url)
        for suffix in ("_o", "_n"):
            await mongo.drop_database(f"{database}{suffix}")
        await mongo.close()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with webhook_receiver() as endpoint:
        yield endpoint


def otp_login(keycloak: Keycloak) -> str:
    """The clinician's multi-factor login; a TOTP code is taken once per window."""
    for _ in range(3):
        with contextlib.suppress(AssertionError):
            return keycloak.user_token("clinician", "user/*.cruds", otp=True)
        time.sleep(31)
    return keycloak.user_token("clinician", "user/*.cruds", otp=True)


async def test_fhirpy_subscribes_receives_signed_bundles_and_replays_them(
    gateway: str,
    keycloak: Keycloak,
    receiver: WebhookReceiver,
    registered_patients: PatientRegistry,
) -> None:
    patient_id = await registered_patients.register()
    fhir = AsyncFHIRClient(gateway, authorization=f"Bearer {otp_login(keycloak)}")
    backport = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
    subscription = fhir.resource(
        "Subscription", status="requested", reason="signed orders",
        criteria=TOPIC_BASE + "order-signed",
        _criteria={"extension": [{"url": FILTER_CRITERIA,
                                  "valueString": f"patient=Patient/{patient_id}"}]},
        channel={"type": "rest-hook", "endpoint": receiver.url,
                 "payload": "application/fhir+json",
                 "_payload": {"extension": [{"url": PAYLOAD_CONTENT,
                                             "valueCode": "full-resource"}]}},
    )  # fmt: skip
    await subscription.save()
    created = Subscription.model_validate(subscription.serialize())  # type: ignore[no-untyped-call]
    assert created.status == "active"
    secret = next(str(e.valueString) for e in created.extension or []
                  if "webhook-secret" in str(e.url))  # fmt: skip
    assert f"{backport}/backport-subscription" in (created.meta.profile or [])  # type: ignore[union-attr]
    read = await fhir.reference("Subscription", subscription.id).to_resource()
    assert Subscription.model_validate(
        read.serialize()  # type: ignore[no-untyped-call]
    ).channel.endpoint == receiver.url  # fmt: skip

    order_ids = []
    for _ in range(2):
        order = fhir.resource(
            "ServiceRequest", status="draft", intent="order", priority="routine",
            subject={"reference": f"Patient/{patient_id}"},
            code={"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
            reasonCode=[{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10",
                                     "code": "E11.9"}]}],
        )  # fmt: skip
        await order.save()
        await fhir.reference("ServiceRequest", order.id).execute("$sign", method="post")
        order_ids.append(order.id)
    for _ in range(200):
        if len(receiver.posts) >= 2:
            break
        await asyncio.sleep(0.1)
    for number, (headers, body) in enumerate(receiver.posts[:2], start=1):
        Webhook(secret).verify(body, headers)
        bundle = Bundle.model_validate(json.loads(body))
        assert bundle.type == "history"
        entries = json.loads(body)["entry"]
        Parameters.model_validate(entries[0]["resource"])
        assert entries[1]["resource"]["resourceType"] == "ServiceRequest"
        assert entries[1]["resource"]["id"] == order_ids[number - 1]

    status = await fhir.reference("Subscription", subscription.id).execute("$status", method="get")
    Bundle.model_validate(status)
    counted = {p["name"]: p for p in status["entry"][0]["resource"]["parameter"]}
    assert counted["events-since-subscription-start"]["valueString"] == "2"
    replay = await fhir.reference("Subscription", subscription.id).execute(
        "$events", method="get", params={"eventsSinceNumber": 2})  # fmt: skip
    Bundle.model_validate(replay)
    events = [p for p in replay["entry"][0]["resource"]["parameter"]
              if p["name"] == "notification-event"]  # fmt: skip
    assert [e["part"][0]["valueString"] for e in events] == ["2"]
    assert replay["entry"][1]["resource"]["id"] == order_ids[1]
    await read.delete()  # type: ignore[no-untyped-call]
