"""AuditServicer: authenticate, allow auditors only, translate, audit the auditor, map errors.

Every answered call is itself an access record (category "audit-trail"), and so is every
refusal: who looked at whose trail is part of the trail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TypeAlias

import grpc

from audit.application import AuditApp
from audit.domain.errors import NotAnEventTopic, PartitionOutOfRange, UnknownTopic
from audit.entrypoints.translate import (
    InvalidRequest,
    access_query,
    export_query,
    history_query,
    verification_to,
    verify_target,
)
from clinical.audit.v1 import audit_pb2 as pb
from clinical.audit.v1 import audit_pb2_grpc
from clinical_platform.access.log import AccessAuditLog
from clinical_platform.access.records import AccessAction
from clinical_platform.grpc_auth import authenticate, deny
from clinical_platform.grpc_errors import abort_for, invalid_argument
from clinical_platform.principals import Principal, Role
from clinical_platform.security.errors import SecurityError
from clinical_platform.tokens import TokenVerifier
from clinical_platform.validation import FieldViolation

Context: TypeAlias = grpc.aio.ServicerContext
CATEGORY = "audit-trail"
TRAIL_RECORD = "AuditEvent"
LOG_RECORD = "EventLog"


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    """clinical.audit.v1.AuditService over `AuditApp`."""

    def __init__(self, app: AuditApp, verifier: TokenVerifier, access_log: AccessAuditLog) -> None:
        self._app = app
        self._verifier = verifier
        self._access_log = access_log

    async def History(  # noqa: N802 - named by the proto service
        self, request: pb.HistoryRequest, context: Context
    ) -> pb.HistoryResponse:
        """Every change to an aggregate, or to every aggregate about a patient."""
        principal = await self._auditor(context, "History", AccessAction.SEARCH, request.patient_id)
        async with _errors(context):
            page = await self._app.history(history_query(request))
        patient = request.patient_id or next((c.patient_id for c in page.items), "")
        aggregates = [request.aggregate_id] if request.aggregate_id else []
        await self._audited(context, principal, "History", action=AccessAction.SEARCH,
                            patient_id=patient, record_ids=aggregates)  # fmt: skip
        return pb.HistoryResponse(changes=page.items, next_page_token=page.next_page_token)

    async def AccessLog(  # noqa: N802
        self, request: pb.AccessLogRequest, context: Context
    ) -> pb.AccessLogResponse:
        """Reads and refusals of a patient's data, or by one user."""
        principal = await self._auditor(
            context, "AccessLog", AccessAction.SEARCH, request.patient_id
        )
        async with _errors(context):
            page = await self._app.access_log(access_query(request))
        await self._audited(context, principal, "AccessLog", action=AccessAction.SEARCH,
                            patient_id=request.patient_id)  # fmt: skip
        return pb.AccessLogResponse(records=page.items, next_page_token=page.next_page_token)

    async def Verify(  # noqa: N802
        self, request: pb.VerifyRequest, context: Context
    ) -> pb.VerifyResponse:
        """Verify partitions of an event topic against their signed checkpoints."""
        principal = await self._auditor(context, "Verify", AccessAction.READ, "", LOG_RECORD)
        async with _errors(context):
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
        async with _errors(context):
            page = await self._app.export_audit_events(export_query(request))
        await self._audited(context, principal, "ExportAuditEvents", action=AccessAction.EXPORT,
                            patient_id=request.patient_id)  # fmt: skip
        return pb.ExportAuditEventsResponse(
            audit_events=page.items, next_page_token=page.next_page_token
        )

    async def _auditor(
        self,
        context: Context,
        operation: str,
        action: AccessAction,
        patient_id: str,
        record_type: str = TRAIL_RECORD,
    ) -> Principal:
        principal = await authenticate(context, self._verifier)
        if not principal.has(Role.AUDITOR):
            await deny(context, principal, "only auditors may read the audit trail",
                       access_log=self._access_log, patient_id=patient_id,
                       record_type=record_type, category=CATEGORY, action=action,
                       operation=operation)  # fmt: skip
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


@asynccontextmanager
async def _errors(context: Context) -> AsyncIterator[None]:
    """The application's refusals as status codes; messages name fields, never values."""
    try:
        yield
    except InvalidRequest as invalid:
        await invalid_argument(context, invalid.violations)
    except NotAnEventTopic as error:
        await invalid_argument(context, [FieldViolation("topic", str(error))])
    except PartitionOutOfRange as error:
        await invalid_argument(context, [FieldViolation("partitions", str(error))])
    except UnknownTopic:
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such topic")
    except SecurityError as error:
        await abort_for(context, error)
