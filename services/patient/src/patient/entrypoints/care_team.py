"""The care-team RPCs of PatientService: assignments that give clinicians care relationships."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeAlias
from uuid import UUID

import grpc

from clinical.patient.v1 import patient_pb2 as pb
from clinical_platform.access.records import AccessAction
from clinical_platform.eventlog.context import CommandContext
from clinical_platform.grpc_context import command_context
from clinical_platform.grpc_errors import StatusTable, failures_as_status
from clinical_platform.principals import Principal
from patient import policy
from patient.care_team import CareTeamApp
from patient.entrypoints.translate import care_team_change_from

Context: TypeAlias = grpc.aio.ServicerContext
CareTeamChange = Callable[[CommandContext, UUID, str], Awaitable[int]]


class CareTeamRpcs:
    """AssignCareTeamMember and EndCareTeamMember (mixed into `PatientServicer`)."""

    _care_team: CareTeamApp
    _statuses: StatusTable
    # The servicer's: authenticate, decide by policy, deny and audit a refusal.
    _authorize: Callable[..., Awaitable[Principal]]

    async def AssignCareTeamMember(  # noqa: N802 - named by the proto service
        self, request: pb.AssignCareTeamMemberRequest, context: Context
    ) -> pb.AssignCareTeamMemberResponse:
        """Put a clinician on the patient's care team (registrars; clinicians with the right)."""
        version = await self._change_care_team(
            request, context, "AssignCareTeamMember", self._care_team.assign_care_team_member
        )
        return pb.AssignCareTeamMemberResponse(version=version)

    async def EndCareTeamMember(  # noqa: N802 - named by the proto service
        self, request: pb.EndCareTeamMemberRequest, context: Context
    ) -> pb.EndCareTeamMemberResponse:
        """Take a clinician off the patient's care team, with a reason."""

        async def end(command: CommandContext, patient_id: UUID, member: str) -> int:
            return await self._care_team.end_care_team_member(
                command, patient_id, member, reason=request.reason
            )

        version = await self._change_care_team(request, context, "EndCareTeamMember", end)
        return pb.EndCareTeamMemberResponse(version=version)

    async def _change_care_team(
        self,
        request: pb.AssignCareTeamMemberRequest | pb.EndCareTeamMemberRequest,
        context: Context,
        operation: str,
        change: CareTeamChange,
    ) -> int:
        principal: Principal = await self._authorize(
            context, policy.manage_care_team, operation, AccessAction.UPDATE,
            patient_id=request.patient_id,
        )  # fmt: skip
        async with failures_as_status(context, self._statuses):
            patient_id, member = care_team_change_from(request)
            command = command_context(context, actor=principal.actor, request_id=request.request_id)
            return await change(command, patient_id, member)
        raise AssertionError("unreachable: a failure aborts the call")
