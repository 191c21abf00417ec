"""Refusals at the edge on the platform's access trail (``clinical.audit.access.v1``), as DENIED
access records: the same outbox-then-Kafka path every service records its accesses through,
so the audit service's access log shows who was turned away at the front door, and why."""

from __future__ import annotations

import logging

from clinical_platform.access.log import AccessAuditLog
from clinical_platform.access.outbox import AccessAuditUnavailableError
from clinical_platform.access.records import (
    AccessOutcome,
    AccessTarget,
    RequestOrigin,
    access_record,
)
from clinical_platform.eventlog.context import Actor
from gateway.ports import Refusal, RefusalAudit

logger = logging.getLogger("gateway.audit")
SOURCE = "//clinical/gateway"
# Who a refused request was from when its token named nobody we could trust.
UNAUTHENTICATED = "unauthenticated"


class AccessTrailRefusals:
    """Records each refusal durably (fsynced outbox) for publishing; never raises."""

    def __init__(self, access_log: AccessAuditLog) -> None:
        self._access_log = access_log

    async def refused(self, refusal: Refusal) -> None:
        record = access_record(
            actor=Actor(subject=refusal.subject or UNAUTHENTICATED, client_id=refusal.client_id),
            target=AccessTarget(operation=refusal.operation or "authenticate"),
            origin=RequestOrigin(request_id=refusal.request_id),
            outcome=AccessOutcome.DENIED,
            source=SOURCE,
            reason=refusal.reason,
        )
        try:
            await self._access_log.record(record)
        except AccessAuditUnavailableError as failed:
            context = {"error": str(failed), "reason": refusal.reason}
            logger.error("refusal not on the access trail", extra=context)


class RefusalAudits:
    """Every refusal to each of ``audits`` in turn (the log line, then the access trail)."""

    def __init__(self, *audits: RefusalAudit) -> None:
        self.audits = audits

    async def refused(self, refusal: Refusal) -> None:
        for audit in self.audits:
            await audit.refused(refusal)
