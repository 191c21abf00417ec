"""OrderServicer: authenticate, authorize through policy, translate, map errors to codes."""

from __future__ import annotations

import time

import grpc

from clinical.orders.v1 import orders_pb2 as pb
from clinical.orders.v1 import orders_pb2_grpc
from clinical_platform.access.log import AccessAuditLog
from clinical_platform.access.records import AccessAction
from clinical_platform.care.reads import PatientReads, RecordOwner
from clinical_platform.care.relationships import CareRelationships
from clinical_platform.grpc_auth import RecordGate
from clinical_platform.grpc_context import command_context, read_wait_s
from clinical_platform.grpc_errors import failures_as_status
from clinical_platform.reads import VersionNotRecorded
from clinical_platform.tokens import TokenVerifier
from clinical_platform.validation import InvalidRequest, Violations
from clinical_platform.versions import version_wanted
from orders import policy
from orders.application import OrdersApp
from orders.domain.errors import (
    OrderNotFound,
    OrderStateConflict,
    RecordOfForgottenPatient,
    SignatureWithoutMfa,
)
from orders.entrypoints import translate
from orders.ports import OrderView

STATUSES = {
    OrderNotFound: grpc.StatusCode.NOT_FOUND,
    OrderStateConflict: grpc.StatusCode.FAILED_PRECONDITION,
    RecordOfForgottenPatient: grpc.StatusCode.FAILED_PRECONDITION,
    # The policy lets only MFA tokens sign; the domain asserts it once more.
    SignatureWithoutMfa: grpc.StatusCode.PERMISSION_DENIED,
}


