"""A companion app for the notify service: one subscription, followed on both channels.

Copy it as a starting point. It

1. serves a webhook endpoint (aiohttp) at http://127.0.0.1:<port>/webhook;
2. creates a subscription (CreateSubscription) with that webhook, answering the service's
   handshake on the way, and keeps the signing secret the call returns;
3. verifies every later webhook POST with the secret (Standard Webhooks: HMAC-SHA256 over
   ``id.timestamp.body``, several signatures while a secret rotates, timestamps within 5 minutes),
   prints each notification once (a retried delivery has the same ``webhook-id``) and answers 204;
4. follows the Subscribe stream, resuming after the last sequence number it printed whenever the
   stream breaks, so nothing is missed or printed twice;
5. with ``--state-file``, keeps its subscription across restarts: the file (JSON, mode 0600: it
   holds the secrets) records the subscription id, the webhook port, the secrets and the last
   sequence number printed. On start the app checks the subscription still exists
   (GetSubscription), serves the webhook on the saved port, trusts the saved secrets and resumes
   the stream after the saved number; webhook deliveries that failed while it was down are retried
   by the service and arrive once it is back. A subscription that is gone (or no longer ours, or
   made with other options, or expired or revoked) is replaced, and the file overwritten;
6. renews the subscription's grant (RenewSubscription) whenever half of what is left of it has
   passed: a grant not renewed expires (30 days by default) and then delivers nothing more.

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
import tempfile
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
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
# GetSubscription answers these for a saved subscription that cannot be used: create a new one.
GONE = frozenset(
    {
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.INVALID_ARGUMENT,  # a subscription id that is not a UUID (a bad file)
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


# --- The state file ---------------------------------------------------------------------------


class InvalidStateError(Exception):
    """The state file is not what save_state writes."""


@dataclass
class CompanionState:
    """What the app needs to carry on with the same subscription after a restart."""

    subscription_id: str
    webhook_port: int
    secrets: list[str] = field(default_factory=list)  # the current one first
    last_sequence: int = 0

    @classmethod
    def from_json(cls, data: Any) -> CompanionState:
        if not isinstance(data, dict):
            raise InvalidStateError("not a JSON object")
        subscription_id, port = data.get("subscription_id"), data.get("webhook_port")
        secrets, last = data.get("secrets"), data.get("last_sequence", 0)
        if not isinstance(subscription_id, str) or not subscription_id:
            raise InvalidStateError("no subscription_id")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise InvalidStateError("no webhook_port")
        if not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets):
            raise InvalidStateError("secrets is not a list of strings")
        if not isinstance(last, int) or isinstance(last, bool) or last < 0:
            raise InvalidStateError("last_sequence is not a sequence number")
        return cls(subscription_id, port, list(secrets), last)


def load_state(path: Path) -> CompanionState | None:
    """The saved state; None when there is no file. InvalidStateError when it is unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return CompanionState.from_json(json.loads(text))
    except ValueError as error:
        raise InvalidStateError(str(error)) from error


