"""A notification as both channels carry it: a numbered feed entry, rendered for its owner.

Authorization runs again at every delivery, so a notification may go out "withheld": its
number and nothing else. Full content carries the order's or the result's details, decrypted
at delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

WITHHELD = "notification.withheld"


def notification_id(subscription_id: str, sequence: int) -> str:
    """The webhook-id of a notification: stable across retries and resends."""
    return f"msg_{subscription_id.replace('-', '')}_{sequence}"


@dataclass(frozen=True)
class OrderDetails:
    test_code: str = ""
    test_display: str = ""
    priority: str = ""
    orderer: str = ""
    signer: str = ""
    signed_at: datetime | None = None
    cancelled_by: str = ""
    cancellation_reason: str = ""


@dataclass(frozen=True)
class Observation:
    """One observation of a result; exactly one of quantity, coded and text is set."""

    code: str
    display: str = ""
    quantity: tuple[str, str] | None = None  # value, unit
    coded: tuple[str, str, str] | None = None  # system, code, display
    text: str | None = None
    reference_range: tuple[str | None, str | None] | None = None  # low, high
    interpretation: str | None = None


@dataclass(frozen=True)
class ResultDetails:
    observations: tuple[Observation, ...] = ()
    performer: str = ""
    effective_at: datetime | None = None
    issued_at: datetime | None = None
    revised_by: str = ""
    revision_reason: str = ""
    revision_kind: str = ""


@dataclass(frozen=True)
class Notification:
    """What a subscription's owner receives for one numbered event."""

    subscription_id: str
    sequence: int
    type: str
    occurred_at: datetime
    event_id: str = ""
    patient_id: str = ""
    order_id: str = ""
    result_id: str = ""
    version: int = 0
    order: OrderDetails | None = None
    result: ResultDetails | None = None

    @property
    def notification_id(self) -> str:
        return notification_id(self.subscription_id, self.sequence)

    @property
    def discloses(self) -> bool:
        """Whether it carries clinical content (full content: an access to audit)."""
        return self.order is not None or self.result is not None
