"""Subscription's interactions and operations (Subscriptions R5 Backport IG, R4), each done by
NotifyService's RPCs: create (CreateSubscription, payload format FHIR_R4_BACKPORT), read
(GetSubscription), delete (DeleteSubscription), ``$status`` (GetStatus), ``$events``
(ListEvents: a replay from any event number) and ``$get-ws-binding-token`` (a short-lived,
single-use token for the websocket channel, `subscription_websocket`).

Only the owner reads, replays or deletes a subscription (notify refuses anyone else: 403); a
subscription made through notify's own API (native payloads) is not a FHIR Subscription (404).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from clinical_platform.fhir_notifications import (
    FULL_RESOURCE,
    ID_ONLY,
    notification_bundle,
    subscription_status,
)
from gateway.application import Route
from gateway.domain.identity import Caller
from gateway.domain.scopes import Interaction
from gateway.entrypoints.fhir.exchange import FhirExchange, base_url, etag, fhir_response
from gateway.entrypoints.fhir.outcomes import FhirError, status_error
from gateway.entrypoints.fhir.records import known_id, route
from gateway.entrypoints.fhir.subscription_resource import (
    RESOURCE,
    resource_from_subscription,
    subscription_request,
    topic_of_subscription,
)
from gateway.entrypoints.fhir.subscription_tokens import BindingTokens

FHIR_FORMAT = "PAYLOAD_FORMAT_FHIR_R4_BACKPORT"
MAX_EVENTS = 1000  # per $events call; ask again from the last number for more


def _route(rpc: str, interaction: Interaction) -> Route:
    return route("notify", RESOURCE, rpc, interaction)


CREATE = _route("CreateSubscription", Interaction.CREATE)
GET = _route("GetSubscription", Interaction.READ)
DELETE = _route("DeleteSubscription", Interaction.DELETE)
STATUS = _route("GetStatus", Interaction.READ)
EVENTS = _route("ListEvents", Interaction.READ)
SUBSCRIBE = _route("Subscribe", Interaction.READ)  # the websocket channel's stream
# notify's request fields, as the elements that set them (every filter field: a criteria one).
_EXPRESSION = {"webhook.url": "Subscription.channel.endpoint", "topics": "Subscription.criteria",
               "content": "Subscription.channel.payload"}  # fmt: skip


def _expression(field: str) -> str:
    if field.startswith("filter."):
        return "Subscription.criteria"
    return _EXPRESSION.get(field, f"Subscription.{field}")


def channel_type(subscription: Mapping[str, Any]) -> str:
    return "rest-hook" if subscription.get("webhook", {}).get("url") else "websocket"


class SubscriptionApi:
    """Subscription over `FhirExchange`; ``tokens`` are the websocket channel's bindings."""

    def __init__(self, exchange: FhirExchange, tokens: BindingTokens) -> None:
        self._exchange = exchange
        self._tokens = tokens

    async def create(self, request: Request) -> Response:
        """create: CreateSubscription; 201 with the subscription, its signing secret (rest-hook,
        shown once) in the ``webhook-secret`` extension."""
        caller = await self._exchange.caller(request)
        values = subscription_request(await self._exchange.resource_body(request))
        values["request_id"] = str(uuid.uuid4())
        answer = await self._exchange.call(caller, CREATE, values, request)
        if answer.status != "OK":
            if answer.status == "FAILED_PRECONDITION" and "webhook" in values:
                raise FhirError.of(422, "business-rule", answer.message,
                                   expression=("Subscription.channel.endpoint",))  # fmt: skip
            raise status_error(answer, expression_of=_expression)
        subscription = answer.body["subscription"]
        resource = resource_from_subscription(
            subscription, channel_type=channel_type(subscription),
            secret=str(answer.body.get("webhook_secret", "")),
        )  # fmt: skip
        location = f"{base_url(request)}/{RESOURCE}/{subscription['subscription_id']}"
        headers = {"Location": location, "ETag": etag(subscription.get("version", 1))}
        return fhir_response(resource, 201, headers)

    async def read(self, request: Request) -> Response:
        """read: GetSubscription (the owner's FHIR subscriptions only)."""
        caller = await self._exchange.caller(request)
        subscription = await self.subscription(request, caller)
        resource = resource_from_subscription(subscription, channel_type=channel_type(subscription))
        return fhir_response(resource, headers={"ETag": etag(subscription.get("version", 1))})

    async def delete(self, request: Request) -> Response:
        """delete: DeleteSubscription; nothing is matched or delivered after it (204)."""
        caller = await self._exchange.caller(request)
        subscription = await self.subscription(request, caller)
        values = {"request_id": str(uuid.uuid4()),
                  "subscription_id": subscription["subscription_id"]}  # fmt: skip
        answer = await self._exchange.call(caller, DELETE, values, request)
        if answer.status != "OK":
            raise status_error(answer)
        return fhir_response(None, 204)

    async def status(self, request: Request) -> Response:
        """$status: a searchset Bundle of one SubscriptionStatus (``query-status``), the
        delivery state's error as ``error`` and ``events-since-subscription-start`` the head."""
        caller = await self._exchange.caller(request)
        subscription = await self.subscription(request, caller)
        answer = await self._exchange.call(
            caller, STATUS, {"subscription_id": subscription["subscription_id"]}, request
        )
        if answer.status != "OK":
            raise status_error(answer)
        state = answer.body.get("state", "")
        kind = channel_type(subscription)
        status = "error" if state == "DELIVERY_STATE_ERROR" and kind == "rest-hook" else "active"
        if subscription.get("state") != "SUBSCRIPTION_STATE_ACTIVE":
            status = "off"
        resource = subscription_status(
            subscription_id=subscription["subscription_id"],
            topic=topic_of_subscription(subscription), status=status, kind="query-status",
            events_since_start=int(answer.body.get("head_sequence", 0)),
            error=str(answer.body.get("last_error", "")) if kind == "rest-hook" else "",
        )  # fmt: skip
        return fhir_response({
            "resourceType": "Bundle", "type": "searchset", "total": 1,
            "entry": [{"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource,
                       "search": {"mode": "match"}}],
        })  # fmt: skip

    async def events(self, request: Request) -> Response:
        """$events: the notifications numbered ``eventsSinceNumber`` to ``eventsUntilNumber``
        (both inclusive; default from 1 to the newest), at most 1000, in a ``history`` Bundle of
        type ``query-event``; ``content`` ``id-only`` or ``full-resource`` (the latter only
        for a full-resource subscription)."""
        caller = await self._exchange.caller(request)
        since = _number(request, "eventsSinceNumber", default=1)
        until = _number(request, "eventsUntilNumber", default=0)
        if until and until < since:
            raise FhirError.of(400, "invalid", "eventsUntilNumber is below eventsSinceNumber",
                               expression=("eventsUntilNumber",))  # fmt: skip
        content = request.query_params.get("content", "")
        if content not in {"", ID_ONLY, FULL_RESOURCE}:
            raise FhirError.of(400, "code-invalid", "content must be id-only or full-resource",
                               expression=("content",))  # fmt: skip
        subscription = await self.subscription(request, caller)
        notifications, head = await self._replay(request, caller, subscription, since, until)
        full = subscription.get("content") == "CONTENT_FULL" and content != ID_ONLY
        bundle = notification_bundle(
            subscription_id=subscription["subscription_id"],
            topic=topic_of_subscription(subscription), notifications=notifications,
            events_since_start=head, payload=FULL_RESOURCE if full else ID_ONLY,
            kind="query-event", base_url=base_url(request),
        )  # fmt: skip
        return fhir_response(bundle)

    async def _replay(self, request: Request, caller: Caller, subscription: Mapping[str, Any],
                      since: int, until: int) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
        found: list[dict[str, Any]] = []
        after, head = since - 1, 0
        while len(found) < MAX_EVENTS:
            values = {"subscription_id": subscription["subscription_id"], "since": after,
                      "page_size": MAX_EVENTS - len(found)}  # fmt: skip
            answer = await self._exchange.call(caller, EVENTS, values, request)
            if answer.status == "INVALID_ARGUMENT":
                raise FhirError.of(400, "invalid", "eventsSinceNumber is beyond the newest "
                                   "event", expression=("eventsSinceNumber",))  # fmt: skip
            if answer.status != "OK":
                raise status_error(answer)
            head = int(answer.body.get("head_sequence", 0))
            page = [dict(n) for n in answer.body.get("notifications", ())]
            page = [n for n in page if not until or int(n["sequence"]) <= until]
            found += page
            if not page or int(page[-1]["sequence"]) >= (until or head):
                break
            after = int(page[-1]["sequence"])
        return found, head

    async def binding_token(self, request: Request) -> Response:
        """$get-ws-binding-token: a single-use token, valid for a short while, that binds a
        websocket to this subscription for this caller."""
        caller = await self._exchange.caller(request)
        subscription = await self.subscription(request, caller)
        token, expires = self._tokens.issue(caller, subscription["subscription_id"])
        ws_url = base_url(request).replace("http", "ws", 1) + "/subscriptions/ws"
        return fhir_response({"resourceType": "Parameters", "parameter": [
            {"name": "token", "valueString": token},
            {"name": "expiration", "valueDateTime": expires},
            {"name": "subscription", "valueString": subscription["subscription_id"]},
            {"name": "websocket-url", "valueUrl": ws_url},
        ]})  # fmt: skip

    async def subscription(self, request: Request, caller: Caller) -> Mapping[str, Any]:
        """The path's subscription, the caller's own and a FHIR one; FhirError 403/404."""
        subscription_id = known_id(request, RESOURCE)
        answer = await self._exchange.call(
            caller, GET, {"subscription_id": subscription_id}, request
        )
        if answer.status != "OK":
            raise status_error(answer)
        subscription: Mapping[str, Any] = answer.body["subscription"]
        if subscription.get("payload_format") != FHIR_FORMAT:
            raise FhirError.of(404, "not-found", f"no {RESOURCE} has this id")
        return subscription


def _number(request: Request, name: str, *, default: int) -> int:
    given = request.query_params.getlist(name)
    if not given:
        return default
    if len(given) > 1 or not given[0].isascii() or not given[0].isdigit() or len(given[0]) > 18:
        raise FhirError.of(400, "invalid", f"{name} must be one whole number",
                           expression=(name,))  # fmt: skip
    number = int(given[0])
    if number < 1:
        raise FhirError.of(400, "invalid", f"{name} counts from 1", expression=(name,))
    return number
