"""What the orders domain refuses. Messages name ids, states and rules, never clinical content."""

from __future__ import annotations

from uuid import UUID

from clinical_platform.validation import InvalidRequest


class OrderDomainError(Exception):
    """Base class of the orders domain's refusals."""


class InvalidOrder(InvalidRequest, OrderDomainError):  # noqa: N818 - named after the rule
    """The order's details break a rule (INVALID_ARGUMENT), listed by field."""


class OrderNotFound(OrderDomainError):  # noqa: N818
    """No order has this id (NOT_FOUND)."""

    def __init__(self, order_id: UUID) -> None:
        self.order_id = order_id
        super().__init__(f"order {order_id} not found")


class OrderStateConflict(OrderDomainError):  # noqa: N818 - named after the rule
    """The order's state does not allow the command (FAILED_PRECONDITION)."""

    def __init__(self, order_id: UUID, status: str, action: str) -> None:
        self.order_id = order_id
        self.status = status
        super().__init__(f"order {order_id} is {status} and cannot be {action}")


class OrderNotSignable(OrderStateConflict):
    """Only a draft order can be signed."""

    def __init__(self, order_id: UUID, status: str) -> None:
        super().__init__(order_id, status, "signed")


class OrderNotCancellable(OrderStateConflict):
    """A resulted or already cancelled order cannot be cancelled."""

    def __init__(self, order_id: UUID, status: str) -> None:
        super().__init__(order_id, status, "cancelled")


class OrderNotResultable(OrderStateConflict):
    """Only a signed order can become resulted (and only by one result)."""

    def __init__(self, order_id: UUID, status: str) -> None:
        super().__init__(order_id, status, "resulted")


class RecordOfForgottenPatient(OrderDomainError):  # noqa: N818 - named after the rule
    """The order is about a patient who was forgotten (crypto-shredded): nothing to show."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} is about a patient who was forgotten")


class SignatureWithoutMfa(OrderDomainError):  # noqa: N818
    """An electronic signature needs a multi-factor authenticated signer (PERMISSION_DENIED)."""

    def __init__(self) -> None:
        super().__init__("signing an order requires multi-factor authentication")
