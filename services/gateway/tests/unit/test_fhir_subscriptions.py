"""FHIR Subscription <-> notify's subscriptions, the websocket binding tokens and the
CapabilityStatement's Subscription entry, without servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.subscription import Subscription
from starlette.applications import Starlette
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from clinical_platform.fhir_notifications import FILTER_CRITERIA, PAYLOAD_CONTENT, TOPICS
from clinical_platform.principals import Principal
from gateway.adapters.internal_tokens import InternalTokenIssuer
from gateway.adapters.rate_limits import WindowRateLimiter
from gateway.adapters.refusal_log import RefusalLog
from gateway.application import GatewayApp
from gateway.domain.identity import Caller, IdentityMapping
from gateway.domain.scopes import Context, parse_scopes
from gateway.entrypoints.fhir.capability import capability_statement
from gateway.entrypoints.fhir.outcomes import FhirError
from gateway.entrypoints.fhir.subscription_resource import (
    resource_from_subscription,
    subscription_request,
)
from gateway.entrypoints.fhir.subscription_tokens import BindingTokens
from gateway.entrypoints.fhir.subscription_websocket import (
    PATH,
    POLICY_VIOLATION,
    ChannelTimes,
    subscription_socket_route,
)
from gateway.ports import DownstreamAnswer, DownstreamCall

from .conftest import FakeServices, FakeVerifier

PATIENT = "5b0c7a53-7d0b-4d3e-9a40-2f3e3c1d6a01"
ORDER_SIGNED = TOPICS[0].url


def _resource(**channel: Any) -> dict[str, Any]:
    return {
        "resourceType": "Subscription", "status": "requested", "reason": "r",
        "criteria": ORDER_SIGNED,
        "_criteria": {"extension": [
            {"url": FILTER_CRITERIA, "valueString": f"ServiceRequest?patient=Patient/{PATIENT}"},
            {"url": FILTER_CRITERIA, "valueString": "code=http://loinc.org|2345-7&priority=stat"},
        ]},
        "channel": {"type": "rest-hook", "endpoint": "https://app.example/hook",
                    "payload": "application/fhir+json", **channel},
    }  # fmt: skip


def test_a_rest_hook_subscription_becomes_a_fhir_format_notify_subscription() -> None:
    values = subscription_request(_resource(_payload={"extension": [
        {"url": PAYLOAD_CONTENT, "valueCode": "full-resource"}]}))  # fmt: skip
    assert values == {
        "topics": ["TOPIC_ORDER_SIGNED"],
        "filter": {"patient_ids": [PATIENT], "loinc_codes": ["2345-7"], "priorities": ["stat"]},
        "content": "CONTENT_FULL",
        "payload_format": "PAYLOAD_FORMAT_FHIR_R4_BACKPORT",
        "webhook": {"url": "https://app.example/hook"},
    }


@pytest.mark.parametrize(
    ("change", "status", "where"),
    [
        ({"criteria": "urn:unknown"}, 422, "Subscription.criteria"),
        ({"channel": {"type": "email"}}, 422, "Subscription.channel.type"),
        ({"channel": {"type": "rest-hook"}}, 400, "Subscription.channel.endpoint"),
        ({"channel": {"type": "websocket", "endpoint": "https://x.example"}}, 400,
         "Subscription.channel.endpoint"),
        ({"channel": {"type": "rest-hook", "endpoint": "https://x.example",
                      "payload": "application/xml"}}, 422, "Subscription.channel.payload"),
        ({"channel": {"type": "rest-hook", "endpoint": "https://x.example",
                      "header": ["Authorization: x"]}}, 422, "Subscription.channel.header"),
        ({"status": 7}, 400, "Subscription.status"),
    ],
)  # fmt: skip
def test_what_notify_cannot_serve_is_refused_naming_the_element(
    change: dict[str, Any], status: int, where: str
) -> None:
    with pytest.raises(FhirError) as refused:
        subscription_request({**_resource(), **change})
    assert refused.value.status == status
    assert refused.value.issues[0].expression == (where,)


def test_an_unknown_filter_is_a_400_naming_its_extension() -> None:
    resource = _resource()
    resource["_criteria"]["extension"][1]["valueString"] = "colour=blue"
    with pytest.raises(FhirError) as refused:
        subscription_request(resource)
    assert refused.value.issues[0].expression == ("Subscription.criteria.extension[1]",)


def test_empty_payload_content_is_refused_with_422() -> None:
    empty = {"_payload": {"extension": [{"url": PAYLOAD_CONTENT, "valueCode": "empty"}]}}
    with pytest.raises(FhirError) as refused:
        subscription_request(_resource(**empty))
    assert refused.value.status == 422


def test_notify_subscription_reads_back_as_a_valid_backport_subscription() -> None:
    stored = {
        "subscription_id": "0b6c1f0e-5d1e-4f43-9a44-6c1e3f0a7a11", "version": "1",
        "topics": ["TOPIC_ORDER_SIGNED"], "content": "CONTENT_ID_ONLY",
        "filter": {"patient_ids": [PATIENT], "abnormal_only": True},
        "webhook": {"url": "https://app.example/hook"}, "state": "SUBSCRIPTION_STATE_ACTIVE",
        "expires_at": "2027-01-06T09:00:00Z", "payload_format": "PAYLOAD_FORMAT_FHIR_R4_BACKPORT",
    }  # fmt: skip
    shown_once = "whsec_x"
    resource = resource_from_subscription(stored, channel_type="rest-hook", secret=shown_once)
    model = Subscription.model_validate(resource)
    assert (model.status, model.criteria, model.channel.type) == (
        "active", ORDER_SIGNED, "rest-hook",
    )  # fmt: skip
    texts = [e["valueString"] for e in resource["_criteria"]["extension"]]
    assert texts == [f"patient=Patient/{PATIENT}", "abnormal=true"]
    assert resource["extension"][0]["valueString"] == shown_once
    # What it reads back as is what a create accepts, and means the same.
    again = subscription_request({**resource, "status": "requested"})
    assert again["filter"] == {"patient_ids": [PATIENT], "abnormal_only": True}


def _caller() -> Caller:
    return Caller(Principal(subject="dr-a", roles=frozenset()), frozenset(), frozenset())


def test_a_binding_token_binds_once() -> None:
    tokens = BindingTokens()
    token, _ = tokens.issue(_caller(), "sub-1")
    binding = tokens.redeem(token)
    assert binding is not None
    assert (binding.subscription_id, binding.caller.principal.subject) == ("sub-1", "dr-a")
    assert tokens.redeem(token) is None
    assert tokens.redeem("never-issued") is None


def test_an_expired_binding_token_binds_nothing() -> None:
    now = [1000.0]
    tokens = BindingTokens(ttl_s=60, clock=lambda: now[0])
    token, expires = tokens.issue(_caller(), "sub-1")
    assert expires.startswith("1970-01-01T00:17:40")
    now[0] += 60
    assert tokens.redeem(token) is None


def test_the_capability_statement_names_the_topics_and_the_backport_operations() -> None:
    statement = capability_statement("http://gw/fhir/r4", software_version="1", date="2026-12-07")
    served = {r["type"]: r for r in statement["rest"][0]["resource"]}["Subscription"]
    assert {e["valueCanonical"] for e in served["extension"]} == {t.url for t in TOPICS}
    assert [o["name"] for o in served["operation"]] == [
        "status", "events", "get-ws-binding-token",
    ]  # fmt: skip


class FakeStreams:
    """notify's Subscribe: the given messages, then silence; records each call."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = messages
        self.calls: list[DownstreamCall] = []

    async def stream(self, call: DownstreamCall, token: str) -> AsyncIterator[Mapping[str, Any]]:
        self.calls.append(call)
        for message in self.messages:
            yield message
        await asyncio.sleep(3600)