class OrderServicer(orders_pb2_grpc.OrderServiceServicer):
    """The public API of the orders service."""

    def __init__(
        self,
        app: OrdersApp,
        verifier: TokenVerifier,
        access_log: AccessAuditLog,
        relationships: CareRelationships,
        *,
        max_wait_s: float,
    ) -> None:
        self._app = app
        self._gate = RecordGate(verifier, access_log, record_type="Order", category="orders")
        self._reads = PatientReads(
            policy.READERS, relationships, access_log, record_type="Order", category="orders"
        )
        self._max_wait_s = max_wait_s

    async def PlaceOrder(  # noqa: N802 - named by the proto service
        self, request: pb.PlaceOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.PlaceOrderResponse:
        """Place a draft order as the calling clinician."""
        principal = await self._gate.caller(context)
        await self._gate.refuse_if(
            policy.refusal_to_place(principal), context, principal, operation="PlaceOrder",
            action=AccessAction.CREATE, patient_id=request.patient_id,
        )  # fmt: skip
        provenance = command_context(context, actor=principal.actor, request_id=request.request_id)
        async with failures_as_status(context, STATUSES):
            violations = Violations()
            command = translate.place_order(request, violations)
            violations.raise_if_any()
            placed = await self._app.place_order(command, provenance)
        return pb.PlaceOrderResponse(order_id=str(placed.order_id), version=placed.version)

    async def SignOrder(  # noqa: N802 - named by the proto service
        self, request: pb.SignOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.SignOrderResponse:
        """Sign a draft order; needs a clinician with orders:sign and an MFA-asserting token."""
        principal = await self._gate.caller(context)
        await self._gate.refuse_if(
            policy.refusal_to_sign(principal, now=time.time()), context, principal,
            operation="SignOrder", action=AccessAction.UPDATE, record_ids=[request.order_id],
        )  # fmt: skip
        provenance = command_context(context, actor=principal.actor, request_id=request.request_id)
        async with failures_as_status(context, STATUSES):
            order_id, expected = translate.order_change(request)
            version = await self._app.sign_order(
                order_id, provenance, mfa=principal.mfa, expected_version=expected
            )
        return pb.SignOrderResponse(version=version)

    async def CancelOrder(  # noqa: N802 - named by the proto service
        self, request: pb.CancelOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelOrderResponse:
        """Cancel a draft or signed order, with a reason (clinicians)."""
        principal = await self._gate.caller(context)
        await self._gate.refuse_if(
            policy.refusal_to_cancel(principal), context, principal, operation="CancelOrder",
            action=AccessAction.UPDATE, record_ids=[request.order_id],
        )  # fmt: skip
        provenance = command_context(context, actor=principal.actor, request_id=request.request_id)
        async with failures_as_status(context, STATUSES):
            order_id, expected = translate.order_change(request)
            version = await self._app.cancel_order(
                order_id, provenance, reason=request.reason, expected_version=expected
            )
        return pb.CancelOrderResponse(version=version)

    async def GetOrder(  # noqa: N802 - named by the proto service
        self, request: pb.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetOrderResponse:
        """Read one order at min_version or later, or an exact version, or the version current
        at as_of (lab staff; a clinician of a patient in their care or by break-glass; a
        patient their own)."""
        principal = await self._gate.reader(context, policy.READERS, operation="GetOrder")

        async def owner() -> RecordOwner | None:
            try:
                known = await self._app.get_order(
                    translate.order_id_from(request), min_version=0, wait_s=0
                )
            except (OrderNotFound, InvalidRequest):
                return None
            return RecordOwner(str(known.patient_id), principal.subject in _clinicians_of(known))

        hiding = self._reads.hiding_absence(
            (OrderNotFound, VersionNotRecorded), context, principal, owner=owner,
            operation="GetOrder", record_ids=[request.order_id],
        )  # fmt: skip
        async with failures_as_status(context, STATUSES), hiding:
            view = await self._app.get_order(
                translate.order_id_from(request),
                min_version=request.min_version,
                wait_s=read_wait_s(context, max_wait_s=self._max_wait_s),
                wanted=version_wanted(request),
            )
        patient_id = str(view.patient_id)
        access = await self._reads.authorize(
            context, principal, patient_id, operation="GetOrder", record_ids=[request.order_id],
            related=principal.subject in _clinicians_of(view),
        )  # fmt: skip
        await self._reads.record_read(
            context, principal, access, operation="GetOrder", patient_id=patient_id,
            record_ids=[str(view.order_id)],
        )  # fmt: skip
        return pb.GetOrderResponse(order=translate.order_message(view))

    async def ListOrders(  # noqa: N802 - named by the proto service
        self, request: pb.ListOrdersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListOrdersResponse:
        """List a patient's orders, newest first (lab staff; a clinician of a patient in their
        care or by break-glass; a patient their own)."""
        principal = await self._gate.reader(
            context, policy.READERS, operation="ListOrders", action=AccessAction.SEARCH
        )
        patient_id = policy.READERS.patient_to_list(principal, request.patient_id)
        async with failures_as_status(context, STATUSES):
            # A malformed request is refused as such: its form reveals no record.
            query, after = translate.order_listing(request, patient_id)
        access = await self._reads.authorize(
            context, principal, patient_id, operation="ListOrders", action=AccessAction.SEARCH
        )
        async with failures_as_status(context, STATUSES):
            page = await self._app.list_orders(
                query, after=after, wait_s=read_wait_s(context, max_wait_s=self._max_wait_s)
            )
        await self._reads.record_read(
            context, principal, access, operation="ListOrders", action=AccessAction.SEARCH,
            patient_id=patient_id, record_ids=[str(view.order_id) for view in page.orders],
        )  # fmt: skip
        return pb.ListOrdersResponse(
            orders=[translate.order_message(view) for view in page.orders],
            next_page_token=page.next_page_token,
            total=page.total,
        )


def _clinicians_of(view: OrderView) -> set[str]:
    """Who an order relates to its patient at once, before the relationship read model has it:
    the orderer and, once signed, the signer."""
    return {view.orderer, *([view.signature.signer] if view.signature else [])}
