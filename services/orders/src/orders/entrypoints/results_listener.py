"""Orders hears of results: ResultPosted on the results topic records OrderResulted.

The listener runs on the ProjectionRunner (durable checkpoints, dead letters) although it writes
events rather than documents. Every replica reads the whole results topic in a consumer group
of its own and acts only on orders in the partitions it owns, because only the owner of a
partition may append to it. The ResultPosted event's id is the command's request id, so a
redelivered event records nothing twice; the OrderResulted envelope names that event as its
cause and keeps its correlation id.

A ResultPosted for an order orders refuses (unknown, or cancelled in the moment between the
results service seeing it signed and the result being posted) raises, which sends the event to
the dead-letter topic for someone to look at; the listener goes on with the next one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC
from typing import Any
from uuid import UUID

from pymongo.asynchronous.database import AsyncDatabase

from clinical.events.v1 import provenance_pb2, results_events_pb2
from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.eventlog.context import Actor, CommandContext
from clinical_platform.eventlog.errors import EventLogUnavailableError
from clinical_platform.projections import TopicProjection
from orders.application import OrdersApp

logger = logging.getLogger(__name__)

RESULT_POSTED = "ResultPosted"
_RETRY_DELAY_S = 1.0


class ResultsListener(TopicProjection):
    """A `Projection` of the results topic whose effect is OrderResulted events."""

    def __init__(
        self,
        app: OrdersApp,
        *,
        name: str,
        results_topic: str,
        owns: Callable[[str], bool],
        service_subject: str,
    ) -> None:
        super().__init__(name=name, topic=results_topic)  # it keeps no documents
        self._app = app
        self._owns = owns
        self._actor_subject = service_subject

    async def apply(self, envelope: Envelope, db: AsyncDatabase[Any]) -> None:
        """Record OrderResulted for a ResultPosted about an order this replica owns."""
        if envelope.event_type != RESULT_POSTED:
            return
        posted = results_events_pb2.ResultPosted.FromString(envelope.payload)
        if not self._owns(posted.order_id):
            return
        order_id, result_id = UUID(posted.order_id), UUID(envelope.aggregate_id)
        context = self._context_of(envelope)
        while True:
            try:
                await self._app.record_result(
                    order_id, context, result_id=result_id,
                    resulted_at=posted.issued_at.ToDatetime(tzinfo=UTC),
                )  # fmt: skip
            except EventLogUnavailableError:
                # The append's outcome is unknown; retrying with the same request id is safe.
                logger.warning(
                    "event log unavailable; retrying", extra={"event_id": envelope.event_id}
                )
                await asyncio.sleep(_RETRY_DELAY_S)
                continue
            return

    def _context_of(self, envelope: Envelope) -> CommandContext:
        purpose = provenance_pb2.PurposeOfUse.Name(envelope.purpose_of_use)
        return CommandContext(
            actor=Actor(
                subject=self._actor_subject,
                roles=("service",),
                on_behalf_of=envelope.actor.subject,
            ),
            request_id=f"event:{envelope.event_id}",
            purpose_of_use=purpose.removeprefix("PURPOSE_OF_USE_"),
            correlation_id=envelope.correlation_id,
            causation_id=envelope.event_id,
        )
