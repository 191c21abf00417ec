"""ResultServicer: authenticate, authorize, translate proto <-> application, map errors to codes."""

from __future__ import annotations

from typing import NoReturn

import grpc

from clinical.results.v1 import results_pb2 as pb
from clinical.results.v1 import results_pb2_grpc
from clinical_platform.access.log import AccessAuditLog
from clinical_platform.access.records import AccessAction
from clinical_platform.eventlog.errors import EventLogError
from clinical_platform.grpc_auth import authenticate, deny
from clinical_platform.grpc_context import command_context, read_wait_s
from clinical_platform.grpc_errors import abort_for, invalid_argument
from clinical_platform.principals import Principal, Role
from clinical_platform.security.errors import SecurityError
from clinical_platform.tokens import TokenVerifier
from clinical_platform.validation import FieldViolation
from results.application import PostResult, ReadModelBehind, ResultsApp, ReviseResult
from results.domain.errors import (
    InvalidResult,
    OrderNotFound,
    OrderNotResultable,
    RecordOfForgottenPatient,
    ResultAlreadyPosted,
    ResultDomainError,
    ResultNotFound,
)
from results.entrypoints import messages
from results.entrypoints.messages import Violations
from results.views import InvalidPageTokenError

# Staff who read any patient's results; a patient principal reads only their own.
STAFF_READERS = (Role.CLINICIAN, Role.LAB, Role.AUDITOR)
RECORD_TYPE = "Result"
CATEGORY = "results"
# Answer a little before the caller's deadline, so the caller hears why.

_Failure = (
    ResultDomainError | EventLogError | SecurityError | ReadModelBehind | InvalidPageTokenError
)
_FAILURES = (
    ResultDomainError, EventLogError, SecurityError, ReadModelBehind, InvalidPageTokenError,
)  # fmt: skip


