"""OrderServicer: authenticate, authorize, translate proto <-> application, map errors to codes."""

from __future__ import annotations

from typing import NoReturn

import grpc

from clinical.orders.v1 import orders_pb2 as pb
from clinical.orders.v1 import orders_pb2_grpc
from clinical_platform.access.log import AccessAuditLog
from clinical_platform.access.records import AccessAction
from clinical_platform.eventlog.errors import EventLogError
from clinical_platform.grpc_auth import authenticate, deny
from clinical_platform.grpc_context import command_context, read_wait_s
from clinical_platform.grpc_errors import abort_for, invalid_argument
from clinical_platform.principals import Principal, Role
from clinical_platform.security.errors import SecurityError
from clinical_platform.tokens import TokenVerifier
from clinical_platform.validation import FieldViolation, Violations
from orders.application import OrdersApp, ReadModelBehind
from orders.domain.errors import (
    InvalidOrder,
    OrderDomainError,
    OrderNotFound,
    OrderStateConflict,
    RecordOfForgottenPatient,
    SignatureWithoutMfa,
)
from orders.entrypoints import messages
from orders.views import InvalidPageTokenError

SIGN_PRIVILEGE = "orders:sign"
# Staff who read any patient's orders; a patient principal reads only their own.
STAFF_READERS = (Role.CLINICIAN, Role.LAB, Role.AUDITOR)
RECORD_TYPE = "Order"
CATEGORY = "orders"
# Answer a little before the caller's deadline, so the caller hears why.

_Failure = (
    OrderDomainError | EventLogError | SecurityError | ReadModelBehind | InvalidPageTokenError
)
_FAILURES = (
    OrderDomainError, EventLogError, SecurityError, ReadModelBehind, InvalidPageTokenError,
)  # fmt: skip


