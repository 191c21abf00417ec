"""What the results domain refuses. Messages name ids, states and rules, never clinical values."""

from __future__ import annotations

from uuid import UUID

from clinical_platform.validation import InvalidRequest


class ResultDomainError(Exception):
    """Base class of the results domain's refusals."""


class InvalidResult(InvalidRequest, ResultDomainError):  # noqa: N818 - named after the rule
    """The result's content breaks a rule (INVALID_ARGUMENT), listed by field."""


class ResultNotFound(ResultDomainError):  # noqa: N818
    """No result has this id (NOT_FOUND)."""

    def __init__(self, result_id: UUID) -> None:
        self.result_id = result_id
        super().__init__(f"result {result_id} not found")


class RecordOfForgottenPatient(ResultDomainError):  # noqa: N818 - named after the rule
    """The result is about a patient who was forgotten (crypto-shredded): nothing to show."""

    def __init__(self, result_id: str) -> None:
        super().__init__(f"result {result_id} is about a patient who was forgotten")


class OrderNotFound(ResultDomainError):  # noqa: N818
    """The results service has not seen this order (NOT_FOUND)."""

    def __init__(self, order_id: UUID) -> None:
        self.order_id = order_id
        super().__init__(f"order {order_id} not found")


class OrderNotResultable(ResultDomainError):  # noqa: N818
    """Only a signed, not cancelled order takes a result (FAILED_PRECONDITION)."""

    def __init__(self, order_id: UUID, status: str) -> None:
        self.order_id = order_id
        self.status = status
        super().__init__(f"order {order_id} is {status}; only a signed order can be resulted")


class ResultAlreadyPosted(ResultDomainError):  # noqa: N818
    """The order has its result already; amend or correct it instead (ALREADY_EXISTS)."""

    def __init__(self, result_id: UUID) -> None:
        self.result_id = result_id
        super().__init__(f"the order already has result {result_id}; amend it instead")
