"""The gRPC side of identity: the caller's principal from its bearer token, and refusals."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import NoReturn, Protocol

import grpc

from clinical_platform.access.records import AccessAction
from clinical_platform.authorization import PatientRecordReaders
from clinical_platform.jwks import KeySetUnavailableError
from clinical_platform.principals import Principal
from clinical_platform.tokens import AuthenticationError, TokenVerifier

logger = logging.getLogger(__name__)


async def authenticate(context: grpc.aio.ServicerContext, verifier: TokenVerifier) -> Principal:
    """The caller's principal, or abort the RPC with UNAUTHENTICATED."""
    metadata = dict(context.invocation_metadata() or ())
    scheme, _, token = str(metadata.get("authorization", "")).partition(" ")
    if scheme.lower() != "bearer" or not token:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "a bearer token is required")
    try:
        return await verifier.verify_current(token)
    except KeySetUnavailableError:
        # Our side's failure, not the caller's: they may retry once the token service answers.
        await context.abort(
            grpc.StatusCode.UNAVAILABLE, "the platform's token signing keys cannot be read now"
        )
    except AuthenticationError as refused:
        # The reason is the verifier's own words ("expired", "missing the jti claim"), never
        # the token's values.
        await context.abort(
            grpc.StatusCode.UNAUTHENTICATED, f"the bearer token is not valid: {refused}"
        )
    raise AssertionError("unreachable: abort raises")


class DenialRecorder(Protocol):
    """Records refused requests as access records (`access.log.AccessAuditLog` does)."""

    async def record_denial(
        self,
        context: grpc.aio.ServicerContext,
        principal: Principal,
        *,
        reason: str,
        patient_id: str = "",
        record_type: str = "",
        record_ids: Sequence[str] = (),
        category: str = "",
        action: AccessAction = AccessAction.READ,
        operation: str = "",
    ) -> None: ...


async def deny(
    context: grpc.aio.ServicerContext,
    principal: Principal,
    reason: str,
    *,
    access_log: DenialRecorder | None = None,
    patient_id: str = "",
    record_type: str = "",
    record_ids: Sequence[str] = (),
    category: str = "",
    action: AccessAction = AccessAction.READ,
    operation: str = "",
) -> NoReturn:
    """Refuse the RPC with PERMISSION_DENIED, and record who was refused and why (no PHI).

    With ``access_log``, the refusal also becomes an access record (outcome DENIED) naming what
    was asked for: the patient, the kind and ids of the records, the action attempted. It is on
    the local disk before the caller hears the refusal. ``reason`` is sent to the caller and
    recorded, so it must be the service's own words, never request values.
    """
    logger.warning(
        "permission denied",
        extra={"subject": principal.subject, "roles": sorted(principal.roles), "reason": reason},
    )
    if access_log is not None:
        await access_log.record_denial(
            context, principal, reason=reason, patient_id=patient_id, record_type=record_type,
            record_ids=record_ids, category=category, action=action, operation=operation,
        )  # fmt: skip
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, reason)
    raise AssertionError("unreachable: abort raises")


class ReadRecorder(DenialRecorder, Protocol):
    """Records reads and refusals as access records (`access.log.AccessAuditLog` does)."""

    async def record_read(
        self,
        context: grpc.aio.ServicerContext,
        principal: Principal,
        *,
        patient_id: str,
        record_type: str,
        record_ids: Sequence[str],
        category: str,
        action: AccessAction,
        operation: str,
    ) -> None: ...


@dataclass(frozen=True)
class RecordGate:
    """A servicer's door to one kind of record: who calls, refusals, and audited reads.

    Every refusal and every read names the record type and category of the service's records,
    so servicers state only what differs per call: the patient, the ids, the action.
    """

    verifier: TokenVerifier
    access_log: ReadRecorder
    record_type: str
    category: str

    async def caller(self, context: grpc.aio.ServicerContext) -> Principal:
        return await authenticate(context, self.verifier)

    async def reader(
        self,
        context: grpc.aio.ServicerContext,
        readers: PatientRecordReaders,
        *,
        operation: str,
        action: AccessAction = AccessAction.READ,
    ) -> Principal:
        """The caller, if ``readers`` lets them read these records at all; refused otherwise."""
        principal = await self.caller(context)
        await self.refuse_if(
            readers.refusal_to_read(principal), context, principal, operation=operation,
            action=action, patient_id=principal.patient_id,
        )  # fmt: skip
        return principal

    async def refuse_if(
        self,
        reason: str | None,
        context: grpc.aio.ServicerContext,
        principal: Principal,
        *,
        operation: str,
        action: AccessAction = AccessAction.READ,
        patient_id: str = "",
        record_ids: Sequence[str] = (),
    ) -> None:
        """Refuse (PERMISSION_DENIED, audited) when a policy decision gave a reason."""
        if reason is not None:
            await deny(
                context, principal, reason, access_log=self.access_log, patient_id=patient_id,
                record_type=self.record_type, record_ids=record_ids, category=self.category,
                action=action, operation=operation,
            )  # fmt: skip

    @asynccontextmanager
    async def hiding_absence(
        self,
        readers: PatientRecordReaders,
        missing: type[Exception] | tuple[type[Exception], ...],
        context: grpc.aio.ServicerContext,
        principal: Principal,
        *,
        operation: str,
        record_ids: Sequence[str],
    ) -> AsyncIterator[None]:
        """Around a read of one record: when it raises ``missing`` (not found; a version the log
        does not hold, which an unknown id has none of), a caller who may not learn of absence
        is refused as for another patient's record (audited); others hear ``missing``."""
        try:
            yield
        except missing:
            await self.refuse_if(
                readers.refusal_to_learn_absence(principal), context, principal,
                operation=operation, record_ids=record_ids,
            )  # fmt: skip
            raise

    async def record_read(
        self,
        context: grpc.aio.ServicerContext,
        principal: Principal,
        *,
        operation: str,
        patient_id: str,
        record_ids: Sequence[str],
        action: AccessAction = AccessAction.READ,
    ) -> None:
        await self.access_log.record_read(
            context, principal, patient_id=patient_id, record_type=self.record_type,
            record_ids=record_ids, category=self.category, action=action, operation=operation,
        )  # fmt: skip
