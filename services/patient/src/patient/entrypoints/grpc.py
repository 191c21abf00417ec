"""PatientServicer: authenticate, authorize through policy, translate, map errors."""

from __future__ import annotations

from dataclasses import replace
from typing import TypeAlias
from uuid import UUID

import grpc

from clinical.patient.v1 import patient_pb2 as pb
from clinical.patient.v1 import patient_pb2_grpc
from clinical_platform.access.records import AccessAction
from clinical_platform.care.reads import Access, PatientReads
from clinical_platform.eventlog.context import CommandContext
from clinical_platform.grpc_auth import authenticate, deny
from clinical_platform.grpc_context import command_context, read_wait_s
from clinical_platform.grpc_errors import StatusTable, failures_as_status
from clinical_platform.principals import Principal
from clinical_platform.tokens import TokenVerifier
from patient import policy
from patient.application import PatientApp
from patient.care_team import CareTeamApp
from patient.domain.errors import CannotLinkToItself, PatientDomainError, PatientNotFound
from patient.entrypoints.care_team import CareTeamRpcs
from patient.entrypoints.translate import (
    candidate_to,
    forget_from,
    golden_record_to,
    grade_to,
    listing_from,
    match_limit,
    match_subject_from,
    pair_from,
    patient_id_from,
    patient_to,
    registration_from,
    search_from,
    update_from,
    version_read_from,
)

Context: TypeAlias = grpc.aio.ServicerContext
# Reads wait for the read model at most this long when the call has no deadline.
DEFAULT_READ_WAIT_S = 5.0
RECORD_TYPE = "Patient"
CATEGORY = "demographics"
# The first match wins: the specific refusals before their base class.
STATUSES: StatusTable = {
    CannotLinkToItself: grpc.StatusCode.INVALID_ARGUMENT,
    PatientNotFound: grpc.StatusCode.NOT_FOUND,
    PatientDomainError: grpc.StatusCode.FAILED_PRECONDITION,
}


