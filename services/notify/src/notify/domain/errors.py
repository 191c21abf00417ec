"""Why the notify service refuses a command or a query."""

from __future__ import annotations

from uuid import UUID

from clinical_platform.validation import InvalidRequest


class NotifyDomainError(Exception):
    """A refusal the caller can act on; never holds PHI."""


class InvalidSubscription(InvalidRequest, NotifyDomainError):  # noqa: N818 - a refusal
    """INVALID_ARGUMENT: the request breaks these rules (field violations)."""


class SubscriptionNotFound(NotifyDomainError):  # noqa: N818
    """NOT_FOUND."""

    def __init__(self, subscription_id: UUID | str) -> None:
        super().__init__(f"subscription {subscription_id} does not exist")


class SubscriptionDeleted(NotifyDomainError):  # noqa: N818
    """NOT_FOUND: it existed, but was deleted."""

    def __init__(self, subscription_id: UUID | str) -> None:
        super().__init__(f"subscription {subscription_id} was deleted")


class NotTheOwner(NotifyDomainError):  # noqa: N818
    """PERMISSION_DENIED: only a subscription's owner uses it."""

    def __init__(self) -> None:
        super().__init__("only the subscription's owner may use it")


class HandshakeFailed(NotifyDomainError):  # noqa: N818
    """FAILED_PRECONDITION: the webhook endpoint did not answer the handshake correctly."""

    def __init__(self, reason: str) -> None:
        # One message whatever went wrong: "HTTP 404" against "connection failed" against
        # "timed out" would let a caller map ports behind the endpoint. The reason is logged.
        self.reason = reason
        super().__init__("the webhook endpoint did not complete the handshake")


class NothingToResend(NotifyDomainError):  # noqa: N818
    """FAILED_PRECONDITION: the notification was never delivered, or there is no webhook."""


class NoSuchNotification(NotifyDomainError):  # noqa: N818
    """NOT_FOUND: the subscription has no notification with that number (yet)."""

    def __init__(self, sequence: int) -> None:
        super().__init__(f"the subscription has no notification {sequence}")


class SubscriptionExpired(NotifyDomainError):  # noqa: N818
    """FAILED_PRECONDITION: the grant expired without renewal; create a new subscription."""

    def __init__(self, subscription_id: UUID | str) -> None:
        super().__init__(f"subscription {subscription_id} expired; create a new one")


class SubscriptionRevoked(NotifyDomainError):  # noqa: N818
    """PERMISSION_DENIED: the owner or an administrator revoked the grant."""

    def __init__(self, subscription_id: UUID | str) -> None:
        super().__init__(f"subscription {subscription_id} was revoked")


class QuotaExceeded(NotifyDomainError):  # noqa: N818
    """RESOURCE_EXHAUSTED: the owner holds as many active subscriptions as allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the owner holds {limit} active subscriptions, the most allowed; "
            "delete or revoke one first"
        )


class NotAnAdministrator(NotifyDomainError):  # noqa: N818
    """PERMISSION_DENIED: only an administrator revokes another owner's subscriptions."""

    def __init__(self) -> None:
        super().__init__("only an administrator revokes another owner's subscriptions")
