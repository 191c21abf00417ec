"""ResultServicer: authenticate, authorize through policy, translate, map errors to codes."""

from __future__ import annotations

import grpc

from clinical.results.v1 import results_pb2 as pb
from clinical.results.v1 import results_pb2_grpc
from clinical_platform.access.log import AccessAuditLog
from clinical_platform.access.records import AccessAction
from clinical_platform.care.reads import PatientReads, RecordOwner
from clinical_platform.care.relationships import CareRelationships
from clinical_platform.grpc_auth import RecordGate
from clinical_platform.grpc_context import command_context, read_wait_s
from clinical_platform.grpc_errors import failures_as_status
from clinical_platform.reads import VersionNotRecorded
from clinical_platform.tokens import TokenVerifier
from clinical_platform.validation import InvalidRequest
from clinical_platform.versions import version_wanted
from results import policy
from results.application import ResultsApp
from results.domain.errors import (
    OrderNotFound,
    OrderNotResultable,
    RecordOfForgottenPatient,
    ResultAlreadyPosted,
    ResultNotFound,
)
from results.entrypoints import translate

STATUSES = {
    ResultNotFound: grpc.StatusCode.NOT_FOUND,
    OrderNotFound: grpc.StatusCode.NOT_FOUND,
    RecordOfForgottenPatient: grpc.StatusCode.FAILED_PRECONDITION,
    OrderNotResultable: grpc.StatusCode.FAILED_PRECONDITION,
    ResultAlreadyPosted: grpc.StatusCode.ALREADY_EXISTS,
}


class ResultServicer(results_pb2_grpc.ResultServiceServicer):
    """The public API of the results service."""

    def __init__(
        self,
        app: ResultsApp,
        verifier: TokenVerifier,
        access_log: AccessAuditLog,
        relationships: CareRelationships,
        *,
        max_wait_s: float,
    ) -> None:
        self._app = app
        self._gate = RecordGate(verifier, access_log, record_type="Result", category="results")
        self._reads = PatientReads(
            policy.READERS, relationships, access_log, record_type="Result", category="results"
        )
        self._max_wait_s = max_wait_s

    async def PostResult(  # noqa: N802 - named by the proto service
        self, request: pb.PostResultRequest, context: grpc.aio.ServicerContext
    ) -> pb.PostResultResponse:
        """Post the result of a signed order (laboratory staff); the caller is the performer."""
        principal = await self._gate.caller(context)
        await self._gate.refuse_if(
            policy.refusal_to_post(principal), context, principal, operation="PostResult",
            action=AccessAction.CREATE,
        )  # fmt: skip
        provenance = command_context(context, actor=principal.actor, request_id=request.request_id)
        async with failures_as_status(context, STATUSES):
            command = translate.post_result(request)
            posted = await self._app.post_result(
                command, provenance, wait_s=read_wait_s(context, max_wait_s=self._max_wait_s)
            )
        return pb.PostResultResponse(result_id=str(posted.result_id), version=posted.version)

    async def AmendResult(  # noqa: N802 - named by the proto service
        self, request: pb.AmendResultRequest, context: grpc.aio.ServicerContext
    ) -> pb.AmendResultResponse:
        """Amend or correct a result, keeping the earlier revision (laboratory staff)."""
        principal = await self._gate.caller(context)
        await self._gate.refuse_if(
            policy.refusal_to_amend(principal), context, principal, operation="AmendResult",
            action=AccessAction.UPDATE, record_ids=[request.result_id],
        )  # fmt: skip
        provenance = command_context(context, actor=principal.actor, request_id=request.request_id)
        async with failures_as_status(context, STATUSES):
            command = translate.revise_result(request)
            version = await self._app.revise_result(command, provenance)
        return pb.AmendResultResponse(version=version)

    async def GetResult(  # noqa: N802 - named by the proto service
        self, request: pb.GetResultRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetResultResponse:
        """Read one result with its revisions (lab staff; a clinician of a patient in their care
        or by break-glass; a patient their own)."""
        principal = await self._gate.reader(context, policy.READERS, operation="GetResult")

        async def owner() -> RecordOwner | None:
            try:
                known = await self._app.get_result(
                    translate.result_id_from(request), min_version=0, wait_s=0
                )
            except (ResultNotFound, InvalidRequest):
                return None
            return RecordOwner(known.patient_id)

        hiding = self._reads.hiding_absence(
            (ResultNotFound, VersionNotRecorded), context, principal, owner=owner,
            operation="GetResult", record_ids=[request.result_id],
        )  # fmt: skip
        async with failures_as_status(context, STATUSES), hiding:
            view = await self._app.get_result(
                translate.result_id_from(request),
                min_version=request.min_version,
                wait_s=read_wait_s(context, max_wait_s=self._max_wait_s),
                wanted=version_wanted(request),
            )
        access = await self._reads.authorize(
            context, principal, view.patient_id, operation="GetResult",
            record_ids=[request.result_id],
        )  # fmt: skip
        await self._reads.record_read(
            context, principal, access, operation="GetResult", patient_id=view.patient_id,
            record_ids=[view.result_id],
        )  # fmt: skip
        return pb.GetResultResponse(result=translate.result_message(view))

    async def ListResults(  # noqa: N802 - named by the proto service
        self, request: pb.ListResultsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListResultsResponse:
        """List results by patient and/or order, newest first (lab staff; a clinician of a
        patient in their care or by break-glass; a patient their own)."""
        principal = await self._gate.reader(
            context, policy.READERS, operation="ListResults", action=AccessAction.SEARCH
        )
        patient_id = policy.READERS.patient_to_list(principal, request.patient_id)
        async with failures_as_status(context, STATUSES):
            # A malformed request is refused as such: its form reveals no record.
            query, after = translate.result_listing(request, patient_id)
        access = await self._reads.authorize(
            context, principal, patient_id, operation="ListResults", action=AccessAction.SEARCH
        )
        async with failures_as_status(context, STATUSES):
            page = await self._app.list_results(
                query, after=after, wait_s=read_wait_s(context, max_wait_s=self._max_wait_s)
            )
        # One access record per patient whose results are served (a list by order may span
        # patients only in theory, but the record must never name the wrong one).
        by_patient: dict[str, list[str]] = {patient_id: []} if patient_id else {}
        for view in page.results:
            by_patient.setdefault(view.patient_id, []).append(view.result_id)
        for served_patient, result_ids in (by_patient or {"": []}).items():
            await self._reads.record_read(
                context, principal, access, operation="ListResults", action=AccessAction.SEARCH,
                patient_id=served_patient, record_ids=result_ids,
            )  # fmt: skip
        return pb.ListResultsResponse(
            results=[translate.result_message(view) for view in page.results],
            next_page_token=page.next_page_token,
            total=page.total,
        )
