"""Protobuf messages to application commands and queries, and views back to messages.

Parsing collects every malformed field as a `FieldViolation` named by its proto path, so one
INVALID_ARGUMENT lists them all. Messages never include the offending values.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from google.protobuf.timestamp_pb2 import Timestamp

from clinical.orders.v1 import orders_pb2 as pb
from clinical_platform.limits import PAGE_TOKEN_CHARS, TEXT_CHARS, RequestLimits, declare_limits
from clinical_platform.validation import FieldViolation, Violations
from clinical_platform.versions import optional_instant
from orders.application import PlaceOrder
from orders.domain.order import (
    MAX_REASON_CODES,
    CodeSystem,
    OrderStatus,
    Priority,
    ReasonCode,
)
from orders.ports import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, OrderQuery, OrderView

MAX_TEST_CODES = 20

LIMITS = declare_limits(
    pb.DESCRIPTOR,
    RequestLimits(
        chars={"reason": TEXT_CHARS, "page_token": PAGE_TOKEN_CHARS},
        counts={"reason_codes": MAX_REASON_CODES, "test_codes": MAX_TEST_CODES},
    ),
)
"""Every other field of a clinical.orders.v1 request: an identifier or code (128)."""

_PRIORITIES = {
    pb.PRIORITY_ROUTINE: Priority.ROUTINE,
    pb.PRIORITY_URGENT: Priority.URGENT,
    pb.PRIORITY_STAT: Priority.STAT,
}
_SYSTEMS = {pb.CODE_SYSTEM_ICD10: CodeSystem.ICD10, pb.CODE_SYSTEM_SNOMED_CT: CodeSystem.SNOMED_CT}
_STATUSES = {
    pb.ORDER_STATUS_DRAFT: OrderStatus.DRAFT,
    pb.ORDER_STATUS_SIGNED: OrderStatus.SIGNED,
    pb.ORDER_STATUS_RESULTED: OrderStatus.RESULTED,
    pb.ORDER_STATUS_CANCELLED: OrderStatus.CANCELLED,
}
_PRIORITY_NUMBERS = {priority: number for number, priority in _PRIORITIES.items()}
_SYSTEM_NUMBERS = {system: number for number, system in _SYSTEMS.items()}
_STATUS_NUMBERS = {status: number for number, status in _STATUSES.items()}


def place_order(request: pb.PlaceOrderRequest, violations: Violations) -> PlaceOrder:
    violations.request_id(request.request_id)
    LIMITS.check(request, violations)
    patient_id = violations.uuid("patient_id", request.patient_id)
    priority = _PRIORITIES.get(request.priority)
    if priority is None:
        violations.append(FieldViolation("priority", "must be ROUTINE, URGENT or STAT"))
    reasons = []
    for index, reason in enumerate(request.reason_codes):
        system = _SYSTEMS.get(reason.system)
        if system is None:
            violations.append(
                FieldViolation(f"reason_codes[{index}].system", "must be ICD10 or SNOMED_CT")
            )
        else:
            reasons.append(ReasonCode(system, reason.code))
    return PlaceOrder(patient_id, request.test_code, priority or Priority.ROUTINE, reasons)


def order_change(request: pb.SignOrderRequest | pb.CancelOrderRequest) -> tuple[UUID, int | None]:
    """The order a sign or cancel names and the version it expects (None: any)."""
    violations = Violations()
    violations.request_id(request.request_id)
    LIMITS.check(request, violations)
    order_id = violations.uuid("order_id", request.order_id)
    violations.raise_if_any()
    expected = request.expected_version if request.HasField("expected_version") else None
    return order_id, expected


def order_listing(
    request: pb.ListOrdersRequest, patient_id: str
) -> tuple[OrderQuery, tuple[UUID, int] | None]:
    """The page a list asks for, and the write (order id, version) to read after, if any.

    ``status`` UNSPECIFIED lists every status; a number the proto does not define is refused.
    """
    violations = Violations()
    LIMITS.check(request, violations)
    if patient_id:
        violations.uuid("patient_id", patient_id)
    else:
        violations.add("patient_id", "is required")
    if request.page_size > MAX_PAGE_SIZE:
        violations.add("page_size", f"must be at most {MAX_PAGE_SIZE}")
    authored_from = optional_instant(request, "authored_from")
    authored_to = optional_instant(request, "authored_to")
    if authored_from and authored_to and authored_from >= authored_to:
        violations.add("authored_to", "must be after authored_from")
    query = OrderQuery(
        patient_id=patient_id,
        status=_STATUSES.get(request.status),
        page_size=request.page_size or DEFAULT_PAGE_SIZE,
        page_token=request.page_token,
        test_codes=tuple(dict.fromkeys(request.test_codes)),
        authored_from=authored_from,
        authored_to=authored_to,
    )
    after = None
    if request.min_version:
        order_id = violations.uuid("min_version_order_id", request.min_version_order_id)
        after = (order_id, request.min_version)
    violations.raise_if_any()
    return query, after


def order_id_from(request: pb.GetOrderRequest) -> UUID:
    violations = Violations()
    LIMITS.check(request, violations)
    order_id = violations.uuid("order_id", request.order_id)
    violations.raise_if_any()
    return order_id


def order_message(view: OrderView) -> pb.Order:
    message = pb.Order(
        order_id=view.order_id,
        version=view.version,
        patient_id=view.patient_id,
        test_code=view.test.code,
        test_display=view.test.display,
        priority=_PRIORITY_NUMBERS[view.priority],
        reason_codes=[
            pb.ReasonCode(system=_SYSTEM_NUMBERS[r.system], code=r.code) for r in view.reasons
        ],
        orderer=view.orderer,
        placed_at=_timestamp(view.placed_at),
        status=_STATUS_NUMBERS[view.status],
        result_id=view.result_id or "",
    )
    if view.recorded_at is not None:
        message.recorded_at.CopyFrom(_timestamp(view.recorded_at))
    if view.signature is not None:
        message.signature.CopyFrom(
            pb.Signature(
                signer=view.signature.signer,
                signed_at=_timestamp(view.signature.signed_at),
                mfa=view.signature.mfa,
            )
        )
    if view.cancellation is not None:
        message.cancellation.CopyFrom(
            pb.Cancellation(
                cancelled_by=view.cancellation.cancelled_by,
                reason=view.cancellation.reason,
                cancelled_at=_timestamp(view.cancellation.cancelled_at),
            )
        )
    if view.resulted_at is not None:
        message.resulted_at.CopyFrom(_timestamp(view.resulted_at))
    return message


def _timestamp(instant: datetime) -> Timestamp:
    timestamp = Timestamp()
    timestamp.FromDatetime(instant)
    return timestamp
