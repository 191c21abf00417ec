"""Webhook requests as receivers see them: Standard Webhooks headers a stock verifier accepts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from clinical.notify.v1 import notify_pb2 as pb
from notify.adapters.webhooks import signed_headers, webhook_body
from notify.domain.notification import notification_id
from notify.domain.webhook import new_webhook_secret
from notify.entrypoints.messages import as_json

pytestmark = pytest.mark.unit


def test_every_secret_signs_and_either_verifies() -> None:
    old, new = new_webhook_secret(), new_webhook_secret()
    body = webhook_body("order.signed", datetime.now(UTC), {"sequence": 1})
    headers = signed_headers("msg_1", body, [new, old], datetime.now(UTC))

    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(body, headers) == json.loads(body)
    assert Webhook(new).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(body, headers)


def test_a_stale_signature_fails_verification() -> None:
    secret = new_webhook_secret()
    body = webhook_body("order.signed", datetime.now(UTC), {})
    stale = signed_headers("msg_1", body, [secret], datetime.now(UTC) - timedelta(minutes=6))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, stale)


def test_secrets_have_the_standard_form() -> None:
    secret = new_webhook_secret()
    assert secret.startswith("whsec_")
    assert len(Webhook(secret)._whsecret) == 32


def test_the_body_is_type_timestamp_and_the_notification_with_proto_names() -> None:
    notification = pb.Notification(
        subscription_id="s", sequence=7, notification_id=notification_id("s-1", 7),
        type="order.signed", order_id="o-1",
    )  # fmt: skip
    body = json.loads(webhook_body("order.signed", datetime.now(UTC), as_json(notification)))
    assert body["type"] == "order.signed"
    assert body["data"]["sequence"] == 7
    assert body["data"]["notification_id"] == "msg_s1_7"
    assert body["data"]["result_id"] == ""
