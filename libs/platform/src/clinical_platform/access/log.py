"""`AccessAuditLog`: what a servicer calls to record each read of patient data and each refusal.

In a query RPC, after the data is fetched and before it is returned::

    await self._access_log.record_read(
        context, principal, patient_id=order.patient_id, record_type="Order",
        record_ids=[order.id], category="orders", action=AccessAction.READ, operation="GetOrder",
    )

and for a refusal, through `clinical_platform.grpc_auth.deny`::

    await deny(context, principal, "not this patient's record", access_log=self._access_log,
               patient_id=request.patient_id, record_type="Order", operation="GetOrder")

``record_read`` returns once the record is on the local disk, and fails the RPC with
UNAVAILABLE when it cannot be: data whose access cannot be audited is not served.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import grpc

from clinical.audit.v1.access_pb2 import AccessRecord
from clinical_platform.access.origin import request_origin
from clinical_platform.access.outbox import AccessAuditUnavailableError, AsyncOutbox, OutboxEntry
from clinical_platform.access.publisher import (
    AccessAuditConfig,
    KafkaAccessTopic,
    OutboxPublisher,
    SinkFactory,
)
from clinical_platform.access.records import (
    AccessAction,
    AccessOutcome,
    AccessTarget,
    access_record,
    record_key,
)
from clinical_platform.background import stop_tasks

if TYPE_CHECKING:
    from clinical_platform.principals import Principal

logger = logging.getLogger(__name__)


class AccessAuditLog:
    """Records accesses durably at once and publishes them to Kafka in the background.

    ``start()`` opens the outbox, creates the access topic (waiting at most ``start_timeout_s``
    for Kafka, never failing for it) and starts the publisher; a restart publishes whatever an
    earlier process left pending. ``stop()`` publishes what it can
    within ``stop_timeout_s``; ``stop(flush=False)`` leaves everything for the next start. An
    instance is started and stopped once; a process that starts again builds a new one.
    """

    def __init__(
        self, config: AccessAuditConfig, sink_factory: SinkFactory = KafkaAccessTopic
    ) -> None:
        self._config = config
        self._outbox = AsyncOutbox(config.outbox_path)
        self._publisher = OutboxPublisher(self._outbox, config, sink_factory)
        self._task: asyncio.Task[None] | None = None
        self._open = False

    @property
    def config(self) -> AccessAuditConfig:
        return self._config

    @property
    def published(self) -> int:
        """Records this instance has seen acknowledged by Kafka."""
        return self._publisher.published

    async def start(self) -> None:
        await self._outbox.open()
        self._open = True
        await self._publisher.connect()
        self._task = asyncio.create_task(self._publisher.run(), name="access-audit-publisher")

    async def stop(self, *, flush: bool = True) -> None:
        if self._task is not None:
            await stop_tasks([self._task])
            self._task = None
        if flush and self._open:
            try:
                async with asyncio.timeout(self._config.stop_timeout_s):
                    while await self._publisher.publish_pending():
                        pass
            except Exception as error:
                logger.warning("access records left in the outbox for the next start",
                               extra={"error": type(error).__name__})  # fmt: skip
        await self._publisher.close()
        self._open = False
        await self._outbox.close()

    async def pending(self) -> int:
        """Records waiting in the outbox for Kafka."""
        return await self._outbox.count()

    async def record(self, record: AccessRecord) -> None:
        """Store the record durably (fsynced) and have it published.

        Raises `AccessAuditUnavailableError` when it cannot be stored.
        """
        if not self._open:
            raise AccessAuditUnavailableError("the access audit log is not started")
        entry = OutboxEntry(record.record_id, record_key(record), record.SerializeToString())
        await self._outbox.add(entry)
        self._publisher.notify()

    async def record_read(
        self,
        context: grpc.aio.ServicerContext,
        principal: Principal,
        *,
        patient_id: str,
        record_type: str,
        record_ids: Sequence[str] = (),
        category: str = "",
        action: AccessAction = AccessAction.READ,
        operation: str = "",
        break_glass_reason: str = "",
    ) -> None:
        """Record that ``principal`` was served these records; UNAVAILABLE if that fails.

        ``break_glass_reason``: the read was allowed by break-glass only, for this reason (the
        record is flagged for review).
        """
        target = AccessTarget(patient_id, record_type, record_ids, category, action, operation)
        try:
            await self._record_call(
                context, principal, target, AccessOutcome.SUCCESS, "",
                break_glass_reason=break_glass_reason,
            )  # fmt: skip
        except AccessAuditUnavailableError as failed:
            logger.error("read not served: the access could not be audited",
                         extra={"error": str(failed), "operation": operation})  # fmt: skip
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, "the access could not be audited; retry later"
            )

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
    ) -> None:
        """Record that ``principal`` was refused; never raises (the refusal stands anyway)."""
        target = AccessTarget(patient_id, record_type, record_ids, category, action, operation)
        await self._record_quietly(context, principal, target, AccessOutcome.DENIED, reason)

    async def _record_quietly(
        self,
        context: grpc.aio.ServicerContext,
        principal: Principal,
        target: AccessTarget,
        outcome: AccessOutcome,
        reason: str,
    ) -> None:
        try:
            await self._record_call(context, principal, target, outcome, reason)
        except AccessAuditUnavailableError as failed:
            logger.error("access outcome could not be audited",
                         extra={"error": str(failed), "outcome": outcome.value,
                                "operation": target.operation})  # fmt: skip

    async def _record_call(
        self,
        context: grpc.aio.ServicerContext,
        principal: Principal,
        target: AccessTarget,
        outcome: AccessOutcome,
        reason: str,
        *,
        break_glass_reason: str = "",
    ) -> None:
        record = access_record(
            actor=principal.actor,
            target=target,
            origin=request_origin(context),
            outcome=outcome,
            source=self._config.source,
            reason=reason,
            break_glass_reason=break_glass_reason,
        )
        await self.record(record)