def _socket_app(services: FakeServices, streams: FakeStreams, tokens: BindingTokens) -> Starlette:
    issuer = InternalTokenIssuer([Ed25519PrivateKey.generate()], issuer="clinical-platform")
    app = GatewayApp(
        verifier=FakeVerifier({}), mapping=IdentityMapping(),
        rate_limiter=WindowRateLimiter("20/minute"), tokens=issuer, downstream=services,
        audit=RefusalLog(), audiences={"notify": "clinical-notify"}, streams=streams,
    )  # fmt: skip
    times = ChannelTimes(session_s=1.0)
    return Starlette(routes=[subscription_socket_route(app, tokens, times)])


SUBSCRIPTION_ID = "0b6c1f0e-5d1e-4f43-9a44-6c1e3f0a7a11"
ORDER = "7f1e5c2a-0d4b-4c8e-9e61-2b9c5d7e8f01"


SIGNED = {"subscription_id": SUBSCRIPTION_ID, "sequence": "1", "type": "order.signed",
          "occurred_at": "2026-12-07T10:00:00Z", "patient_id": PATIENT,
          "order_id": ORDER}  # fmt: skip


def _services() -> FakeServices:
    subscription = {
        "subscription_id": SUBSCRIPTION_ID, "topics": ["TOPIC_ORDER_SIGNED"],
        "content": "CONTENT_ID_ONLY", "state": "SUBSCRIPTION_STATE_ACTIVE",
        "payload_format": "PAYLOAD_FORMAT_FHIR_R4_BACKPORT",
    }  # fmt: skip
    return FakeServices({
        "GetSubscription": [DownstreamAnswer("OK", body={"subscription": subscription})],
        "ListEvents": [DownstreamAnswer("OK", body={"head_sequence": "0"})],  # the bind's head
    })  # fmt: skip


