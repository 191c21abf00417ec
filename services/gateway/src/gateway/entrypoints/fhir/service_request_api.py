"""ServiceRequest's interactions, each done by OrderService's commands and queries: read (and
``_at``), vread (any version), search (ListOrders: by patient, status, ``code`` and
``authored``, with its total), create (PlaceOrder: a draft), ``$sign``
(SignOrder: MFA required, ``draft`` -> ``active``) and update to ``status: revoked``
(CancelOrder, with the reason in the ``request-statusReason`` extension). ``If-Match`` on
``$sign`` and update is the expected version (412 if stale).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.application import Route
from gateway.domain.identity import Caller
from gateway.domain.scopes import Interaction
from gateway.entrypoints.fhir.exchange import (
    FhirExchange,
    base_url,
    expected_version,
    fhir_response,
    preference,
)
from gateway.entrypoints.fhir.listing import invalid, page_bundle, patient_reference
from gateway.entrypoints.fhir.order_result_search import (
    dated_query,
    invalid_parameter,
    loinc_code,
)
from gateway.entrypoints.fhir.outcomes import FhirError, Issue, status_error
from gateway.entrypoints.fhir.records import RecordSource, known_id, read, route, vread, written
from gateway.entrypoints.fhir.service_request_resource import (
    ORDER_STATUS,
    RESOURCE,
    expression_of,
    order_from_resource,
    resource_from_order,
    revocation_reason,
)


def _route(rpc: str, interaction: Interaction) -> Route:
    return route("orders", RESOURCE, rpc, interaction)


PLACE = _route("PlaceOrder", Interaction.CREATE)
SIGN = _route("SignOrder", Interaction.UPDATE)
CANCEL = _route("CancelOrder", Interaction.UPDATE)
SEARCH = _route("ListOrders", Interaction.SEARCH)
# The orders service refuses a forgotten patient's order with FAILED_PRECONDITION.
ORDERS = RecordSource(RESOURCE, _route("GetOrder", Interaction.READ), "order_id", "order",
                      resource_from_order, forgotten="FAILED_PRECONDITION")  # fmt: skip


def _status(value: str) -> Mapping[str, Any]:
    if value not in ORDER_STATUS:
        raise invalid_parameter("status", f"give one of {', '.join(ORDER_STATUS)}")
    return {"status": ORDER_STATUS[value]}


CRITERIA = {"patient": patient_reference("patient"), "subject": patient_reference("subject"),
             "status": _status, "code": loinc_code("code", "test_codes")}  # fmt: skip
# ``authored`` (when the order was placed) as ListOrders' window.
AUTHORED = ("authored_from", "authored_to")


class ServiceRequestApi:
    """ServiceRequest's interactions over `FhirExchange`."""

    def __init__(self, exchange: FhirExchange) -> None:
        self._exchange = exchange

    async def read(self, request: Request) -> Response:
        """read: GetOrder."""
        return await read(request, self._exchange, ORDERS)

    async def vread(self, request: Request) -> Response:
        """vread: any version recorded, from the orders read model's history."""
        return await vread(request, self._exchange, ORDERS)

    async def search(self, request: Request) -> Response:
        """search-type: ListOrders, newest first, a searchset Bundle of one page and the total
        of matches."""
        caller = await self._exchange.caller(request)
        strict = preference(request, "handling") == "strict"
        query = dated_query(list(request.query_params.multi_items()), CRITERIA,
                            dated="authored", window=AUTHORED, strict=strict)  # fmt: skip
        if {"patient", "subject"} <= dict(query.applied).keys():
            raise invalid("give patient or subject, not both")
        answer = await self._exchange.call(caller, SEARCH, query.values, request)
        if answer.status != "OK":
            raise status_error(answer, expression_of=lambda f: _PARAMETER_OF.get(f, f))
        resources = [resource_from_order(o) for o in answer.body.get("orders", ())]
        return fhir_response(page_bundle(
            RESOURCE, query, resources, next_token=answer.body.get("next_page_token", ""),
            base=base_url(request), total=int(answer.body.get("total", 0)),
        ))  # fmt: skip

    async def create(self, request: Request) -> Response:
        """create: PlaceOrder, a draft; 201 with Location and ETag."""
        caller = await self._exchange.caller(request)
        values = order_from_resource(await self._exchange.resource_body(request))
        values["request_id"] = str(uuid.uuid4())
        answer = await self._exchange.call(caller, PLACE, values, request)
        if answer.status != "OK":
            raise status_error(answer, expression_of=expression_of)
        order_id, version = str(answer.body["order_id"]), int(answer.body["version"])
        return await written(request, self._exchange, caller, source=ORDERS, record_id=order_id,
                             version=version, status=201, done="created")  # fmt: skip

    async def sign(self, request: Request) -> Response:
        """$sign: SignOrder; the service asks for a multi-factor login (403 without one)."""
        caller = await self._exchange.caller(request)
        order_id = known_id(request, RESOURCE)
        return await self._change(request, caller, SIGN, {"order_id": order_id}, done="signed")

    async def update(self, request: Request) -> Response:
        """update: only to ``status: revoked`` (CancelOrder); other changes are refused (422):
        an order's test, patient and reasons never change, and signing is ``$sign``."""
        caller = await self._exchange.caller(request)
        order_id = known_id(request, RESOURCE)
        resource = await self._exchange.resource_body(request)
        if resource.get("id") != order_id:
            raise FhirError.of(400, "invalid", f"{RESOURCE}.id must be the id in the URL",
                               expression=(f"{RESOURCE}.id",))  # fmt: skip
        # Checked as a whole first: a malformed resource is a 400 whatever it asks.
        incoming = _as_draft(resource)
        if resource.get("status") != "revoked":
            raise FhirError.of(422, "business-rule", "an update can only revoke a "
                               "ServiceRequest (status revoked); sign it with $sign",
                               expression=(f"{RESOURCE}.status",))  # fmt: skip
        values = {"order_id": order_id, "reason": revocation_reason(resource)}
        record = await ORDERS.record(self._exchange, caller, order_id, 0, request)
        current = _as_draft(resource_from_order(record))
        if changed := [f for f in _FIXED if incoming.get(f) != current.get(f)]:
            raise FhirError(422, tuple(
                Issue("business-rule", f"{path} of an order never changes", (path,))
                for path in map(expression_of, changed)
            ))  # fmt: skip
        return await self._change(request, caller, CANCEL, values, done="revoked")

    async def _change(self, request: Request, caller: Caller, route: Route,
                      values: Mapping[str, Any], *, done: str) -> Response:  # fmt: skip
        expected = expected_version(request)
        command = {**values, "request_id": str(uuid.uuid4())}
        if expected is not None:
            command["expected_version"] = expected
        answer = await self._exchange.call(caller, route, command, request)
        if answer.status != "OK":
            raise status_error(answer, expression_of=expression_of,
                               version_precondition=expected is not None)  # fmt: skip
        return await written(request, self._exchange, caller, source=ORDERS,
                             record_id=str(values["order_id"]),
                             version=int(answer.body["version"]), status=200,
                             done=done)  # fmt: skip


def _as_draft(resource: Mapping[str, Any]) -> dict[str, Any]:
    """PlaceOrderRequest's values of a resource whatever its status: what an update compares."""
    return order_from_resource({**resource, "status": "draft", "intent": "order"})


# What an order holds from its placing on.
_FIXED = ("patient_id", "test_code", "priority", "reason_codes")
# ListOrders' fields, as the search parameters that set them.
_PARAMETER_OF = {"patient_id": "patient", "page_size": "_count", "page_token": "_page_token",
                 "test_codes": "code", "authored_from": "authored",
                 "authored_to": "authored"}  # fmt: skip
