"""The read RPCs of PatientService: a record (now, at a version or as of a time), searches,
listings and match candidates, each access-logged per patient served."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeAlias
from uuid import UUID

import grpc

from clinical.patient.v1 import patient_pb2 as pb
from clinical_platform.access.records import AccessAction
from clinical_platform.care.reads import Access, PatientReads
from clinical_platform.grpc_context import read_wait_s
from clinical_platform.grpc_errors import StatusTable, failures_as_status
from clinical_platform.principals import Principal
from patient import policy
from patient.application import PatientApp
from patient.entrypoints.responses import candidate_to, golden_record_to, patient_to
from patient.entrypoints.translate import (
    listing_from,
    match_limit,
    match_subject_from,
    patient_id_from,
    search_from,
    version_read_from,
)

Context: TypeAlias = grpc.aio.ServicerContext


class ReadRpcs:
    """GetPatient, SearchPatients, ListPatients and FindMatches (mixed into `PatientServicer`)."""

    _app: PatientApp
    _reads: PatientReads
    _statuses: StatusTable
    _max_wait_s: float
    # The servicer's: authenticate, decide by policy, deny and audit a refusal.
    _authorize: Callable[..., Awaitable[Principal]]

    async def GetPatient(  # noqa: N802 - named by the proto service
        self, request: pb.GetPatientRequest, context: Context
    ) -> pb.GetPatientResponse:
        """A record, its links and golden record, once the read model reached ``min_version``."""
        principal = await self._authorize(
            context, policy.RECORD_READERS.refusal_to_read, "GetPatient", AccessAction.READ,
            patient_id=request.patient_id,
        )  # fmt: skip
        async with failures_as_status(context, self._statuses):
            asked = patient_id_from(request.patient_id)  # its form reveals no record
            version, as_of = version_read_from(request)
        access = await self._reads.authorize(
            context, principal, request.patient_id, operation="GetPatient",
            record_ids=[request.patient_id],
        )  # fmt: skip
        async with failures_as_status(context, self._statuses):
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
        async with failures_as_status(context, self._statuses):
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
            async with failures_as_status(context, self._statuses):
                total = max(total, await self._app.count_patients(query))
        return pb.SearchPatientsResponse(patients=[patient_to(p) for p in patients], total=total)

    async def ListPatients(  # noqa: N802 - named by the proto service
        self, request: pb.ListPatientsRequest, context: Context
    ) -> pb.ListPatientsResponse:
        """Records not forgotten, by id, a page at a time (registrars and system principals)."""
        principal = await self._authorize(context, policy.LIST, "ListPatients", AccessAction.SEARCH)
        async with failures_as_status(context, self._statuses):
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
        async with failures_as_status(context, self._statuses):
            subject = match_subject_from(request)
        # A record's candidates are scored against its demographics: a read of that record.
        access = await self._reads.authorize(
            context, principal, request.patient_id, operation="FindMatches",
            action=AccessAction.SEARCH, record_ids=[request.patient_id],
        ) if isinstance(subject, UUID) else Access(unrestricted=True)  # fmt: skip
        async with failures_as_status(context, self._statuses):
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
