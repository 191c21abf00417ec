"""PatientServicer: authenticate, authorize through policy, translate, map errors."""

from __future__ import annotations

from typing import TypeAlias

import grpc

from clinical.patient.v1 import patient_pb2 as pb
from clinical.patient.v1 import patient_pb2_grpc
from clinical_platform.access.records import AccessAction
from clinical_platform.care.reads import PatientReads
from clinical_platform.eventlog.context import CommandContext
from clinical_platform.grpc_auth import authenticate, deny
from clinical_platform.grpc_context import command_context
from clinical_platform.grpc_errors import StatusTable, failures_as_status
from clinical_platform.principals import Principal
from clinical_platform.tokens import TokenVerifier
from patient import policy
from patient.application import PatientApp
from patient.care_team import CareTeamApp
from patient.domain.errors import CannotLinkToItself, PatientDomainError, PatientNotFound
from patient.entrypoints.care_team import CareTeamRpcs
from patient.entrypoints.reads import ReadRpcs
from patient.entrypoints.responses import candidate_to, grade_to
from patient.entrypoints.translate import (
    forget_from,
    pair_from,
    registration_from,
    update_from,
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


class PatientServicer(ReadRpcs, CareTeamRpcs, patient_pb2_grpc.PatientServiceServicer):
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


def _command(context: Context, principal: Principal, request_id: str) -> CommandContext:
    return command_context(context, actor=principal.actor, request_id=request_id)
