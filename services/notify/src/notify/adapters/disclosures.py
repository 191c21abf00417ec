"""Full-content notifications disclose PHI: each goes into the access audit before it leaves.

A notification with an order's or a result's details is recorded like any other read of
patient data (`clinical.audit.access.v1`): the subscription's owner as the actor, the record
it is about, the channel as the operation, and for a webhook the notification id as the
request id. The record is stored (fsynced) before the POST or the stream message, so a
disclosure is never unaccounted for; when it cannot be stored nothing is sent (fail closed).
Identifier-only notifications carry no clinical content and are not recorded.
"""

from __future__ import annotations

from clinical_platform.access.log import AccessAuditLog
from clinical_platform.access.records import (
    AccessAction,
    AccessOutcome,
    AccessTarget,
    RequestOrigin,
    access_record,
)
from clinical_platform.eventlog.context import Actor
from notify.domain.notification import Notification
from notify.domain.subscription import Owner

CATEGORY = "notify"


class AuditedDisclosures:
    def __init__(self, log: AccessAuditLog) -> None:
        self._log = log

    async def record(
        self, owner: Owner, notification: Notification, *, channel: str, origin: RequestOrigin
    ) -> None:
        """Record the disclosure of a full-content notification (no-op for the others).

        Raises `AccessAuditUnavailableError` when the record cannot be stored.
        """
        if not notification.discloses:
            return
        is_result = bool(notification.result_id)
        target = AccessTarget(
            patient_id=notification.patient_id,
            record_type="Result" if is_result else "Order",
            record_ids=[notification.result_id if is_result else notification.order_id],
            category=CATEGORY, action=AccessAction.READ, operation=channel,
        )  # fmt: skip
        actor = Actor(owner.subject, owner.roles, client_id=owner.client_id)
        record = access_record(
            actor=actor, target=target, origin=origin, outcome=AccessOutcome.SUCCESS,
            source=self._log.config.source,
        )  # fmt: skip
        await self._log.record(record)
