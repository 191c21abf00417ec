"""The websocket channel of FHIR Subscriptions (Subscriptions R5 Backport IG): at
``/fhir/r4/subscriptions/ws`` a client sends ``bind-with-token <token>`` (a token from
``$get-ws-binding-token``), optionally followed by the last event number it has seen to resume
after it; the gateway answers with a ``handshake`` notification bundle, then one
``event-notification`` bundle per event in order, and a ``heartbeat`` bundle whenever notify's
stream sends one (after ``NOTIFY_HEARTBEAT_S`` of silence).

Events come from notify's Subscribe stream, called as the token's caller (their grants, checked
by notify at every delivery). A refused or failed bind closes with 1008 (policy violation) and
a reason naming no value; a subscription that ends (deleted, expired, revoked) closes with 1008
too (1013 when notify cannot be reached: bind again later). A session lasts at most
``session_s``: then the socket closes with 1000 and the client binds again with a new token
and the last number it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from clinical_platform.fhir_notifications import (
    FULL_RESOURCE,
    ID_ONLY,
    TopicInfo,
    notification_bundle,
)
from gateway.application import GatewayApp, InsufficientScopeError
from gateway.entrypoints.fhir.outcomes import BASE_PATH
from gateway.entrypoints.fhir.subscription_api import EVENTS, FHIR_FORMAT, GET, SUBSCRIBE
from gateway.entrypoints.fhir.subscription_resource import topic_of_subscription
from gateway.entrypoints.fhir.subscription_tokens import Binding, BindingTokens
from gateway.ports import StreamEndedError

PATH = BASE_PATH + "/subscriptions/ws"
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
_TRANSIENT = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"})


class SessionEndedError(Exception):
    """The bound subscription can no longer be read (its reason names no value); ``code``
    is the close code: 1008, or 1013 (try again later) when notify cannot be reached."""

    def __init__(self, reason: str, code: int = POLICY_VIOLATION) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True)
class ChannelTimes:
    session_s: float = 900.0
    bind_timeout_s: float = 30.0


@dataclass
class _Session:
    app: GatewayApp
    binding: Binding
    subscription: Mapping[str, Any]
    topic: TopicInfo
    last: int

    async def read(self, route_values: Mapping[str, Any]) -> Mapping[str, Any]:
        try:
            answer = await self.app.perform(self.binding.caller, EVENTS, route_values,
                                            request_id=str(uuid.uuid4()))  # fmt: skip
        except InsufficientScopeError:
            raise SessionEndedError("the token's scopes no longer allow this") from None
        if answer.status in _TRANSIENT:
            raise SessionEndedError("notify cannot be reached: bind again", TRY_AGAIN_LATER)
        if answer.status != "OK":
            raise SessionEndedError("the subscription can no longer be read")
        return answer.body

    def bundle(self, notifications: list[dict[str, Any]], kind: str, head: int) -> str:
        full = self.subscription.get("content") == "CONTENT_FULL"
        bundle = notification_bundle(
            subscription_id=self.binding.subscription_id, topic=self.topic,
            notifications=notifications, events_since_start=head,
            payload=FULL_RESOURCE if full else ID_ONLY, kind=kind,
        )  # fmt: skip
        return json.dumps(bundle, separators=(",", ":"))


def subscription_socket_route(
    app: GatewayApp, tokens: BindingTokens, times: ChannelTimes | None = None
) -> WebSocketRoute:
    """The websocket endpoint, redeeming ``tokens`` issued by ``$get-ws-binding-token``."""
    timing = times or ChannelTimes()

    async def channel(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            session = await _bind(websocket, app, tokens, timing)
            if session is None:
                return
            await _serve(websocket, session, timing)
        except WebSocketDisconnect:
            return
        except SessionEndedError as ended:
            await websocket.close(ended.code, str(ended))

    return WebSocketRoute(PATH, channel)


async def _bind(websocket: WebSocket, app: GatewayApp, tokens: BindingTokens,
                timing: ChannelTimes) -> _Session | None:  # fmt: skip
    try:
        text = await asyncio.wait_for(websocket.receive_text(), timing.bind_timeout_s)
    except TimeoutError:
        await websocket.close(POLICY_VIOLATION, "send bind-with-token <token>")
        return None
    words = text.split()
    if len(words) not in {2, 3} or words[0] != "bind-with-token":
        await websocket.close(POLICY_VIOLATION, "send bind-with-token <token>")
        return None
    binding = tokens.redeem(words[1])
    if binding is None:
        await websocket.close(POLICY_VIOLATION, "the binding token is unknown, used or expired")
        return None
    resume = words[2] if len(words) == 3 else ""  # the optional third word
    if resume and not (resume.isascii() and resume.isdigit() and len(resume) <= 18):
        await websocket.close(POLICY_VIOLATION, "the event number must be a whole number")
        return None
    try:
        answer = await app.perform(binding.caller, GET,
                                   {"subscription_id": binding.subscription_id},
                                   request_id=str(uuid.uuid4()))  # fmt: skip
    except InsufficientScopeError:
        raise SessionEndedError("the token's scopes no longer allow this") from None
    subscription = answer.body.get("subscription", {})
    if answer.status != "OK" or subscription.get("payload_format") != FHIR_FORMAT:
        raise SessionEndedError("the subscription can no longer be read")
    session = _Session(app, binding, subscription, topic_of_subscription(subscription), 0)
    head = int((await session.read({"subscription_id": binding.subscription_id, "since": 0,
                                    "page_size": 1})).get("head_sequence", 0))  # fmt: skip
    session.last = min(int(resume), head) if resume else head
    await websocket.send_text(session.bundle([], "handshake", head))
    return session


async def _serve(websocket: WebSocket, session: _Session, timing: ChannelTimes) -> None:
    """Notifications after ``session.last`` from notify's Subscribe stream as they are
    matched, and its heartbeats, until the client leaves, the subscription ends or the
    session's time is up."""

    async def pump() -> None:
        values = {"subscription_id": session.binding.subscription_id,
                  "resume_after": session.last}  # fmt: skip
        try:
            async for message in session.app.stream(session.binding.caller, SUBSCRIBE, values,
                                                    request_id=str(uuid.uuid4())):  # fmt: skip
                if notification := message.get("notification"):
                    number = int(notification["sequence"])
                    await websocket.send_text(
                        session.bundle([dict(notification)], "event-notification", number)
                    )
                    session.last = number
                elif heartbeat := message.get("heartbeat"):
                    head = int(heartbeat.get("head_sequence", 0))
                    await websocket.send_text(session.bundle([], "heartbeat", head))
        except InsufficientScopeError:
            raise SessionEndedError("the token's scopes no longer allow this") from None
        except StreamEndedError as ended:
            if ended.status in _TRANSIENT:
                raise SessionEndedError("notify cannot be reached: bind again",
                                        TRY_AGAIN_LATER) from None  # fmt: skip
            raise SessionEndedError("the subscription can no longer be read") from None

    async def watch_client() -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass

    streaming, watcher = asyncio.create_task(pump()), asyncio.create_task(watch_client())
    try:
        done, _ = await asyncio.wait({streaming, watcher}, timeout=timing.session_s,
                                     return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        if watcher in done:
            return  # the client left
        if streaming in done:
            streaming.result()  # SessionEndedError when notify ended it
        await websocket.close(1000, "the session's time is up: bind again")
    finally:
        streaming.cancel()
        watcher.cancel()
