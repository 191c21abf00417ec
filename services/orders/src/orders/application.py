"""The orders application: one method per command and query; load, decide, save, answer.

Commands run through the event log's repository: the order is loaded from the partition owner's
store, the domain decides, and the events are appended exactly once per request id. Queries read
the Mongo read model, waiting (bounded) for "at least version N".
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from clinical_platform.eventlog.context import CommandContext
from clinical_platform.reads import Clock, ReadModelBehind, require_recorded, utc_now
from clinical_platform.versions import VersionWanted, version_to_wait_for
from orders.domain.errors import OrderNotFound
from orders.domain.order import LabTestCatalogue, Order, Priority, ReasonCode
from orders.ports import (
    OrderPage,
    OrderQuery,
    OrderReadModel,
    OrderRepository,
    OrderView,
)

_ORDER_IDS = uuid.UUID("0b6a8f52-8f5e-4d7c-bc0e-5d1a3a9f4c21")


def order_id_for(subject: str, request_id: str) -> UUID:
    """The id a PlaceOrder creates: a retry by the same caller lands on the same order."""
    # The subject keeps two callers who happen to pick the same request id apart.
    return uuid.uuid5(_ORDER_IDS, f"{subject}\n{request_id}")


@dataclass(frozen=True)
class PlaceOrder:
    patient_id: UUID
    test_code: str
    priority: Priority
    reasons: Sequence[ReasonCode]


@dataclass(frozen=True)
class PlacedOrder:
    order_id: UUID
    version: int


class OrdersApp:
    """Places, signs and cancels orders, records their results, and answers order queries."""

    def __init__(
        self,
        orders: OrderRepository,
        catalogue: LabTestCatalogue,
        read_model: OrderReadModel,
        clock: Clock = utc_now,
    ) -> None:
        self._orders = orders
        self._catalogue = catalogue
        self._read_model = read_model
        self._clock = clock

    async def place_order(self, command: PlaceOrder, context: CommandContext) -> PlacedOrder:
        """Place a draft order; the orderer is the caller. Returns the id and version 1."""
        order_id = order_id_for(context.actor.subject, context.request_id)

        def place(current: Order | None) -> Order:
            if current is not None:  # created by this very request: nothing more to record
                return current
            return Order.place(
                order_id=order_id, patient_id=command.patient_id, test_code=command.test_code,
                priority=command.priority, reasons=command.reasons,
                orderer=context.actor.subject, at=self._clock(), catalogue=self._catalogue,
            )  # fmt: skip

        result = await self._orders.execute(order_id, context, place)
        return PlacedOrder(order_id, result.version)

    async def sign_order(
        self, order_id: UUID, context: CommandContext, *, mfa: bool, expected_version: int | None
    ) -> int:
        """Sign a draft order as the caller; ``mfa`` is what the caller's token asserts."""

        def sign(order: Order | None) -> Order:
            order = _existing(order, order_id)
            order.sign(signer=context.actor.subject, at=self._clock(), mfa=mfa)
            return order

        result = await self._orders.execute(
            order_id, context, sign, expected_version=expected_version
        )
        return result.version

    async def cancel_order(
        self, order_id: UUID, context: CommandContext, *, reason: str, expected_version: int | None
    ) -> int:
        """Cancel a draft or signed order as the caller, saying why."""

        def cancel(order: Order | None) -> Order:
            order = _existing(order, order_id)
            order.cancel(by=context.actor.subject, reason=reason, at=self._clock())
            return order

        result = await self._orders.execute(
            order_id, context, cancel, expected_version=expected_version
        )
        return result.version

    async def record_result(
        self, order_id: UUID, context: CommandContext, *, result_id: UUID, resulted_at: datetime
    ) -> int:
        """Record that the results service posted a result for the order."""

        def resulted(order: Order | None) -> Order:
            order = _existing(order, order_id)
            order.record_result(result_id=result_id, at=resulted_at)
            return order

        return (await self._orders.execute(order_id, context, resulted)).version

    async def get_order(
        self, order_id: UUID, *, min_version: int, wait_s: float, wanted: VersionWanted = None
    ) -> OrderView:
        """The order at ``min_version`` or later, waiting up to ``wait_s`` for the read model;
        shown at ``wanted`` (an exact version or an instant) when given.

        A ``min_version`` or exact version the event log does not hold raises
        VersionNotRecorded at once; an instant before the order was placed OrderNotFound.
        """
        min_version = version_to_wait_for(self._orders, order_id, min_version, wanted)
        view = await self._read_model.get(
            str(order_id), min_version=min_version, wait_s=wait_s, wanted=wanted
        )
        if view is not None:
            return view
        if min_version:
            raise ReadModelBehind(min_version)
        raise OrderNotFound(order_id)

    async def list_orders(
        self, query: OrderQuery, *, after: tuple[UUID, int] | None = None, wait_s: float = 0.0
    ) -> OrderPage:
        """A page of orders; ``after`` = (order id, version) to read after that write first."""
        if after is not None:
            order_id, min_version = after
            require_recorded(self._orders, order_id, min_version)
            reached = await self._read_model.get(
                str(order_id), min_version=min_version, wait_s=wait_s
            )
            if reached is None:
                raise ReadModelBehind(min_version)
        return await self._read_model.list(query)


def _existing(order: Order | None, order_id: UUID) -> Order:
    if order is None:
        raise OrderNotFound(order_id)
    return order