class ResultServicer(results_pb2_grpc.ResultServiceServicer):
    """The public API of the results service."""

    def __init__(
        self,
        app: ResultsApp,
        verifier: TokenVerifier,
        access_log: AccessAuditLog,
        *,
        max_wait_s: float,
    ) -> None:
        self._app = app
        self._verifier = verifier
        self._access_log = access_log
        self._max_wait_s = max_wait_s

    async def PostResult(  # noqa: N802 - named by the proto service
        self, request: pb.PostResultRequest, context: grpc.aio.ServicerContext
    ) -> pb.PostResultResponse:
        """Post the result of a signed order (laboratory staff); the caller is the performer."""
        principal = await authenticate(context, self._verifier)
        if not principal.has(Role.LAB):
            await deny(
                context, principal, "only laboratory staff post results",
                access_log=self._access_log, record_type=RECORD_TYPE, category=CATEGORY,
                action=AccessAction.CREATE, operation="PostResult",
            )  # fmt: skip
        violations = Violations()
        violations.request_id(request.request_id)
        order_id = violations.uuid("order_id", request.order_id)
        observations = violations.observations(request.observations)
        await _refuse_if_any(context, violations)
        command = PostResult(
            order_id=order_id,
            observations=observations,
            effective_at=messages.instant(request.effective_at)
            if request.HasField("effective_at")
            else None,
            order_min_version=request.order_min_version,
        )
        provenance = command_context(context, actor=principal.actor, request_id=request.request_id)
        try:
            posted = await self._app.post_result(
                command, provenance, wait_s=read_wait_s(context, max_wait_s=self._max_wait_s)
            )
        except _FAILURES as failure:
            await _abort(context, failure)
        return pb.PostResultResponse(result_id=str(posted.result_id), version=posted.version)

    async def AmendResult(  # noqa: N802 - named by the proto service
        self, request: pb.AmendResultRequest, context: grpc.aio.ServicerContext
    ) -> pb.AmendResultResponse:
        """Amend or correct a result, keeping the earlier revision (laboratory staff)."""
        principal = await authenticate(context, self._verifier)
        if not principal.has(Role.LAB):
            await deny(
                context, principal, "only laboratory staff amend results",
                access_log=self._access_log, record_type=RECORD_TYPE,
                record_ids=[request.result_id], category=CATEGORY, action=AccessAction.UPDATE,
                operation="AmendResult",
            )  # fmt: skip
        violations = Violations()
        violations.request_id(request.request_id)
        command = ReviseResult(
            result_id=violations.uuid("result_id", request.result_id),
            kind=messages.revision_kind(request.kind, violations),
            observations=violations.observations(request.observations),
            reason=request.reason,
            expected_version=request.expected_version
            if request.HasField("expected_version")
            else None,
        )
        await _refuse_if_any(context, violations)
        provenance = command_context(context, actor=principal.actor, request_id=request.request_id)
        try:
            version = await self._app.revise_result(command, provenance)
        except _FAILURES as failure:
            await _abort(context, failure)
        return pb.AmendResultResponse(version=version)

    async def GetResult(  # noqa: N802 - named by the proto service
        self, request: pb.GetResultRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetResultResponse:
        """Read one result with its revisions (staff; a patient their own)."""
        principal = await self._reader(context, "GetResult")
        violations = Violations()
        result_id = violations.uuid("result_id", request.result_id)
        await _refuse_if_any(context, violations)
        try:
            view = await self._app.get_result(
                result_id,
                min_version=request.min_version,
                wait_s=read_wait_s(context, max_wait_s=self._max_wait_s),
            )
        except _FAILURES as failure:
            await _abort(context, failure)
        if not principal.has(*STAFF_READERS) and view.patient_id != principal.patient_id:
            await deny(
                context, principal, "a patient reads only their own results",
                access_log=self._access_log, patient_id=view.patient_id,
                record_type=RECORD_TYPE, record_ids=[request.result_id], category=CATEGORY,
                operation="GetResult",
            )  # fmt: skip
        await self._access_log.record_read(
            context, principal, patient_id=view.patient_id, record_type=RECORD_TYPE,
            record_ids=[view.result_id], category=CATEGORY, action=AccessAction.READ,
            operation="GetResult",
        )  # fmt: skip
        return pb.GetResultResponse(result=messages.result_message(view))

    async def ListResults(  # noqa: N802 - named by the proto service
        self, request: pb.ListResultsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListResultsResponse:
        """List results by patient and/or order, newest first (staff; a patient their own)."""
        principal = await self._reader(context, "ListResults", AccessAction.SEARCH)
        patient_id = request.patient_id
        if not principal.has(*STAFF_READERS):
            patient_id = patient_id or principal.patient_id
            if patient_id != principal.patient_id:
                await deny(
                    context, principal, "a patient reads only their own results",
                    access_log=self._access_log, patient_id=patient_id, record_type=RECORD_TYPE,
                    category=CATEGORY, action=AccessAction.SEARCH, operation="ListResults",
                )  # fmt: skip
        violations = Violations()
        if not (patient_id or request.order_id):
            violations.append(FieldViolation("patient_id", "give a patient_id or an order_id"))
        if patient_id:
            violations.uuid("patient_id", patient_id)
        if request.order_id:
            violations.uuid("order_id", request.order_id)
        query = messages.result_query(request, patient_id, violations)
        after = None
        if request.min_version:
            result_id = violations.uuid("min_version_result_id", request.min_version_result_id)
            after = (result_id, request.min_version)
        await _refuse_if_any(context, violations)
        try:
            page = await self._app.list_results(
                query, after=after, wait_s=read_wait_s(context, max_wait_s=self._max_wait_s)
            )
        except _FAILURES as failure:
            await _abort(context, failure)
        # One access record per patient whose results are served (a list by order may span
        # patients only in theory, but the record must never name the wrong one).
        by_patient: dict[str, list[str]] = {patient_id: []} if patient_id else {}
        for view in page.results:
            by_patient.setdefault(view.patient_id, []).append(view.result_id)
        for served_patient, result_ids in (by_patient or {"": []}).items():
            await self._access_log.record_read(
                context, principal, patient_id=served_patient, record_type=RECORD_TYPE,
                record_ids=result_ids, category=CATEGORY, action=AccessAction.SEARCH,
                operation="ListResults",
            )  # fmt: skip
        return pb.ListResultsResponse(
            results=[messages.result_message(view) for view in page.results],
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
            reason = "this role does not read results"
        elif not principal.has(*STAFF_READERS) and not principal.patient_id:
            reason = "the patient token names no patient"
        if reason:
            await deny(
                context, principal, reason, access_log=self._access_log,
                patient_id=principal.patient_id, record_type=RECORD_TYPE, category=CATEGORY,
                action=action, operation=operation,
            )  # fmt: skip
        return principal


async def _refuse_if_any(context: grpc.aio.ServicerContext, violations: Violations) -> None:
    if violations:
        await invalid_argument(context, violations)


async def _abort(context: grpc.aio.ServicerContext, failure: _Failure) -> NoReturn:
    match failure:
        case InvalidResult():
            await invalid_argument(context, failure.violations)
        case InvalidPageTokenError():
            await invalid_argument(context, [FieldViolation("page_token", str(failure))])
        case ResultNotFound():
            await context.abort(grpc.StatusCode.NOT_FOUND, "result not found")
        case OrderNotFound():
            await context.abort(grpc.StatusCode.NOT_FOUND, "order not found")
        case RecordOfForgottenPatient():
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(failure))
        case OrderNotResultable():
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(failure))
        case ResultAlreadyPosted():
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, str(failure))
        case ReadModelBehind():
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(failure))
        case EventLogError() | SecurityError():
            await abort_for(context, failure)
    raise failure
