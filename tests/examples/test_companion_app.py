"""examples/companion_app.py: webhook verification, secret rotation and the aiohttp handler.

No servers: requests are signed here with standardwebhooks, as the notify service signs them.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from standardwebhooks.webhooks import Webhook

from clinical.notify.v1 import notify_pb2
from companion_app import (
    WEBHOOK_PATH,
    InvalidWebhookError,
    WebhookReceiver,
    WebhookVerifier,
    format_notification,
)

pytestmark = pytest.mark.unit

PATIENT = "7f6b1c1e-0000-4000-8000-000000000001"
ORDER = "7f6b1c1e-0000-4000-8000-000000000002"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def sign(
    body: str, *secrets: str, msg_id: str = "msg_1", at: datetime | None = None
) -> dict[str, str]:
    """Standard Webhooks headers with one signature per secret, space-separated."""
    at = at or datetime.now(tz=UTC)
    signatures = " ".join(Webhook(secret).sign(msg_id, at, body) for secret in secrets)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }


def notification_body(sequence: int = 3, notification_id: str = "msg_1") -> str:
    return json.dumps(
        {
            "type": "order.signed",
            "timestamp": "2025-01-01T12:00:00Z",
            "data": {
                "subscription_id": "sub-1",
                "sequence": str(sequence),  # proto JSON renders uint64 as a string
                "notification_id": notification_id,
                "type": "order.signed",
                "event_id": "evt-1",
                "patient_id": PATIENT,
                "order_id": ORDER,
                "version": "2",
            },
        }
    )


# --- WebhookVerifier --------------------------------------------------------------------------


def test_a_correctly_signed_webhook_verifies() -> None:
    secret = new_secret()
    body = notification_body()
    WebhookVerifier([secret]).verify(body.encode(), sign(body, secret))


def test_a_tampered_body_fails() -> None:
    secret = new_secret()
    body = notification_body()
    headers = sign(body, secret)
    with pytest.raises(InvalidWebhookError):
        WebhookVerifier([secret]).verify(body.replace(ORDER, PATIENT).encode(), headers)


def test_a_tampered_webhook_id_fails() -> None:
    secret = new_secret()
    body = notification_body()
    headers = sign(body, secret) | {"webhook-id": "msg_2"}
    with pytest.raises(InvalidWebhookError):
        WebhookVerifier([secret]).verify(body.encode(), headers)


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_a_timestamp_outside_five_minutes_fails(offset: timedelta) -> None:
    secret = new_secret()
    body = notification_body()
    headers = sign(body, secret, at=datetime.now(tz=UTC) + offset)
    with pytest.raises(InvalidWebhookError):
        WebhookVerifier([secret]).verify(body.encode(), headers)


@pytest.mark.parametrize("signature", ["garbage", "v1,not*base64", "v1", "v1,a,b", ""])
def test_a_malformed_signature_header_fails(signature: str) -> None:
    secret = new_secret()
    body = notification_body()
    headers = sign(body, secret) | {"webhook-signature": signature}
    with pytest.raises(InvalidWebhookError):
        WebhookVerifier([secret]).verify(body.encode(), headers)


def test_missing_headers_and_the_wrong_secret_fail() -> None:
    secret = new_secret()
    body = notification_body()
    with pytest.raises(InvalidWebhookError):
        WebhookVerifier([secret]).verify(body.encode(), {})
    with pytest.raises(InvalidWebhookError):
        WebhookVerifier([new_secret()]).verify(body.encode(), sign(body, secret))
    with pytest.raises(InvalidWebhookError):
        WebhookVerifier().verify(body.encode(), sign(body, secret))


def test_rotation_two_signatures_verify_for_either_secret() -> None:
    old, new = new_secret(), new_secret()
    body = notification_body()
    during_overlap = sign(body, new, old)  # "v1,<new> v1,<old>"
    assert len(during_overlap["webhook-signature"].split(" ")) == 2
    WebhookVerifier([old]).verify(body.encode(), during_overlap)
    WebhookVerifier([new]).verify(body.encode(), during_overlap)

    after_overlap = sign(body, new)  # the sender dropped the old secret
    WebhookVerifier([new]).verify(body.encode(), after_overlap)
    with pytest.raises(InvalidWebhookError):
        WebhookVerifier([old]).verify(body.encode(), after_overlap)


def test_a_receiver_holding_several_secrets_verifies_with_any() -> None:
    old, new = new_secret(), new_secret()
    body = notification_body()
    verifier = WebhookVerifier([old])
    verifier.add_secret(new)
    assert verifier.secrets == (old, new)
    verifier.verify(body.encode(), sign(body, old))
    verifier.verify(body.encode(), sign(body, new))
    verifier.remove_secret(old)
    with pytest.raises(InvalidWebhookError):
        verifier.verify(body.encode(), sign(body, old))


# --- WebhookReceiver (aiohttp) ----------------------------------------------------------------


Client = TestClient[web.Request, web.Application]

HANDSHAKE = json.dumps(
    {
        "type": "webhook.handshake",
        "timestamp": "2025-01-01T12:00:00Z",
        "data": {"subscription_id": "sub-1", "challenge": "c-123"},
    }
)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Client, WebhookReceiver, list[str]]]:
    """The handler on a real 127.0.0.1 server; what it prints lands in the list."""
    printed: list[str] = []
    handler = WebhookReceiver(WebhookVerifier(), printed.append)
    async with TestClient(TestServer(handler.application(), host="127.0.0.1")) as client:
        yield client, handler, printed


async def test_the_handshake_is_answered_before_the_secret_is_known(
    receiver: tuple[Client, WebhookReceiver, list[str]],
) -> None:
    client, _, printed = receiver
    response = await client.post(
        WEBHOOK_PATH, data=HANDSHAKE, headers=sign(HANDSHAKE, new_secret())
    )
    assert response.status == 200
    assert await response.json() == {"challenge": "c-123"}
    assert printed == []


async def test_before_the_secret_only_handshakes_are_answered(
    receiver: tuple[Client, WebhookReceiver, list[str]],
) -> None:
    client, _, printed = receiver
    body = notification_body()
    response = await client.post(WEBHOOK_PATH, data=body, headers=sign(body, new_secret()))
    assert response.status == 401
    assert printed == []


async def test_a_signed_notification_prints_once_per_webhook_id(
    receiver: tuple[Client, WebhookReceiver, list[str]],
) -> None:
    client, handler, printed = receiver
    secret = new_secret()
    handler.verifier.add_secret(secret)
    body = notification_body(sequence=3, notification_id="msg_1")

    first = await client.post(WEBHOOK_PATH, data=body, headers=sign(body, secret, msg_id="msg_1"))
    retry = await client.post(WEBHOOK_PATH, data=body, headers=sign(body, secret, msg_id="msg_1"))

    assert (first.status, retry.status) == (204, 204)
    assert printed == [f"webhook #3 order.signed order={ORDER} patient={PATIENT} version=2"]

    other = notification_body(sequence=4, notification_id="msg_2")
    response = await client.post(
        WEBHOOK_PATH, data=other, headers=sign(other, secret, msg_id="msg_2")
    )
    assert response.status == 204
    assert len(printed) == 2
    assert printed[1].startswith("webhook #4 order.signed ")


@pytest.mark.parametrize("tamper", ["unsigned", "body", "signature", "wrong secret"])
async def test_an_unverified_post_is_refused_and_not_printed(
    receiver: tuple[Client, WebhookReceiver, list[str]], tamper: str
) -> None:
    client, handler, printed = receiver
    secret = new_secret()
    handler.verifier.add_secret(secret)
    body = notification_body()
    headers = {
        "unsigned": {},
        "body": sign(body.replace(ORDER, PATIENT), secret),
        "signature": sign(body, secret) | {"webhook-signature": "v1,%%%"},
        "wrong secret": sign(body, new_secret()),
    }[tamper]
    response = await client.post(WEBHOOK_PATH, data=body, headers=headers)
    assert response.status == 401
    assert printed == []


async def test_once_the_secret_is_known_a_handshake_must_be_signed(
    receiver: tuple[Client, WebhookReceiver, list[str]],
) -> None:
    client, handler, _ = receiver
    secret = new_secret()
    handler.verifier.add_secret(secret)
    unsigned = await client.post(WEBHOOK_PATH, data=HANDSHAKE)
    signed = await client.post(WEBHOOK_PATH, data=HANDSHAKE, headers=sign(HANDSHAKE, secret))
    assert unsigned.status == 401
    assert signed.status == 200
    assert await signed.json() == {"challenge": "c-123"}


def test_notifications_print_ids_only_even_with_full_content() -> None:
    notification = notify_pb2.Notification(
        sequence=7, type="result.posted", patient_id=PATIENT, order_id=ORDER, result_id="r-1",
        version=1, result=notify_pb2.ResultDetails(performer="Dr Secret"),
    )  # fmt: skip
    line = format_notification("stream", notification)
    assert line == f"stream  #7 result.posted order={ORDER} result=r-1 patient={PATIENT} version=1"