class PatientServicer(CareTeamRpcs, patient_pb2_grpc.PatientServiceServicer):
    """clinical.patient.v1.PatientService over `PatientApp` and `CareTeamApp`."""

    def __init__(
        self,
        app: PatientApp,
        care_team: CareTeamApp,
        verifier: TokenVerifier,
        reads: PatientReads,
        *,
        max_wait_s: float = DEFAULT_READ_WAIT_S,
    ) -> None:
        self._app = app
        self._care_team = care_team
        self._statuses = STATUSES
        self._verifier = verifier
        self._reads = reads
        self._access_log = reads.access_log
        self._max_wait_s = max_wait_s

    async def RegisterPatient(  # noqa: N802 - named by the proto service
        self, request: pb.RegisterPatientRequest, context: Context
    ) -> pb.RegisterPatientResponse:
        """Register a record; a MATCH is linked, a POSSIBLE_MATCH queued for review."""
        principal = await self._authorize(
            context, policy.REGISTER, "RegisterPatient", AccessAction.CREATE
        )
        async with failures_as_status(context, STATUSES):
            registration = await self._app.register_patient(
                _command(context, principal, request.request_id), registration_from(request)
            )
        return pb.RegisterPatientResponse(
            patient_id=str(registration.patient_id),
            version=registration.version,
            outcome=grade_to(registration.assessment.outcome),
            candidates=[candidate_to(c) for c in registration.assessment.candidates],
            linked_patient_ids=[str(p) for p in registration.linked_patient_ids],
        )

    async def UpdateDemographics(  # noqa: N802 - named by the proto service
        self, request: pb.UpdateDemographicsRequest, context: Context
    ) -> pb.UpdateDemographicsResponse:
        """Replace a record's demographics (optionally only at ``expected_version``)."""
        principal = await self._authorize(
            context, policy.UPDATE, "UpdateDemographics", AccessAction.UPDATE,
            patient_id=request.patient_id,
        )  # fmt: skip
        async with failures_as_status(context, STATUSES):
            patient_id, demographics, expected_version = update_from(request)
            version = await self._app.update_demographics(
                _command(context, principal, request.request_id), patient_id, demographics,
                expected_version=expected_version,
            )  # fmt: skip
        return pb.UpdateDemographicsResponse(version=version)

    async def GetPatient(  # noqa: N802 - named by the proto service
        self, request: pb.GetPatientRequest, context: Context
    ) -> pb.GetPatientResponse:
        """A record, its links and golden record, once the read model reached ``min_version``."""
        principal = await self._authorize(
            context, policy.RECORD_READERS.refusal_to_read, "GetPatient", AccessAction.READ,
            patient_id=request.patient_id,
        )  # fmt: skip
        async with failures_as_status(context, STATUSES):
            asked = patient_id_from(request.patient_id)  # its form reveals no record
            version, as_of = version_read_from(request)
        access = await self._reads.authorize(
            context, principal, request.patient_id, operation="GetPatient",
            record_ids=[request.patient_id],
        )  # fmt: skip
        async with failures_as_status(context, STATUSES):
            record = await self._app.get_patient(
                asked,
                min_version=request.min_version,
                timeout_s=read_wait_s(context, max_wait_s=self._max_wait_s),
                version=version, as_of=as_of,
            )  # fmt: skip
        if not policy.sees_linked_records(principal):
            record = replace(record, patient=replace(record.patient, linked_patient_ids=()),
                             golden_record=None)  # fmt: skip
        # The golden record merges the demographics of every linked record: each is read.
        read = [record.patient.patient_id]
        if record.golden_record is not None:
            read += [p for p in record.golden_record.member_patient_ids if p not in read]
        # Linked records are the same person: read under the grant for the one asked for.
        reason = access.reason_for(request.patient_id)
        for patient_id in read:
            await self._reads.record_read(
                context, principal, access, patient_id=patient_id, record_ids=[patient_id],
                operation="GetPatient", break_glass_reason=reason,
            )  # fmt: skip
        response = pb.GetPatientResponse(patient=patient_to(record.patient))
        if record.golden_record is not None:
            response.golden_record.CopyFrom(golden_record_to(record.golden_record))
        return response

    async def SearchPatients(  # noqa: N802 - named by the proto service
        self, request: pb.SearchPatientsRequest, context: Context
    ) -> pb.SearchPatientsResponse:
        """Records by normalised name, birth date and identifier (all criteria must hold)."""
        principal = await self._authorize(
            context, policy.SEARCH, "SearchPatients", AccessAction.SEARCH
        )
        async with failures_as_status(context, STATUSES):
            query, after = search_from(request)
            patients = await self._app.search_patients(
                query, after=after, timeout_s=read_wait_s(context, max_wait_s=self._max_wait_s)
            )
        # A clinician is served the records of patients in their care (all, by break-glass).
        access = await self._reads.access(context, principal, [p.patient_id for p in patients])
        served = set(self._reads.readable(principal, access, [p.patient_id for p in patients]))
        patients = [p for p in patients if p.patient_id in served]
        found = [p.patient_id for p in patients]
        await self._record_reads(context, principal, access, found, "SearchPatients")
        # The total counts what the caller may be served: all matches for those who read any
        # record; a clinician's page is filtered, so their total is what the page served.
        total = len(patients)
        if access.unrestricted:
            async with failures_as_status(context, STATUSES):
                total = max(total, await self._app.count_patients(query))
        return pb.SearchPatientsResponse(patients=[patient_to(p) for p in patients], total=total)

    async def ListPatients(  # noqa: N802 - named by the proto service
        self, request: pb.ListPatientsRequest, context: Context
    ) -> pb.ListPatientsResponse:
        """Records not forgotten, by id, a page at a time (registrars and system principals)."""
        principal = await self._authorize(context, policy.LIST, "ListPatients", AccessAction.SEARCH)
        async with failures_as_status(context, STATUSES):
            after, limit = listing_from(request)
            patients = await self._app.list_patients(
                after=after, limit=limit, care_team_member=request.care_team_member
            )
        found = [p.patient_id for p in patients]
        access = Access(unrestricted=True)
        await self._record_reads(context, principal, access, found, "ListPatients")
        token = found[-1] if len(found) == limit else ""
        return pb.ListPatientsResponse(patients=[patient_to(p) for p in patients],
                                       next_page_token=token)  # fmt: skip

    async def FindMatches(  # noqa: N802 - named by the proto service
        self, request: pb.FindMatchesRequest, context: Context
    ) -> pb.FindMatchesResponse:
        """Candidates for some demographics or a record, scored and explained field by field."""
        principal = await self._authorize(
            context, policy.MATCH, "FindMatches", AccessAction.SEARCH,
            patient_id=request.patient_id,
        )  # fmt: skip
        limit = match_limit(request)
        async with failures_as_status(context, STATUSES):
            subject = match_subject_from(request)
        # A record's candidates are scored against its demographics: a read of that record.
        access = await self._reads.authorize(
            context, principal, request.patient_id, operation="FindMatches",
            action=AccessAction.SEARCH, record_ids=[request.patient_id],
        ) if isinstance(subject, UUID) else Access(unrestricted=True)  # fmt: skip
        async with failures_as_status(context, STATUSES):
            if isinstance(subject, UUID):
                candidates = await self._app.find_matches_for(
                    subject, min_version=request.min_version,
                    timeout_s=read_wait_s(context, max_wait_s=self._max_wait_s), limit=limit,
                )  # fmt: skip
            else:
                candidates = await self._app.find_matches(subject, limit=limit)
        found = [str(c.patient_id) for c in candidates]
        if isinstance(subject, UUID) and request.patient_id not in found:
            found.insert(0, request.patient_id)
        await self._record_reads(context, principal, access, found, "FindMatches")
        return pb.FindMatchesResponse(candidates=[candidate_to(c) for c in candidates])

    async def LinkPatients(  # noqa: N802 - named by the proto service
        self, request: pb.LinkPatientsRequest, context: Context
    ) -> pb.LinkPatientsResponse:
        """Record that two records are the same person (registrars only)."""
        principal = await self._authorize(
            context, policy.LINK, "LinkPatients", AccessAction.UPDATE,
            patient_id=request.patient_id,
        )  # fmt: skip
        async with failures_as_status(context, STATUSES):
            outcome = await self._app.link_patients(
                _command(context, principal, request.request_id), *pair_from(request)
            )
        return pb.LinkPatientsResponse(
            anchor_patient_id=str(outcome.anchor_patient_id), version=outcome.version
        )

    async def UnlinkPatients(  # noqa: N802 - named by the proto service
        self, request: pb.UnlinkPatientsRequest, context: Context
    ) -> pb.UnlinkPatientsResponse:
        """Reverse a link (registrars only)."""
        principal = await self._authorize(
            context, policy.UNLINK, "UnlinkPatients", AccessAction.UPDATE,
            patient_id=request.patient_id,
        )  # fmt: skip
        async with failures_as_status(context, STATUSES):
            outcome = await self._app.unlink_patients(
                _command(context, principal, request.request_id), *pair_from(request),
                reason=request.reason,
            )  # fmt: skip
        return pb.UnlinkPatientsResponse(
            anchor_patient_id=str(outcome.anchor_patient_id), version=outcome.version
        )

    async def ForgetPatient(  # noqa: N802 - named by the proto service
        self, request: pb.ForgetPatientRequest, context: Context
    ) -> pb.ForgetPatientResponse:
        """Record the right to erasure; read models drop the demographics (registrars only)."""
        principal = await self._authorize(
            context, policy.FORGET, "ForgetPatient", AccessAction.DELETE,
            patient_id=request.patient_id,
        )  # fmt: skip
        async with failures_as_status(context, STATUSES):
            version = await self._app.forget_patient(
                _command(context, principal, request.request_id), forget_from(request),
                reason=request.reason,
            )  # fmt: skip
        return pb.ForgetPatientResponse(version=version)

    async def _authorize(
        self,
        context: Context,
        decision: policy.Decision,
        operation: str,
        action: AccessAction,
        *,
        patient_id: str = "",
    ) -> Principal:
        """The caller, once policy allows the call; a refusal is denied and access-logged."""
        principal = await authenticate(context, self._verifier)
        refusal = decision(principal)
        if refusal is not None:
            await deny(
                context, principal, refusal, access_log=self._access_log, patient_id=patient_id,
                record_type=RECORD_TYPE, record_ids=[patient_id] if patient_id else [],
                category=CATEGORY, action=action, operation=operation,
            )  # fmt: skip
        return principal

    async def _record_reads(
        self,
        context: Context,
        principal: Principal,
        access: Access,
        patient_ids: list[str],
        operation: str,
    ) -> None:
        """One access record per patient served; one without a patient when none was."""
        for patient_id in patient_ids or [""]:
            await self._reads.record_read(
                context, principal, access, patient_id=patient_id,
                record_ids=[patient_id] if patient_id else [], operation=operation,
                action=AccessAction.SEARCH,
            )  # fmt: skip


def _command(context: Context, principal: Principal, request_id: str) -> CommandContext:
    return command_context(context, actor=principal.actor, request_id=request_id)
