"""AuditServicer: authenticate, authorize by policy, translate, audit the auditor, map errors.

Every answered call is itself an access record (category "audit-trail"), and so is every
refusal: who looked at whose trail is part of the trail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import grpc

from audit import policy
from audit.application import AuditApp
from audit.domain.errors import UnknownTopic
from audit.entrypoints.fhir import audit_event_json
from audit.entrypoints.translate import (
    access_query,
    export_query,
    history_query,
    page_token,
    verification_to,
    verify_target,
)
from clinical.audit.v1 import audit_pb2 as pb
from clinical.audit.v1 import audit_pb2_grpc
from clinical_platform.access.log import AccessAuditLog
from clinical_platform.access.records import AccessAction
from clinical_platform.grpc_auth import authenticate, deny
from clinical_platform.grpc_errors import StatusTable, failures_as_status
from clinical_platform.principals import Principal
from clinical_platform.tokens import TokenVerifier

Context: TypeAlias = grpc.aio.ServicerContext
CATEGORY = "audit-trail"
TRAIL_RECORD = "AuditEvent"
LOG_RECORD = "EventLog"
STATUSES: StatusTable = {UnknownTopic: grpc.StatusCode.NOT_FOUND}


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    """clinical.audit.v1.AuditService over `AuditApp`."""

    def __init__(self, app: AuditApp, verifier: TokenVerifier, access_log: AccessAuditLog) -> None:
        self._app = app
        self._verifier = verifier
        self._access_log = access_log

    async def History(  # noqa: N802 - named by the proto service
        self, request: pb.HistoryRequest, context: Context
    ) -> pb.HistoryResponse:
        """Every change to an aggregate, to every aggregate about a patient, or to every
        aggregate of a type."""
        principal = await self._auditor(context, "History", AccessAction.SEARCH, request.patient_id)
        async with failures_as_status(context, STATUSES):
            page = await self._app.history(history_query(request))
        if request.aggregate_type:
            # A type's changes are many patients': the access names the aggregates shown.
            patient, aggregates = "", sorted({c.aggregate_id for c in page.items})
        else:
            patient = request.patient_id or next((c.patient_id for c in page.items), "")
            aggregates = [request.aggregate_id] if request.aggregate_id else []
        await self._audited(context, principal, "History", action=AccessAction.SEARCH,
                            patient_id=patient, record_ids=aggregates)  # fmt: skip
        return pb.HistoryResponse(changes=page.items, next_page_token=page_token(page.next))

    async def AccessLog(  # noqa: N802
        self, request: pb.AccessLogRequest, context: Context
    ) -> pb.AccessLogResponse:
        """Reads and refusals of a patient's data, or by one user."""
        principal = await self._auditor(
            context, "AccessLog", AccessAction.SEARCH, request.patient_id
        )
        async with failures_as_status(context, STATUSES):
            page = await self._app.access_log(access_query(request))
        await self._audited(context, principal, "AccessLog", action=AccessAction.SEARCH,
                            patient_id=request.patient_id)  # fmt: skip
        return pb.AccessLogResponse(records=page.items, next_page_token=page_token(page.next))

    async def Verify(  # noqa: N802
        self, request: pb.VerifyRequest, context: Context
    ) -> pb.VerifyResponse:
        """Verify partitions of an event topic against their signed checkpoints."""
        principal = await self._auditor(context, "Verify", AccessAction.READ, "", LOG_RECORD)
        async with failures_as_status(context, STATUSES):
            verifications = await self._app.verify(*verify_target(request))
        await self._audited(context, principal, "Verify", action=AccessAction.READ,
                            patient_id="", record_type=LOG_RECORD)  # fmt: skip
        return pb.VerifyResponse(
            ok=all(v.report.ok for v in verifications),
            partitions=[verification_to(v) for v in verifications],
        )

    async def ExportAuditEvents(  # noqa: N802
        self, request: pb.ExportAuditEventsRequest, context: Context
    ) -> pb.ExportAuditEventsResponse:
        """A patient's trail as FHIR R4 AuditEvent JSON (IHE BALP)."""
        principal = await self._auditor(
            context, "ExportAuditEvents", AccessAction.EXPORT, request.patient_id
        )
        async with failures_as_status(context, STATUSES):
            page = await self._app.patient_trail(export_query(request))
        await self._audited(context, principal, "ExportAuditEvents", action=AccessAction.EXPORT,
                            patient_id=request.patient_id)  # fmt: skip
        return pb.ExportAuditEventsResponse(
            audit_events=[audit_event_json(item) for item in page.items],
            next_page_token=page_token(page.next),
        )

    async def _auditor(
        self,
        context: Context,
        operation: str,
        action: AccessAction,
        patient_id: str,
        record_type: str = TRAIL_RECORD,
    ) -> Principal:
        """The caller, once policy allows it; a refusal is denied and access-logged itself."""
        principal = await authenticate(context, self._verifier)
        refusal = policy.refusal_to_read_trail(principal)
        if refusal is not None:
            await deny(context, principal, refusal, access_log=self._access_log,
                       patient_id=patient_id, record_type=record_type, category=CATEGORY,
                       action=action, operation=operation)  # fmt: skip
        return principal

    async def _audited(
        self,
        context: Context,
        principal: Principal,
        operation: str,
        *,
        action: AccessAction,
        patient_id: str,
        record_ids: Sequence[str] = (),
        record_type: str = TRAIL_RECORD,
    ) -> None:
        await self._access_log.record_read(
            context, principal, patient_id=patient_id, record_type=record_type,
            record_ids=record_ids, category=CATEGORY, action=action, operation=operation,
        )  # fmt: skip
