"""PatientServicer: authenticate, authorise, translate protobuf <-> domain, map errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NoReturn, TypeAlias

import grpc

from clinical.patient.v1 import patient_pb2 as pb
from clinical.patient.v1 import patient_pb2_grpc
from clinical_platform.access.log import AccessAuditLog
from clinical_platform.access.records import AccessAction
from clinical_platform.eventlog.context import CommandContext
from clinical_platform.eventlog.errors import EventLogError
from clinical_platform.grpc_auth import authenticate, deny
from clinical_platform.grpc_context import command_context, read_wait_s
from clinical_platform.grpc_errors import abort_for, invalid_argument
from clinical_platform.principals import Principal, Role
from clinical_platform.security.errors import SecurityError
from clinical_platform.tokens import TokenVerifier
from clinical_platform.validation import FieldViolation
from patient.application import PatientApp
from patient.domain.demographics import PatientIdentifier
from patient.domain.errors import (
    CannotLinkToItself,
    InvalidDemographics,
    PatientDomainError,
    PatientNotFound,
)
from patient.entrypoints.translate import (
    InvalidRequest,
    candidate_to,
    demographics_from,
    golden_record_to,
    grade_to,
    patient_id_from,
    patient_to,
    require_request_id,
)
from patient.ports import ReadModelBehind
from patient.views import PatientSearch

Context: TypeAlias = grpc.aio.ServicerContext
WRITERS = (Role.REGISTRAR, Role.CLINICIAN)
READERS = (Role.CLINICIAN, Role.REGISTRAR, Role.AUDITOR)
# Reads wait for the read model at most this long when the call has no deadline.
DEFAULT_READ_WAIT_S = 5.0
DEFAULT_PAGE = 50
MAX_PAGE = 200
RECORD_TYPE = "Patient"
CATEGORY = "demographics"


class PatientServicer(patient_pb2_grpc.PatientServiceServicer):
    """clinical.patient.v1.PatientService over `PatientApp`."""

    def __init__(
        self,
        app: PatientApp,
        verifier: TokenVerifier,
        access_log: AccessAuditLog,
        *,
        max_wait_s: float = DEFAULT_READ_WAIT_S,
    ) -> None:
        self._app = app
        self._verifier = verifier
        self._access_log = access_log
        self._max_wait_s = max_wait_s

    async def RegisterPatient(  # noqa: N802 - named by the proto service
        self, request: pb.RegisterPatientRequest, context: Context
    ) -> pb.RegisterPatientResponse:
        """Register a record; a MATCH is linked, a POSSIBLE_MATCH queued for review."""
        principal = await self._principal(
            context, WRITERS, "registering patients", "RegisterPatient", AccessAction.CREATE
        )
        async with _errors(context):
            require_request_id(request.request_id)
            registration = await self._app.register_patient(
                _command(context, principal, request.request_id),
                demographics_from(request.demographics),
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
        principal = await self._principal(
            context, WRITERS, "updating patients", "UpdateDemographics", AccessAction.UPDATE,
            patient_id=request.patient_id,
        )  # fmt: skip
        async with _errors(context):
            require_request_id(request.request_id)
            version = await self._app.update_demographics(
                _command(context, principal, request.request_id),
                patient_id_from(request.patient_id),
                demographics_from(request.demographics),
                expected_version=(
                    request.expected_version if request.HasField("expected_version") else None
                ),
            )
        return pb.UpdateDemographicsResponse(version=version)

    async def GetPatient(  # noqa: N802 - named by the proto service
        self, request: pb.GetPatientRequest, context: Context
    ) -> pb.GetPatientResponse:
        """A record, its links and golden record, once the read model reached ``min_version``."""
        principal = await authenticate(context, self._verifier)
        own_record = principal.has(Role.PATIENT) and principal.patient_id == request.patient_id
        if not (principal.has(*READERS) or own_record):
            await deny(
                context, principal, "patients may read only their own record",
                access_log=self._access_log, patient_id=request.patient_id,
                record_type=RECORD_TYPE, record_ids=[request.patient_id], category=CATEGORY,
                operation="GetPatient",
            )  # fmt: skip
        async with _errors(context):
            record = await self._app.get_patient(
                patient_id_from(request.patient_id),
                min_version=request.min_version,
                timeout_s=read_wait_s(context, max_wait_s=self._max_wait_s),
            )
        # The golden record merges the demographics of every linked record: each is read.
        read = [record.patient.patient_id]
        if record.golden_record is not None:
            read += [p for p in record.golden_record.member_patient_ids if p not in read]
        for patient_id in read:
            await self._access_log.record_read(
                context, principal, patient_id=patient_id, record_type=RECORD_TYPE,
                record_ids=[patient_id], category=CATEGORY, action=AccessAction.READ,
                operation="GetPatient",
            )  # fmt: skip
        response = pb.GetPatientResponse(patient=patient_to(record.patient))
        if record.golden_record is not None:
            response.golden_record.CopyFrom(golden_record_to(record.golden_record))
        return response

    async def SearchPatients(  # noqa: N802 - named by the proto service
        self, request: pb.SearchPatientsRequest, context: Context
    ) -> pb.SearchPatientsResponse:
        """Records by normalised name, birth date and identifier (all criteria must hold)."""
        principal = await self._principal(
            context, READERS, "searching patients", "SearchPatients", AccessAction.SEARCH
        )
        async with _errors(context):
            identifier = None
            if request.HasField("identifier"):
                identifier = PatientIdentifier(request.identifier.system, request.identifier.value)
            query = PatientSearch(
                family_name=request.family_name, given_name=request.given_name,
                birth_date=request.birth_date, identifier=identifier,
                limit=min(request.page_size or DEFAULT_PAGE, MAX_PAGE),
            )  # fmt: skip
            if query.is_empty:
                raise InvalidRequest([_violation("criteria", "at least one criterion is needed")])
            after = None
            if request.written_patient_id:
                after = (patient_id_from(request.written_patient_id, "written_patient_id"),
                         request.min_version)  # fmt: skip
            patients = await self._app.search_patients(
                query, after=after, timeout_s=read_wait_s(context, max_wait_s=self._max_wait_s)
            )
        await self._record_search(
            context, principal, [p.patient_id for p in patients], "SearchPatients"
        )
        return pb.SearchPatientsResponse(patients=[patient_to(p) for p in patients])

    async def FindMatches(  # noqa: N802 - named by the proto service
        self, request: pb.FindMatchesRequest, context: Context
    ) -> pb.FindMatchesResponse:
        """Candidates for some demographics or a record, scored and explained field by field."""
        principal = await self._principal(
            context, READERS, "matching patients", "FindMatches", AccessAction.SEARCH,
            patient_id=request.patient_id,
        )  # fmt: skip
        limit = min(request.max_results or 10, MAX_PAGE)
        async with _errors(context):
            subject = request.WhichOneof("subject")
            if subject == "patient_id":
                candidates = await self._app.find_matches_for(
                    patient_id_from(request.patient_id), min_version=request.min_version,
                    timeout_s=read_wait_s(context, max_wait_s=self._max_wait_s), limit=limit,
                )  # fmt: skip
            elif subject == "demographics":
                candidates = await self._app.find_matches(
                    demographics_from(request.demographics), limit=limit
                )
            else:
                raise InvalidRequest([_violation("subject", "demographics or patient_id")])
        found = [str(c.patient_id) for c in candidates]
        if subject == "patient_id" and request.patient_id not in found:
            found.insert(0, request.patient_id)
        await self._record_search(context, principal, found, "FindMatches")
        return pb.FindMatchesResponse(candidates=[candidate_to(c) for c in candidates])

    async def LinkPatients(  # noqa: N802 - named by the proto service
        self, request: pb.LinkPatientsRequest, context: Context
    ) -> pb.LinkPatientsResponse:
        """Record that two records are the same person (registrars only)."""
        principal = await self._principal(
            context, (Role.REGISTRAR,), "linking patients", "LinkPatients", AccessAction.UPDATE,
            patient_id=request.patient_id,
        )  # fmt: skip
        async with _errors(context):
            require_request_id(request.request_id)
            outcome = await self._app.link_patients(
                _command(context, principal, request.request_id),
                patient_id_from(request.patient_id),
                patient_id_from(request.other_patient_id, "other_patient_id"),
            )
        return pb.LinkPatientsResponse(
            anchor_patient_id=str(outcome.anchor_patient_id), version=outcome.version
        )

    async def UnlinkPatients(  # noqa: N802 - named by the proto service
        self, request: pb.UnlinkPatientsRequest, context: Context
    ) -> pb.UnlinkPatientsResponse:
        """Reverse a link (registrars only)."""
        principal = await self._principal(
            context, (Role.REGISTRAR,), "unlinking patients", "UnlinkPatients",
            AccessAction.UPDATE, patient_id=request.patient_id,
        )  # fmt: skip
        async with _errors(context):
            require_request_id(request.request_id)
            outcome = await self._app.unlink_patients(
                _command(context, principal, request.request_id),
                patient_id_from(request.patient_id),
                patient_id_from(request.other_patient_id, "other_patient_id"),
                reason=request.reason,
            )
        return pb.UnlinkPatientsResponse(
            anchor_patient_id=str(outcome.anchor_patient_id), version=outcome.version
        )

    async def ForgetPatient(  # noqa: N802 - named by the proto service
        self, request: pb.ForgetPatientRequest, context: Context
    ) -> pb.ForgetPatientResponse:
        """Record the right to erasure; read models drop the demographics (registrars only)."""
        principal = await self._principal(
            context, (Role.REGISTRAR,), "forgetting patients", "ForgetPatient",
            AccessAction.DELETE, patient_id=request.patient_id,
        )  # fmt: skip
        async with _errors(context):
            require_request_id(request.request_id)
            version = await self._app.forget_patient(
                _command(context, principal, request.request_id),
                patient_id_from(request.patient_id),
                reason=request.reason,
            )
        return pb.ForgetPatientResponse(version=version)

    async def _principal(
        self,
        context: Context,
        roles: tuple[Role, ...],
        what: str,
        operation: str,
        action: AccessAction,
        *,
        patient_id: str = "",
    ) -> Principal:
        principal = await authenticate(context, self._verifier)
        if not principal.has(*roles):
            await deny(
                context, principal, f"{what} needs the role {' or '.join(roles)}",
                access_log=self._access_log, patient_id=patient_id, record_type=RECORD_TYPE,
                record_ids=[patient_id] if patient_id else [], category=CATEGORY,
                action=action, operation=operation,
            )  # fmt: skip
        return principal

    async def _record_search(
        self, context: Context, principal: Principal, patient_ids: list[str], operation: str
    ) -> None:
        """One access record per patient served; one without a patient when none was."""
        for patient_id in patient_ids or [""]:
            await self._access_log.record_read(
                context, principal, patient_id=patient_id, record_type=RECORD_TYPE,
                record_ids=[patient_id] if patient_id else [], category=CATEGORY,
                action=AccessAction.SEARCH, operation=operation,
            )  # fmt: skip


def _command(context: Context, principal: Principal, request_id: str) -> CommandContext:
    return command_context(context, actor=principal.actor, request_id=request_id)


def _violation(field: str, description: str) -> FieldViolation:
    return FieldViolation(field, description)


@asynccontextmanager
async def _errors(context: Context) -> AsyncIterator[None]:
    """Map the application's errors to status codes; messages carry ids, never PHI."""
    try:
        yield
    except InvalidRequest as invalid:
        await invalid_argument(context, invalid.violations)
    except InvalidDemographics as invalid:
        await invalid_argument(context, invalid.violations)
    except CannotLinkToItself as error:
        await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(error))
    except PatientNotFound as error:
        await _abort(context, grpc.StatusCode.NOT_FOUND, str(error))
    except PatientDomainError as error:
        await _abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(error))
    except ReadModelBehind:
        await _abort(context, grpc.StatusCode.DEADLINE_EXCEEDED,
                     "the read model did not reach the requested version in time")  # fmt: skip
    except (EventLogError, SecurityError) as error:
        await abort_for(context, error)


async def _abort(context: Context, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("unreachable: abort raises")