class OrderServicer(orders_pb2_grpc.OrderServiceServicer):
    """The public API of the orders service."""

    def __init__(
        self,
        app: OrdersApp,
        verifier: TokenVerifier,
        access_log: AccessAuditLog,
        *,
        max_wait_s: float,
    ) -> None:
        self._app = app
        self._verifier = verifier
        self._access_log = access_log
        self._max_wait_s = max_wait_s

    async def PlaceOrder(  # noqa: N802 - named by the proto service
        self, request: pb.PlaceOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.PlaceOrderResponse:
        """Place a draft order as the calling clinician."""
        principal = await authenticate(context, self._verifier)
        if not principal.has(Role.CLINICIAN):
            await deny(
                context, principal, "only clinicians place orders", access_log=self._access_log,
                patient_id=request.patient_id, record_type=RECORD_TYPE, category=CATEGORY,
                action=AccessAction.CREATE, operation="PlaceOrder",
            )  # fmt: skip
        violations = Violations()
        command = messages.place_order(request, violations)
        await _refuse_if_any(context, violations)
        provenance = command_context(context, actor=principal.actor, request_id=request.request_id)
        try:
            placed = await self._app.place_order(command, provenance)
        except _FAILURES as failure:
            await self._abort(context, principal, failure, "PlaceOrder")
        return pb.PlaceOrderResponse(order_id=str(placed.order_id), version=placed.version)

    async def SignOrder(  # noqa: N802 - named by the proto service
        self, request: pb.SignOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.SignOrderResponse:
        """Sign a draft order; needs a clinician with orders:sign and an MFA-asserting token."""
        principal = await authenticate(context, self._verifier)
        if not principal.has(Role.CLINICIAN) or SIGN_PRIVILEGE not in principal.privileges:
            await self._deny_write(
                context, principal, f"signing orders needs the {SIGN_PRIVILEGE} privilege",
                request.order_id, "SignOrder",
            )  # fmt: skip
        if not principal.mfa:
            await self._deny_write(
                context, principal, "signing orders needs multi-factor authentication",
                request.order_id, "SignOrder",
            )  # fmt: skip
        violations = Violations()
        violations.request_id(request.request_id)
        order_id = violations.uuid("order_id", request.order_id)
        await _refuse_if_any(context, violations)
        provenance = command_context(context, actor=principal.actor, request_id=request.request_id)
        expected = messages.expected_version(
            request.HasField("expected_version"), request.expected_version
        )
        try:
            version = await self._app.sign_order(
                order_id, provenance, mfa=principal.mfa, expected_version=expected
            )
        except _FAILURES as failure:
            await self._abort(context, principal, failure, "SignOrder", request.order_id)
        return pb.SignOrderResponse(version=version)

    async def CancelOrder(  # noqa: N802 - named by the proto service
        self, request: pb.CancelOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelOrderResponse:
        """Cancel a draft or signed order, with a reason (clinicians)."""
        principal = await authenticate(context, self._verifier)
        if not principal.has(Role.CLINICIAN):
            await self._deny_write(
                context, principal, "only clinicians cancel orders", request.order_id,
                "CancelOrder",
            )  # fmt: skip
        violations = Violations()
        violations.request_id(request.request_id)
        order_id = violations.uuid("order_id", request.order_id)
        await _refuse_if_any(context, violations)
        provenance = command_context(context, actor=principal.actor, request_id=request.request_id)
        expected = messages.expected_version(
            request.HasField("expected_version"), request.expected_version
        )
        try:
            version = await self._app.cancel_order(
                order_id, provenance, reason=request.reason, expected_version=expected
            )
        except _FAILURES as failure:
            await self._abort(context, principal, failure, "CancelOrder", request.order_id)
        return pb.CancelOrderResponse(version=version)

    async def GetOrder(  # noqa: N802 - named by the proto service
        self, request: pb.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetOrderResponse:
        """Read one order at min_version or later (staff; a patient their own)."""
        principal = await self._reader(context, "GetOrder")
        violations = Violations()
        order_id = violations.uuid("order_id", request.order_id)
        await _refuse_if_any(context, violations)
        try:
            view = await self._app.get_order(
                order_id,
                min_version=request.min_version,
                wait_s=read_wait_s(context, max_wait_s=self._max_wait_s),
            )
        except _FAILURES as failure:
            await self._abort(context, principal, failure, "GetOrder", request.order_id)
        if not principal.has(*STAFF_READERS) and view.patient_id != principal.patient_id:
            await deny(
                context, principal, "a patient reads only their own orders",
                access_log=self._access_log, patient_id=str(view.patient_id),
                record_type=RECORD_TYPE, record_ids=[request.order_id], category=CATEGORY,
                operation="GetOrder",
            )  # fmt: skip
        await self._access_log.record_read(
            context, principal, patient_id=str(view.patient_id), record_type=RECORD_TYPE,
            record_ids=[str(view.order_id)], category=CATEGORY, action=AccessAction.READ,
            operation="GetOrder",
        )  # fmt: skip
        return pb.GetOrderResponse(order=messages.order_message(view))

    async def ListOrders(  # noqa: N802 - named by the proto service
        self, request: pb.ListOrdersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListOrdersResponse:
        """List a patient's orders, newest first (staff; a patient their own)."""
        principal = await self._reader(context, "ListOrders", AccessAction.SEARCH)
        patient_id = request.patient_id
        if not principal.has(*STAFF_READERS):
            patient_id = patient_id or principal.patient_id
            if patient_id != principal.patient_id:
                await deny(
                    context, principal, "a patient reads only their own orders",
                    access_log=self._access_log, patient_id=patient_id, record_type=RECORD_TYPE,
                    category=CATEGORY, action=AccessAction.SEARCH, operation="ListOrders",
                )  # fmt: skip
        violations = Violations()
        if patient_id:
            violations.uuid("patient_id", patient_id)
        else:
            violations.append(FieldViolation("patient_id", "is required"))
        query = messages.order_query(request, patient_id, violations)
        after = None
        if request.min_version:
            order_id = violations.uuid("min_version_order_id", request.min_version_order_id)
            after = (order_id, request.min_version)
        await _refuse_if_any(context, violations)
        try:
            page = await self._app.list_orders(
                query, after=after, wait_s=read_wait_s(context, max_wait_s=self._max_wait_s)
            )
        except _FAILURES as failure:
            await self._abort(context, principal, failure, "ListOrders")
        await self._access_log.record_read(
            context, principal, patient_id=patient_id, record_type=RECORD_TYPE,
            record_ids=[str(view.order_id) for view in page.orders], category=CATEGORY,
            action=AccessAction.SEARCH, operation="ListOrders",
        )  # fmt: skip
        return pb.ListOrdersResponse(
            orders=[messages.order_message(view) for view in page.orders],
            next_page_token=page.next_page_token,
        )

    async def _reader(
        self,
        context: grpc.aio.ServicerContext,
        operation: str,
        action: AccessAction = AccessAction.READ,
    ) -> Principal:
        principal = await authenticate(context, self._verifier)
        reason = ""
        if not principal.has(*STAFF_READERS, Role.PATIENT):
            reason = "this role does not read orders"
        elif not principal.has(*STAFF_READERS) and not principal.patient_id:
            reason = "the patient token names no patient"
        if reason:
            await deny(
                context, principal, reason, access_log=self._access_log,
                patient_id=principal.patient_id, record_type=RECORD_TYPE, category=CATEGORY,
                action=action, operation=operation,
            )  # fmt: skip
        return principal

    async def _deny_write(
        self,
        context: grpc.aio.ServicerContext,
        principal: Principal,
        reason: str,
        order_id: str,
        operation: str,
    ) -> NoReturn:
        await deny(
            context, principal, reason, access_log=self._access_log, record_type=RECORD_TYPE,
            record_ids=[order_id], category=CATEGORY, action=AccessAction.UPDATE,
            operation=operation,
        )  # fmt: skip

    async def _abort(
        self,
        context: grpc.aio.ServicerContext,
        principal: Principal,
        failure: _Failure,
        operation: str,
        order_id: str = "",
    ) -> NoReturn:
        if isinstance(failure, SignatureWithoutMfa):
            await self._deny_write(context, principal, str(failure), order_id, operation)
        await _abort(context, failure)


async def _refuse_if_any(context: grpc.aio.ServicerContext, violations: Violations) -> None:
    if violations:
        await invalid_argument(context, violations)


async def _abort(context: grpc.aio.ServicerContext, failure: _Failure) -> NoReturn:
    match failure:
        case InvalidOrder():
            await invalid_argument(context, failure.violations)
        case InvalidPageTokenError():
            await invalid_argument(context, [FieldViolation("page_token", str(failure))])
        case OrderNotFound():
            await context.abort(grpc.StatusCode.NOT_FOUND, "order not found")
        case OrderStateConflict() | RecordOfForgottenPatient():
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(failure))
        case ReadModelBehind():
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(failure))
        case EventLogError() | SecurityError():
            await abort_for(context, failure)
    raise failure
