"""`PatientReads`: a servicer's door to patients' records when reads depend on care relationships.

Per read: the caller's grant is decided before anything is fetched that could reveal whether a
record exists (`PatientRecordReaders.read_patient`); a refusal is PERMISSION_DENIED and an access
record; a break-glass read is served, recorded with its reason and flag, and counted
(``clinical_break_glass_reads_total``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc

from clinical_platform.access.log import AccessAuditLog
from clinical_platform.access.records import AccessAction
from clinical_platform.authorization import PatientRecordReaders, ReadGrant
from clinical_platform.break_glass import BreakGlass, declared_break_glass
from clinical_platform.care.relationships import CareRelationships
from clinical_platform.grpc_auth import deny
from clinical_platform.observability.access import break_glass_read
from clinical_platform.principals import Principal


@dataclass(frozen=True)
class Access:
    """How a call may read: the patients it is related to, and its break-glass if it has one."""

    related: frozenset[str] = frozenset()
    break_glass: BreakGlass | None = None
    unrestricted: bool = False

    def reason_for(self, patient_id: str) -> str:
        """The break-glass reason to record for a read of ``patient_id`` ("" when none needed)."""
        if self.unrestricted or patient_id in self.related or self.break_glass is None:
            return ""
        return self.break_glass.reason


@dataclass(frozen=True)
class RecordOwner:
    """Whose a record is: its patient, and whether the record itself relates the caller."""

    patient_id: str
    related: bool = False


@dataclass(frozen=True)
class PatientReads:
    """Decides and records reads of one service's records of patients."""

    readers: PatientRecordReaders
    relationships: CareRelationships
    access_log: AccessAuditLog
    record_type: str
    category: str

    async def access(
        self, context: grpc.aio.ServicerContext, principal: Principal, patient_ids: Iterable[str]
    ) -> Access:
        """The caller's access to ``patient_ids``: one indexed lookup when it needs one."""
        if not self.readers.needs_relationship(principal):
            # Staff who read every patient's records, or a patient: break-glass means nothing.
            return Access(unrestricted=principal.has(*self.readers.staff))
        ids = [p for p in patient_ids if p]
        related = await self.relationships.related_patients(principal.subject, ids)
        return Access(frozenset(related), declared_break_glass(context.invocation_metadata() or ()))

    async def authorize(
        self,
        context: grpc.aio.ServicerContext,
        principal: Principal,
        patient_id: str,
        *,
        operation: str,
        action: AccessAction = AccessAction.READ,
        record_ids: Sequence[str] = (),
        related: bool = False,
    ) -> Access:
        """The access to ``patient_id``'s records, or PERMISSION_DENIED (audited).

        ``related``: the record read shows the relationship itself (the order's orderer is the
        caller), so it holds even before the relationships' read model has caught up.
        """
        access = await self.access(context, principal, [patient_id])
        if related:
            access = Access(access.related | {patient_id}, access.break_glass, access.unrestricted)
        decision = self.readers.read_patient(
            principal, patient_id, related=patient_id in access.related,
            break_glass=access.break_glass is not None,
        )  # fmt: skip
        if decision.refusal is not None:
            await deny(
                context, principal, decision.refusal, access_log=self.access_log,
                patient_id=patient_id, record_type=self.record_type, record_ids=record_ids,
                category=self.category, action=action, operation=operation,
            )  # fmt: skip
        if decision.grant is ReadGrant.ROLE:
            return Access(unrestricted=True)
        return access

    @asynccontextmanager
    async def hiding_absence(
        self,
        missing: type[Exception] | tuple[type[Exception], ...],
        context: grpc.aio.ServicerContext,
        principal: Principal,
        *,
        owner: Callable[[], Awaitable[RecordOwner | None]],
        operation: str,
        record_ids: Sequence[str],
    ) -> AsyncIterator[None]:
        """Around a read of one record: when it raises ``missing`` (not found; a version the log
        does not hold), only a caller who may read the record's patient hears so; anyone else
        is refused as for a record outside their reach (audited), so no answer reveals which
        ids exist. ``owner`` names the record's patient as the read model has it now (None:
        not there), and whether the record shows the caller related (its orderer)."""
        try:
            yield
        except missing:
            if not await self._may_learn_absence(context, principal, await owner()):
                refusal = self.readers.refusal_to_learn_absence(principal)
                await deny(
                    context, principal, refusal or "", access_log=self.access_log,
                    record_type=self.record_type, record_ids=record_ids,
                    category=self.category, operation=operation,
                )  # fmt: skip
            raise

    async def _may_learn_absence(
        self, context: grpc.aio.ServicerContext, principal: Principal, owner: RecordOwner | None
    ) -> bool:
        if self.readers.refusal_to_learn_absence(principal) is None:
            return True
        if owner is None:
            return False
        access = await self.access(context, principal, [owner.patient_id])
        related = owner.related or owner.patient_id in access.related
        decision = self.readers.read_patient(
            principal, owner.patient_id, related=related, break_glass=access.break_glass is not None
        )
        return decision.grant is not None

    def readable(
        self, principal: Principal, access: Access, patient_ids: Iterable[str]
    ) -> list[str]:
        """Which of ``patient_ids`` (e.g. a search's hits) the caller may be served."""
        return [
            patient_id
            for patient_id in patient_ids
            if access.unrestricted
            or self.readers.read_patient(
                principal, patient_id, related=patient_id in access.related,
                break_glass=access.break_glass is not None,
            ).grant is not None
        ]  # fmt: skip

    async def record_read(
        self,
        context: grpc.aio.ServicerContext,
        principal: Principal,
        access: Access,
        *,
        patient_id: str,
        record_ids: Sequence[str],
        operation: str,
        action: AccessAction = AccessAction.READ,
        break_glass_reason: str | None = None,
    ) -> None:
        """Record the read (UNAVAILABLE when it cannot be); count it when it broke the glass.

        ``break_glass_reason`` overrides the access's own for ``patient_id`` (a record read
        under the grant for another, e.g. a linked record of the same person).
        """
        reason = access.reason_for(patient_id) if break_glass_reason is None else break_glass_reason
        await self.access_log.record_read(
            context, principal, patient_id=patient_id, record_type=self.record_type,
            record_ids=record_ids, category=self.category, action=action, operation=operation,
            break_glass_reason=reason,
        )  # fmt: skip
        if reason:
            break_glass_read()