def save_state(path: Path, state: CompanionState) -> None:
    """Write `state` atomically (a temporary file, then os.replace), readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)  # mkstemp's mode already; said here because the file holds secrets
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(asdict(state), file, indent=2)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


class StateFile:
    """Keeps a CompanionState on disk.

    save() writes at once (a new subscription, a new secret); record_sequence() at most once per
    `interval_s`, with a write scheduled for the end of the interval so the newest number reaches
    the disk even when no other notification follows; flush() writes what is pending (on exit).
    A number that did not reach the disk is only printed again after a crash, never missed.
    """

    def __init__(
        self,
        path: Path,
        state: CompanionState,
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.state = state
        self._interval_s = interval_s
        self._clock = clock
        self._written_at: float | None = None
        self._dirty = False
        self._pending: asyncio.TimerHandle | None = None

    def save(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        try:
            save_state(self.path, self.state)
        except OSError as error:
            print_diagnostic(f"could not write {self.path}: {error}")
        self._written_at = self._clock()
        self._dirty = False

    def record_sequence(self, sequence: int) -> None:
        if sequence <= self.state.last_sequence:
            return
        self.state.last_sequence = sequence
        self._dirty = True
        since = None if self._written_at is None else self._clock() - self._written_at
        if since is None or since >= self._interval_s:
            self.save()
        elif self._pending is None:
            loop = asyncio.get_running_loop()
            self._pending = loop.call_later(self._interval_s - since, self.flush)

    def set_secrets(self, current_first: Iterable[str]) -> None:
        self.state.secrets = list(current_first)
        self.save()

    def flush(self) -> None:
        if self._dirty:
            self.save()
        elif self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def remove(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._dirty = False
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


# --- The app ----------------------------------------------------------------------------------


class FatalError(Exception):
    """Something retrying cannot fix (a bad token, an unknown subscription, ...)."""


StartWebhook = Callable[[int], Awaitable[int]]
"""Serves the webhook endpoint on a port (0: a free one) and returns the port bound."""


def webhook_url(port: int) -> str:
    return f"http://127.0.0.1:{port}{WEBHOOK_PATH}"


class CompanionApp:
    def __init__(self, args: argparse.Namespace, token: str, emit: Emit = print_line) -> None:
        self._args = args
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._emit = emit
        self.verifier = WebhookVerifier()
        self.receiver = WebhookReceiver(self.verifier, emit)
        self.subscription_id = ""
        self.state_file: StateFile | None = None
        self._resume_after = 0
        self._rotated = asyncio.Event()
        self._printed = 0
        self.expires_at = 0  # the grant's end, seconds since the epoch

    async def run(
        self, stub: notify_pb2_grpc.NotifyServiceStub, start_webhook: StartWebhook
    ) -> None:
        saved = await self._saved_subscription(stub)
        if saved is not None:
            port = await start_webhook(saved.webhook_port)
            self.resume(StateFile(self._args.state_file, saved))
            print_diagnostic(
                f"subscription {self.subscription_id} (resumed after #{self._resume_after}): "
                f"webhook {webhook_url(port)}"
            )
        else:
            port = await start_webhook(self._args.webhook_port)
            subscription = await self._create_subscription(stub, webhook_url(port))
            self.subscription_id = subscription.subscription_id
            self.expires_at = subscription.expires_at.ToSeconds()
            if self._args.state_file is not None:
                state = CompanionState(
                    self.subscription_id, port, list(reversed(self.verifier.secrets))
                )
                self.state_file = StateFile(self._args.state_file, state)
                self.state_file.save()
            print_diagnostic(
                f"subscription {self.subscription_id}: webhook {webhook_url(port)}, "
                f"topics {', '.join(self._args.topic)}, content {self._args.content}"
            )
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.follower(stub).run())
            tasks.create_task(self.renew_before_expiry(stub))
            if self._args.rotate_after:
                tasks.create_task(self._rotate_when_due(stub))

    def resume(self, state_file: StateFile) -> None:
        """Carry on with a saved subscription: its secrets, and the stream after its number."""
        state = state_file.state
        self.state_file = state_file
        self.subscription_id = state.subscription_id
        for secret in reversed(state.secrets):  # the verifier holds the current one last
            self.verifier.add_secret(secret)
        self._resume_after = state.last_sequence

    def follower(self, stub: notify_pb2_grpc.NotifyServiceStub) -> StreamFollower:
        return StreamFollower(
            stub, self.subscription_id, self._metadata, self._emit,
            resume_after=self._resume_after, on_notification=self._count,
        )  # fmt: skip

    async def _saved_subscription(
        self, stub: notify_pb2_grpc.NotifyServiceStub
    ) -> CompanionState | None:
        """The state file's subscription, if there is one and it is still ours and as asked."""
        path: Path | None = self._args.state_file
        if path is None:
            return None
        try:
            state = load_state(path)
        except (InvalidStateError, OSError) as error:
            print_diagnostic(f"ignoring {path}: {error}")
            return None
        if state is None:
            return None
        request = notify_pb2.GetSubscriptionRequest(subscription_id=state.subscription_id)
        backoff = Backoff(max_s=5.0)
        while True:
            try:
                response: notify_pb2.GetSubscriptionResponse = await stub.GetSubscription(
                    request, metadata=self._metadata, timeout=UNARY_TIMEOUT_S
                )
                break
            except grpc.aio.AioRpcError as error:
                code = error.code()
                if code in GONE:
                    print_diagnostic(
                        f"saved subscription {state.subscription_id} is gone ({code.name}); "
                        "creating a new one"
                    )
                    return None
                if code not in RETRYABLE:
                    raise FatalError(f"GetSubscription: {code.name}: {error.details()}") from None
                delay = backoff.next_delay()
                print_diagnostic(f"notify not ready ({code.name}); retrying in {delay:.1f} s")
                await asyncio.sleep(delay)
        if (reason := self._differs(response.subscription, state)) is not None:
            print_diagnostic(
                f"saved subscription {state.subscription_id} has {reason}; replacing it"
            )
            self.subscription_id = state.subscription_id
            await self.delete_subscription(stub)
            self.subscription_id = ""
            return None
        self.expires_at = response.subscription.expires_at.ToSeconds()
        return state

    def _differs(self, subscription: notify_pb2.Subscription, state: CompanionState) -> str | None:
        """What makes a saved subscription unlike the one these options would create, if any."""
        args = self._args
        differences = (
            (set(subscription.topics) != {TOPICS[name] for name in args.topic}, "other topics"),
            (subscription.content != CONTENTS[args.content], "another content"),
            (set(subscription.filter.patient_ids) != set(args.patient_id), "another filter"),
            (args.webhook_port not in (0, state.webhook_port), f"port {state.webhook_port}"),
            (subscription.webhook.url != webhook_url(state.webhook_port), "another webhook"),
            (not state.secrets, "no saved secret"),
            (
                subscription.state != notify_pb2.SUBSCRIPTION_STATE_ACTIVE,
                "a grant expired or revoked",
            ),
        )
        return next((reason for differs, reason in differences if differs), None)

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
            self.subscription_id = response.subscription.subscription_id
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
            loop.call_later(max(expires_in, 0.0), self._forget_secret, secret)
        self._save_secrets()
        print_diagnostic("webhook secret rotated")

    async def renew_before_expiry(self, stub: notify_pb2_grpc.NotifyServiceStub) -> None:
        """Renew the grant whenever half of what is left of it has passed, while the app runs."""
        backoff = Backoff(max_s=60.0)
        while True:
            await asyncio.sleep(max((self.expires_at - time.time()) / 2, 1.0))
            try:
                response: notify_pb2.RenewSubscriptionResponse = await stub.RenewSubscription(
                    notify_pb2.RenewSubscriptionRequest(
                        request_id=str(uuid.uuid4()), subscription_id=self.subscription_id
                    ),
                    metadata=self._metadata, timeout=UNARY_TIMEOUT_S,
                )  # fmt: skip
            except grpc.aio.AioRpcError as error:
                if error.code() not in RETRYABLE:
                    raise FatalError(f"RenewSubscription: {error.code().name}") from None
                await asyncio.sleep(backoff.next_delay())
                continue
            self.expires_at = response.subscription.expires_at.ToSeconds()
            print_diagnostic(f"renewed until {response.subscription.expires_at.ToJsonString()}")

    def _forget_secret(self, secret: str) -> None:
        self.verifier.remove_secret(secret)
        self._save_secrets()

    def _save_secrets(self) -> None:
        if self.state_file is not None:
            self.state_file.set_secrets(reversed(self.verifier.secrets))  # the current one first

    def _count(self, notification: notify_pb2.Notification) -> None:
        if self.state_file is not None:
            self.state_file.record_sequence(notification.sequence)
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
            if self.state_file is not None:
                self.state_file.remove()  # nothing left to resume
                self.state_file = None

    def flush_state(self) -> None:
        if self.state_file is not None:
            self.state_file.flush()


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

    async def start_webhook(port: int) -> int:
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
        except OSError as error:
            raise FatalError(f"cannot serve the webhook on 127.0.0.1:{port}: {error}") from None
        bound: int = runner.addresses[0][1]
        return bound

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    status = 0
    try:
        async with grpc.aio.insecure_channel(args.notify) as channel:
            stub = notify_pb2_grpc.NotifyServiceStub(channel)
            main = asyncio.create_task(app.run(stub, start_webhook))
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
            app.flush_state()
            if args.delete_on_exit:
                await app.delete_subscription(stub)
    finally:
        await runner.cleanup()
    return status


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notify", default="127.0.0.1:18054", help="the notify service")
    parser.add_argument("--token", help="bearer token (default: $CLINICAL_TOKEN)")
    parser.add_argument(
        "--webhook-port", type=int, default=0,
        help="0: a free port (with a saved subscription: the port saved with it)",
    )  # fmt: skip
    parser.add_argument(
        "--state-file", type=Path, metavar="PATH",
        help="keep the subscription across restarts: its id, webhook port, secrets and the last "
        "sequence number are saved here (JSON, mode 0600) and resumed on the next start",
    )  # fmt: skip
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