def _streams() -> FakeStreams:
    heartbeat = {"at": "2026-12-07T10:00:15Z", "head_sequence": "1"}
    return FakeStreams([{"notification": SIGNED}, {"heartbeat": heartbeat}])


def _kind(text: str) -> str:
    bundle = Bundle.model_validate(json.loads(text))
    status = (bundle.entry or [])[0].resource
    parts = {p.name: p for p in status.parameter}  # type: ignore[union-attr]
    return str(parts["type"].valueCode)


def test_a_bound_websocket_gets_the_handshake_events_heartbeats_then_ends_its_session() -> None:
    tokens = BindingTokens()
    caller = Caller(Principal("dr-a"), parse_scopes("user/Subscription.r"),
                    frozenset({Context.USER}))  # fmt: skip
    token, _ = tokens.issue(caller, SUBSCRIPTION_ID)
    streams = _streams()
    with TestClient(_socket_app(_services(), streams, tokens)) as client, \
            client.websocket_connect(PATH) as socket:  # fmt: skip
        socket.send_text(f"bind-with-token {token} 0")
        assert _kind(socket.receive_text()) == "handshake"
        event = json.loads(socket.receive_text())
        assert _kind(json.dumps(event)) == "event-notification"
        assert event["entry"][1]["fullUrl"] == f"ServiceRequest/{ORDER}"
        assert _kind(socket.receive_text()) == "heartbeat"
        with pytest.raises(WebSocketDisconnect) as ended:
            socket.receive_text()
        assert ended.value.code == 1000  # the session's time is up: bind again
    assert streams.calls[0].request == {"subscription_id": SUBSCRIPTION_ID, "resume_after": 0}


def test_a_caller_without_the_read_scope_is_closed_with_a_policy_violation() -> None:
    tokens = BindingTokens()
    caller = Caller(Principal("dr-a"), parse_scopes("user/ServiceRequest.r"),
                    frozenset({Context.USER}))  # fmt: skip
    token, _ = tokens.issue(caller, SUBSCRIPTION_ID)
    with TestClient(_socket_app(_services(), _streams(), tokens)) as client, \
            client.websocket_connect(PATH) as socket:  # fmt: skip
        socket.send_text(f"bind-with-token {token}")
        with pytest.raises(WebSocketDisconnect) as refused:
            socket.receive_text()
        assert refused.value.code == POLICY_VIOLATION
