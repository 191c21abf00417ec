"""GetOrder of an exact version or as of an instant, and ListOrders by test, placing time and
with its total, on the real servers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from clinical_testing.patients import PatientRegistry
from google.protobuf.timestamp_pb2 import Timestamp
from pymongo.asynchronous.database import AsyncDatabase

from clinical.orders.v1 import orders_pb2 as pb
from clinical.orders.v1.orders_pb2_grpc import OrderServiceStub
from orders.adapters.order_projection import ORDERS_COLLECTION

pytestmark = pytest.mark.integration

PlaceOrder = Callable[..., Awaitable[pb.PlaceOrderResponse]]
SignOrder = Callable[[str], Awaitable[pb.SignOrderResponse]]
Metadata = tuple[tuple[str, str], ...]


def timestamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


async def test_each_version_and_the_one_current_at_an_instant_are_read_back(
    place_order: PlaceOrder, sign_order: SignOrder, order_stub: OrderServiceStub,
    clinician: Metadata, lab: Metadata,
) -> None:  # fmt: skip
    placed = await place_order()
    signed = await sign_order(placed.order_id)
    await asyncio.sleep(0.05)  # the instant below falls between two recorded versions
    between = datetime.now(UTC)
    await asyncio.sleep(0.05)
    cancel = pb.CancelOrderRequest(request_id=str(uuid.uuid4()), order_id=placed.order_id,
                                   reason="ordered twice")  # fmt: skip
    cancelled = await order_stub.CancelOrder(cancel, metadata=clinician, timeout=10)

    async def read(**fields: Any) -> pb.Order:
        request = pb.GetOrderRequest(order_id=placed.order_id, **fields)
        order: pb.Order = (await order_stub.GetOrder(request, metadata=lab, timeout=10)).order
        return order

    first = await read(version=1)
    second = await read(version=signed.version)
    current = await read(min_version=cancelled.version)
    at_between = await read(as_of=timestamp(between))

    assert (first.version, first.status) == (1, pb.ORDER_STATUS_DRAFT)
    assert not first.HasField("signature")
    assert not first.HasField("cancellation")
    assert (second.version, second.status) == (2, pb.ORDER_STATUS_SIGNED)
    assert second.signature.signer
    assert not second.HasField("cancellation")
    assert (current.version, current.status) == (3, pb.ORDER_STATUS_CANCELLED)
    assert at_between == second
    assert (
        first.recorded_at.ToDatetime()
        <= second.recorded_at.ToDatetime()
        <= between.replace(tzinfo=None)
        < current.recorded_at.ToDatetime()
    )
    assert (first.test_code, first.patient_id) == (current.test_code, current.patient_id)


async def test_a_version_never_recorded_is_out_of_range_and_an_instant_before_is_not_found(
    place_order: PlaceOrder, order_stub: OrderServiceStub, lab: Metadata
) -> None:
    before = datetime.now(UTC) - timedelta(days=1)
    placed = await place_order()

    with pytest.raises(grpc.aio.AioRpcError) as beyond:
        await order_stub.GetOrder(pb.GetOrderRequest(order_id=placed.order_id, version=2),
                                  metadata=lab, timeout=10)  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as too_early:
        await order_stub.GetOrder(
            pb.GetOrderRequest(order_id=placed.order_id, as_of=timestamp(before)),
            metadata=lab, timeout=10,
        )  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as both:
        await order_stub.GetOrder(
            pb.GetOrderRequest(order_id=placed.order_id, version=1, as_of=timestamp(before)),
            metadata=lab, timeout=10,
        )  # fmt: skip

    assert beyond.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert too_early.value.code() == grpc.StatusCode.NOT_FOUND
    assert both.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_orders_are_listed_by_test_and_placing_time_with_the_total_of_every_page(
    place_order: PlaceOrder, order_stub: OrderServiceStub, lab: Metadata,
    mongo_database: AsyncDatabase[Any], registered_patients: PatientRegistry,
) -> None:  # fmt: skip
    patient_id = await registered_patients.register()
    glucose = [await place_order(patient_id=patient_id) for _ in range(3)]
    start = datetime.now(UTC)
    await asyncio.sleep(0.01)
    hemoglobin = await place_order(patient_id=patient_id, test_code="718-7")
    await order_stub.GetOrder(pb.GetOrderRequest(order_id=hemoglobin.order_id, min_version=1),
                              metadata=lab, timeout=10)  # fmt: skip

    async def listed(**fields: Any) -> tuple[set[str], int]:
        request = pb.ListOrdersRequest(patient_id=patient_id, page_size=2, **fields)
        page = await order_stub.ListOrders(request, metadata=lab, timeout=10)
        return {o.order_id for o in page.orders}, page.total

    glucose_ids = {placed.order_id for placed in glucose}
    first_glucose_page, glucose_total = await listed(test_codes=["2345-7"])
    assert first_glucose_page < glucose_ids
    assert glucose_total == 3
    assert await listed(test_codes=["718-7"]) == ({hemoglobin.order_id}, 1)
    assert (await listed(test_codes=["2345-7", "718-7"]))[1] == 4
    assert await listed(authored_from=timestamp(start)) == ({hemoglobin.order_id}, 1)
    before, before_total = await listed(authored_to=timestamp(start))
    assert before <= glucose_ids
    assert before_total == 3
    assert await listed(test_codes=["2160-0"]) == (set(), 0)
    # The test's filter is an equality on top-level fields, which FerretDB pushes down to an
    # index (docs/read-models.md; on a collection this small PostgreSQL may still scan).
    indexes = await mongo_database[ORDERS_COLLECTION].index_information()
    explained = await mongo_database.command(
        "explain",
        {"find": ORDERS_COLLECTION, "filter": {"patient_id": patient_id, "test_code": "718-7"}},
    )
    assert "patient_test_placed" in indexes
    assert explained["filterPushdown"]


async def test_a_listing_whose_window_ends_before_it_starts_is_invalid(
    order_stub: OrderServiceStub, lab: Metadata
) -> None:
    now = datetime.now(UTC)
    request = pb.ListOrdersRequest(patient_id=str(uuid.uuid4()), authored_from=timestamp(now),
                                   authored_to=timestamp(now - timedelta(hours=1)))  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await order_stub.ListOrders(request, metadata=lab, timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
