"""examples/companion_app.py: webhook verification, secret rotation, the aiohttp handler and the
state file that keeps the subscription across restarts.

No servers: requests are signed here with standardwebhooks, as the notify service signs them, and
the stream comes from a fake stub.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from clinical_testing.waiting import eventually
from standardwebhooks.webhooks import Webhook

from clinical.notify.v1 import notify_pb2
from companion_app import (
    WEBHOOK_PATH,
    CompanionApp,
    CompanionState,
    InvalidStateError,
    InvalidWebhookError,
    StateFile,
    WebhookReceiver,
    WebhookVerifier,
    format_notification,
    load_state,
    parse_args,
    save_state,
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


# --- The state file ---------------------------------------------------------------------------


def test_the_state_file_round_trips_readable_by_the_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "state" / "companion.json"  # the folder is created too
    state = CompanionState("sub-1", 18056, [new_secret(), new_secret()], last_sequence=7)
    save_state(path, state)

    assert load_state(path) == state
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(json.loads(path.read_text())) == {
        "subscription_id", "webhook_port", "secrets", "last_sequence",
    }  # fmt: skip
    assert os.listdir(path.parent) == ["companion.json"]  # no temporary file left behind


def test_saving_replaces_the_file_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "companion.json"
    before = CompanionState("sub-1", 18056, [new_secret()], last_sequence=1)
    save_state(path, before)
    path.chmod(0o644)  # replaced, not rewritten in place: the new file has its own mode
    replaced: list[tuple[str, str]] = []
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        replaced.append((str(src), str(dst)))
        assert load_state(path) == before  # the old file is whole until the rename
        assert stat.S_IMODE(os.stat(src).st_mode) == 0o600
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    save_state(path, CompanionState("sub-1", 18056, before.secrets, last_sequence=2))
    assert [dst for _, dst in replaced] == [str(path)]
    assert Path(replaced[0][0]).parent == tmp_path  # same folder: the rename is atomic
    assert load_state(path) == CompanionState("sub-1", 18056, before.secrets, last_sequence=2)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_failed_save_keeps_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "companion.json"
    before = CompanionState("sub-1", 18056, [new_secret()], last_sequence=1)
    save_state(path, before)

    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        save_state(path, CompanionState("sub-1", 18056, before.secrets, last_sequence=2))
    assert load_state(path) == before
    assert os.listdir(tmp_path) == ["companion.json"]


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"webhook_port": 18056, "secrets": []}',
        '{"subscription_id": "s", "webhook_port": "x", "secrets": []}',
        '{"subscription_id": "s", "webhook_port": 18056, "secrets": "whsec_x"}',
        '{"subscription_id": "s", "webhook_port": 18056, "secrets": [], "last_sequence": -1}',
    ],
)
def test_an_unreadable_state_file_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "companion.json"
    path.write_text(text)
    with pytest.raises(InvalidStateError):
        load_state(path)


def test_no_state_file_is_no_state(tmp_path: Path) -> None:
    assert load_state(tmp_path / "companion.json") is None


async def test_sequence_numbers_are_written_at_most_once_per_interval(tmp_path: Path) -> None:
    path = tmp_path / "companion.json"
    now = [100.0]
    state_file = StateFile(
        path, CompanionState("sub-1", 18056, [new_secret()]), interval_s=0.2, clock=lambda: now[0]
    )
    state_file.save()
    now[0] += 1.0
    state_file.record_sequence(1)  # the interval has passed: written at once
    assert _saved(path).last_sequence == 1
    state_file.record_sequence(2)
    state_file.record_sequence(3)  # within the interval: pending
    assert _saved(path).last_sequence == 1
    # The scheduled write, although no notification followed.
    await eventually(lambda: _saved(path).last_sequence == 3, within_s=2)
    assert _saved(path).last_sequence == 3
    state_file.record_sequence(4)
    state_file.flush()  # on shutdown
    assert _saved(path).last_sequence == 4
    state_file.record_sequence(2)  # never backwards
    assert state_file.state.last_sequence == 4


def _saved(path: Path) -> CompanionState:
    state = load_state(path)
    assert state is not None
    return state


# --- Resuming a saved subscription ------------------------------------------------------------


class FakeCall:
    """A Subscribe call: the given responses, then an error retrying cannot fix."""

    def __init__(self, responses: list[notify_pb2.SubscribeResponse]) -> None:
        self._responses = list(responses)

    async def read(self) -> notify_pb2.SubscribeResponse:
        if self._responses:
            return self._responses.pop(0)
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.NOT_FOUND, grpc.aio.Metadata(), grpc.aio.Metadata(), "done"
        )

    def cancel(self) -> None:
        pass


class FakeStub:
    def __init__(self, *sequences: int) -> None:
        self.requests: list[notify_pb2.SubscribeRequest] = []
        self._sequences = sequences

    def Subscribe(  # noqa: N802  # the gRPC method's name
        self, request: notify_pb2.SubscribeRequest, **_: Any
    ) -> FakeCall:
        self.requests.append(request)
        return FakeCall(
            [
                notify_pb2.SubscribeResponse(
                    notification=notify_pb2.Notification(
                        sequence=n, type="order.signed", order_id=ORDER
                    )
                )
                for n in self._sequences
            ]
        )


async def test_a_loaded_state_gives_the_secrets_and_the_resume_point(tmp_path: Path) -> None:
    path = tmp_path / "companion.json"
    current, previous = new_secret(), new_secret()
    save_state(path, CompanionState("sub-1", 18056, [current, previous], last_sequence=5))
    printed: list[str] = []
    app = CompanionApp(parse_args(["--state-file", str(path)]), "token", printed.append)

    app.resume(StateFile(path, _saved(path)))

    assert app.subscription_id == "sub-1"
    assert set(app.verifier.secrets) == {current, previous}
    body = notification_body()
    app.verifier.verify(body.encode(), sign(body, current))
    app.verifier.verify(body.encode(), sign(body, previous))

    stub = FakeStub(5, 6, 7)  # 5 was printed before the restart
    with pytest.raises(grpc.aio.AioRpcError):
        await app.follower(stub).run()  # type: ignore[arg-type]  # a fake of the stub
    assert [(r.subscription_id, r.resume_after) for r in stub.requests] == [("sub-1", 5)]
    assert [line.split()[1] for line in printed] == ["#6", "#7"]
    app.flush_state()
    assert _saved(path) == CompanionState("sub-1", 18056, [current, previous], last_sequence=7)


async def test_the_webhook_of_a_resumed_subscription_verifies_with_the_saved_secret(
    tmp_path: Path,
) -> None:
    path = tmp_path / "companion.json"
    secret = new_secret()
    save_state(path, CompanionState("sub-1", 18056, [secret], last_sequence=2))
    printed: list[str] = []
    app = CompanionApp(parse_args(["--state-file", str(path)]), "token", printed.append)
    app.resume(StateFile(path, _saved(path)))

    async with TestClient(TestServer(app.receiver.application(), host="127.0.0.1")) as client:
        body = notification_body(sequence=3, notification_id="msg_3")
        headers = sign(body, secret, msg_id="msg_3")
        first = await client.post(WEBHOOK_PATH, data=body, headers=headers)
        retry = await client.post(WEBHOOK_PATH, data=body, headers=headers)
        handshake = await client.post(WEBHOOK_PATH, data=HANDSHAKE)  # unsigned: refused now
    assert (first.status, retry.status, handshake.status) == (204, 204, 401)
    assert printed == [f"webhook #3 order.signed order={ORDER} patient={PATIENT} version=2"]


class RenewingStub:
    """RenewSubscription: each renewal extends the grant by 30 days from now."""

    def __init__(self) -> None:
        self.renewed: list[str] = []

    async def RenewSubscription(  # noqa: N802  # the gRPC method's name
        self, request: notify_pb2.RenewSubscriptionRequest, **_: Any
    ) -> notify_pb2.RenewSubscriptionResponse:
        self.renewed.append(request.subscription_id)
        response = notify_pb2.RenewSubscriptionResponse()
        response.subscription.subscription_id = request.subscription_id
        response.subscription.expires_at.FromSeconds(int(time.time()) + 30 * 86400)
        return response


async def test_the_grant_is_renewed_before_it_expires() -> None:
    printed: list[str] = []
    app = CompanionApp(parse_args([]), "token", printed.append)
    app.subscription_id, app.expires_at = "sub-1", int(time.time())  # due at once
    stub = RenewingStub()

    renewing = asyncio.create_task(app.renew_before_expiry(stub))  # type: ignore[arg-type]
    try:
        assert await eventually(lambda: stub.renewed == ["sub-1"])
    finally:
        renewing.cancel()
    assert app.expires_at > time.time() + 29 * 86400
