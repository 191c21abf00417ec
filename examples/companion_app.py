"""A companion app for the notify service: one subscription, followed on both channels.

Copy it as a starting point. It

1. serves a webhook endpoint (aiohttp) at http://127.0.0.1:<port>/webhook;
2. creates a subscription (CreateSubscription) with that webhook, answering the service's
   handshake on the way, and keeps the signing secret the call returns;
3. verifies every later webhook POST with the secret (Standard Webhooks: HMAC-SHA256 over
   ``id.timestamp.body``, several signatures while a secret rotates, timestamps within 5 minutes),
   prints each notification once (a retried delivery has the same ``webhook-id``) and answers 204;
4. follows the Subscribe stream, resuming after the last sequence number it printed whenever the
   stream breaks, so nothing is missed or printed twice.

Output is one flushed line per notification and channel, ids only, e.g.::

    stream  #3 order.signed order=<uuid> patient=<uuid> version=2
    webhook #3 order.signed order=<uuid> patient=<uuid> version=2

Diagnostics go to stderr. Run it against `make run` (which starts one of these too)::

    uv run --no-sync python examples/companion_app.py --token "$(make -s token ROLE=clinician)"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from clinical.notify.v1 import notify_pb2, notify_pb2_grpc

WEBHOOK_PATH = "/webhook"
HANDSHAKE_TYPE = "webhook.handshake"
TOPICS = {
    "order.signed": notify_pb2.TOPIC_ORDER_SIGNED,
    "result.posted": notify_pb2.TOPIC_RESULT_POSTED,
    "order.cancelled": notify_pb2.TOPIC_ORDER_CANCELLED,
    "result.amended": notify_pb2.TOPIC_RESULT_AMENDED,
}
CONTENTS = {"id-only": notify_pb2.CONTENT_ID_ONLY, "full": notify_pb2.CONTENT_FULL}
# Worth another try: the service is (re)starting or the connection broke.
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
    }
)
UNARY_TIMEOUT_S = 30.0

Emit = Callable[[str], None]


def print_line(text: str) -> None:
    print(text, flush=True)


def print_diagnostic(text: str) -> None:
    print(f"companion: {text}", file=sys.stderr, flush=True)


# --- Webhook verification -------------------------------------------------------------------


class InvalidWebhookError(Exception):
    """A webhook request did not verify: missing headers, bad signature or stale timestamp."""


class WebhookVerifier:
    """Verifies Standard Webhooks requests against any of the secrets it holds.

    One secret is the normal case. While the service rotates the secret it signs every delivery
    with both the old and the new one (``webhook-signature: v1,<new> v1,<old>``), so a receiver
    holding either verifies; add the new secret, and remove the old one once it expires.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._webhooks: dict[str, Webhook] = {}
        for secret in secrets:
            self.add_secret(secret)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self._webhooks)

    def add_secret(self, secret: str) -> None:
        """Trust `secret` ("whsec_<base64>") as well as the ones held already."""
        self._webhooks[secret] = Webhook(secret)

    def remove_secret(self, secret: str) -> None:
        self._webhooks.pop(secret, None)

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Return when one held secret signed `body` with these headers; raise otherwise."""
        if not self._webhooks:
            raise InvalidWebhookError("no webhook secret yet")
        plain = {name.lower(): value for name, value in headers.items()}
        failure: Exception | None = None
        for webhook in self._webhooks.values():
            try:
                webhook.verify(body, plain, json_parse=False)
            # The library raises ValueError (binascii.Error, a bad "v1,<sig>" split, a body that
            # is not UTF-8) for malformed input: as much a failed verification as a wrong HMAC.
            except (WebhookVerificationError, ValueError) as error:
                failure = error
            else:
                return
        raise InvalidWebhookError(str(failure)) from failure


# --- Printing ---------------------------------------------------------------------------------


def format_notification(channel: str, notification: notify_pb2.Notification) -> str:
    """One greppable line: channel, sequence, type and ids; never clinical content."""
    parts = [f"{channel:<7} #{notification.sequence} {notification.type}"]
    ids = (
        ("order", notification.order_id),
        ("result", notification.result_id),
        ("patient", notification.patient_id),
    )
    parts += [f"{label}={value}" for label, value in ids if value]
    if notification.version:
        parts.append(f"version={notification.version}")
    return " ".join(parts)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _handshake_challenge(payload: Mapping[str, Any] | None) -> str | None:
    if payload is None or payload.get("type") != HANDSHAKE_TYPE:
        return None
    data = payload.get("data")
    challenge = data.get("challenge") if isinstance(data, dict) else None
    return challenge if isinstance(challenge, str) else None


# --- The webhook endpoint ---------------------------------------------------------------------


class WebhookReceiver:
    """The aiohttp handler: handshake, verification, de-duplication by webhook-id, printing."""

    def __init__(
        self, verifier: WebhookVerifier, emit: Emit = print_line, *, remember: int = 10_000
    ):
        self.verifier = verifier
        self._emit = emit
        self._remember = remember
        self._seen: OrderedDict[str, None] = OrderedDict()

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_post(WEBHOOK_PATH, self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        payload = _json_object(body)
        if not self.verifier.secrets:
            # The handshake arrives while CreateSubscription is still running, before the
            # response hands us the secret, so its signature cannot be checked yet. Echoing the
            # challenge proves only that this endpoint is ours and reveals nothing; everything
            # else is refused until we hold the secret (the service retries a refused delivery).
            return _answer_handshake(payload) or web.Response(status=401)
        try:
            self.verifier.verify(body, request.headers)
        except InvalidWebhookError:
            return web.Response(status=401)
        if payload is None:
            return web.Response(status=400)
        # A signed handshake (say, a re-check of the endpoint) is answered the same way.
        return _answer_handshake(payload) or self._notification(
            request.headers["webhook-id"],  # verify() refused requests without one
            payload,
        )

    def _notification(self, webhook_id: str, payload: Mapping[str, Any]) -> web.Response:
        if webhook_id in self._seen:
            return web.Response(status=204)  # a retry of a delivery we printed already
        data = payload.get("data")
        notification = notify_pb2.Notification()
        try:
            if not isinstance(data, dict):
                raise TypeError("data is not an object")
            json_format.ParseDict(data, notification, ignore_unknown_fields=True)
        except (json_format.ParseError, TypeError):
            return web.Response(status=400)
        self._seen[webhook_id] = None
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        self._emit(format_notification("webhook", notification))
        return web.Response(status=204)


def _answer_handshake(payload: Mapping[str, Any] | None) -> web.Response | None:
    challenge = _handshake_challenge(payload)
    return None if challenge is None else web.json_response({"challenge": challenge})


# --- The stream -------------------------------------------------------------------------------


class Backoff:
    """Exponential delays with full jitter, from `first_s` up to `max_s`."""

    def __init__(self, first_s: float = 0.5, max_s: float = 30.0) -> None:
        self.first_s, self.max_s = first_s, max_s
        self._next = first_s

    def reset(self) -> None:
        self._next = self.first_s

    def next_delay(self) -> float:
        delay = random.uniform(self._next / 2, self._next)  # noqa: S311  # jitter, not crypto
        self._next = min(self._next * 2, self.max_s)
        return delay


class StreamFollower:
    """Follows Subscribe, reconnecting with resume_after = the last sequence it printed."""

    def __init__(
        self,
        stub: notify_pb2_grpc.NotifyServiceStub,
        subscription_id: str,
        metadata: Sequence[tuple[str, str]],
        emit: Emit = print_line,
        *,
        resume_after: int = 0,
        idle_timeout_s: float = 60.0,
        on_notification: Callable[[notify_pb2.Notification], None] | None = None,
    ) -> None:
        self._stub = stub
        self._subscription_id = subscription_id
        self._metadata = tuple(metadata)
        self._emit = emit
        self.last_sequence = resume_after
        # The service sends heartbeats while idle: silence this long means a dead connection.
        self._idle_timeout_s = idle_timeout_s
        self._on_notification = on_notification
        self._backoff = Backoff()

    async def run(self) -> None:
        """Follow until cancelled; raise grpc.aio.AioRpcError on an error retrying cannot fix."""
        while True:
            try:
                await self._follow_once()
                reason = "the stream ended"
            except grpc.aio.AioRpcError as error:
                if error.code() not in RETRYABLE:
                    raise
                reason = error.code().name
            except TimeoutError:
                reason = f"no heartbeat for {self._idle_timeout_s:g} s"
            delay = self._backoff.next_delay()
            print_diagnostic(
                f"stream broke ({reason}); resuming after #{self.last_sequence} in {delay:.1f} s"
            )
            await asyncio.sleep(delay)

    async def _follow_once(self) -> None:
        request = notify_pb2.SubscribeRequest(
            subscription_id=self._subscription_id, resume_after=self.last_sequence
        )
        call = self._stub.Subscribe(request, metadata=self._metadata)
        try:
            while True:
                async with asyncio.timeout(self._idle_timeout_s):
                    response = await call.read()
                if response is grpc.aio.EOF:
                    return
                self._backoff.reset()  # the connection works again
                if response.WhichOneof("kind") == "notification":
                    self._handle(response.notification)
                # Heartbeats only keep the connection (and the idle timeout above) alive.
        finally:
            call.cancel()

    def _handle(self, notification: notify_pb2.Notification) -> None:
        if notification.sequence <= self.last_sequence:
            return  # already printed before a reconnect
        self._emit(format_notification("stream", notification))
        self.last_sequence = notification.sequence
        if self._on_notification is not None:
            self._on_notification(notification)


# --- The app ----------------------------------------------------------------------------------


class FatalError(Exception):
    """Something retrying cannot fix (a bad token, an unknown subscription, ...)."""


class CompanionApp:
    def __init__(self, args: argparse.Namespace, token: str, emit: Emit = print_line) -> None:
        self._args = args
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._emit = emit
        self.verifier = WebhookVerifier()
        self.receiver = WebhookReceiver(self.verifier, emit)
        self.subscription_id = ""
        self._rotated = asyncio.Event()
        self._printed = 0

    async def run(self, stub: notify_pb2_grpc.NotifyServiceStub, webhook_url: str) -> None:
        subscription = await self._create_subscription(stub, webhook_url)
        self.subscription_id = subscription.subscription_id
        print_diagnostic(
            f"subscription {self.subscription_id}: webhook {webhook_url}, "
            f"topics {', '.join(self._args.topic)}, content {self._args.content}"
        )
        follower = StreamFollower(
            stub, self.subscription_id, self._metadata, self._emit,
            on_notification=self._count,
        )  # fmt: skip
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(follower.run())
            if self._args.rotate_after:
                tasks.create_task(self._rotate_when_due(stub))

    async def _create_subscription(
        self, stub: notify_pb2_grpc.NotifyServiceStub, webhook_url: str
    ) -> notify_pb2.Subscription:
        request = notify_pb2.CreateSubscriptionRequest(
            request_id=str(uuid.uuid4()),  # the same on every retry below: idempotent
            topics=[TOPICS[name] for name in self._args.topic],
            filter=notify_pb2.Filter(patient_ids=self._args.patient_id),
            content=CONTENTS[self._args.content],
            webhook=notify_pb2.Webhook(url=webhook_url),
        )
        backoff = Backoff(max_s=5.0)
        while True:
            try:
                response: notify_pb2.CreateSubscriptionResponse = await stub.CreateSubscription(
                    request, metadata=self._metadata, timeout=UNARY_TIMEOUT_S
                )
                break
            except grpc.aio.AioRpcError as error:
                code = error.code()
                if code == grpc.StatusCode.UNIMPLEMENTED:
                    raise FatalError("the notify service does not implement this API yet") from None
                if code not in RETRYABLE:
                    raise FatalError(
                        f"CreateSubscription: {code.name}: {error.details()}"
                    ) from None
                delay = backoff.next_delay()
                print_diagnostic(f"notify not ready ({code.name}); retrying in {delay:.1f} s")
                await asyncio.sleep(delay)
        if response.webhook_secret:
            self.verifier.add_secret(response.webhook_secret)
        else:
            # A retry whose first attempt had succeeded (the secret is shown only once): ask for
            # a new one. The service signs with both during the overlap, so nothing is lost.
            await self._rotate(stub)
        return response.subscription

    async def _rotate(self, stub: notify_pb2_grpc.NotifyServiceStub) -> None:
        response = await stub.RotateWebhookSecret(
            notify_pb2.RotateWebhookSecretRequest(
                request_id=str(uuid.uuid4()), subscription_id=self.subscription_id
            ),
            metadata=self._metadata,
            timeout=UNARY_TIMEOUT_S,
        )
        if not response.webhook_secret:
            raise FatalError("RotateWebhookSecret returned no secret")
        old = self.verifier.secrets
        self.verifier.add_secret(response.webhook_secret)
        # Deliveries carry a signature with the old secret too until previous_secret_expires_at:
        # keep trusting it until then (a delivery signed just before the rotation may be retried),
        # and no longer.
        expires_in = response.previous_secret_expires_at.ToSeconds() - time.time()
        loop = asyncio.get_running_loop()
        for secret in old:
            loop.call_later(max(expires_in, 0.0), self.verifier.remove_secret, secret)
        print_diagnostic("webhook secret rotated")

    def _count(self, _: notify_pb2.Notification) -> None:
        self._printed += 1
        if self._args.rotate_after and self._printed >= self._args.rotate_after:
            self._rotated.set()

    async def _rotate_when_due(self, stub: notify_pb2_grpc.NotifyServiceStub) -> None:
        await self._rotated.wait()
        await self._rotate(stub)

    async def delete_subscription(self, stub: notify_pb2_grpc.NotifyServiceStub) -> None:
        if not self.subscription_id:
            return
        try:
            await stub.DeleteSubscription(
                notify_pb2.DeleteSubscriptionRequest(
                    request_id=str(uuid.uuid4()), subscription_id=self.subscription_id
                ),
                metadata=self._metadata,
                timeout=5.0,
            )
        except grpc.aio.AioRpcError as error:
            print_diagnostic(f"could not delete {self.subscription_id}: {error.code().name}")
        else:
            print_diagnostic(f"deleted subscription {self.subscription_id}")


def _fatal_message(error: BaseException) -> str | None:
    """The message of a FatalError or a non-retryable gRPC error, also inside a TaskGroup."""
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            if (message := _fatal_message(inner)) is not None:
                return message
        return None
    if isinstance(error, FatalError):
        return str(error)
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return None


async def serve(args: argparse.Namespace, token: str) -> int:
    app = CompanionApp(args, token)
    runner = web.AppRunner(app.receiver.application(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.webhook_port).start()
    port = runner.addresses[0][1]
    webhook_url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    status = 0
    try:
        async with grpc.aio.insecure_channel(args.notify) as channel:
            stub = notify_pb2_grpc.NotifyServiceStub(channel)
            main = asyncio.create_task(app.run(stub, webhook_url))
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            main.cancel()
            try:
                await main
            except asyncio.CancelledError:
                pass  # stopped by SIGINT/SIGTERM
            except Exception as error:
                message = _fatal_message(error)
                if message is None:
                    raise
                print_diagnostic(message)
                status = 1
            if args.delete_on_exit:
                await app.delete_subscription(stub)
    finally:
        await runner.cleanup()
    return status


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notify", default="127.0.0.1:50054", help="the notify service")
    parser.add_argument("--token", help="bearer token (default: $CLINICAL_TOKEN)")
    parser.add_argument("--webhook-port", type=int, default=0, help="0: a free port")
    parser.add_argument(
        "--topic", action="append", choices=list(TOPICS), help="repeatable (default: all four)"
    )
    parser.add_argument("--content", choices=list(CONTENTS), default="id-only")
    parser.add_argument("--patient-id", action="append", default=[], help="repeatable filter")
    parser.add_argument(
        "--rotate-after", type=int, default=0, metavar="N",
        help="rotate the webhook secret after N stream notifications (0: never)",
    )  # fmt: skip
    parser.add_argument(
        "--delete-on-exit", action="store_true", help="delete the subscription when stopping"
    )
    args = parser.parse_args(argv)
    args.topic = args.topic or list(TOPICS)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    token = args.token or os.environ.get("CLINICAL_TOKEN", "")
    if not token:
        print_diagnostic("a token is needed: --token or CLINICAL_TOKEN")
        return 2
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C before the handlers are installed
        return asyncio.run(serve(args, token))
    return 0


if __name__ == "__main__":
    sys.exit(main())
