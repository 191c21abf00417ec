"""Commands reach the replica that owns the partition: one retry at the named owner."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import grpc
import pytest

from clinical.orders.v1 import orders_pb2 as pb
from clinical_platform.grpc_errors import PARTITION_OWNER_METADATA_KEY
from gateway.adapters.downstream import GrpcDownstream, InvalidRequestBodyError
from gateway.ports import DownstreamCall

pytestmark = pytest.mark.unit

ORDER_ID = "7d5c1c4e-2f59-4f0e-9d0a-0b9b1f8c2a10"
Handler = Callable[[pb.GetOrderRequest, grpc.aio.ServicerContext], object]


async def _replica(behaviour: Handler) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        behaviour, request_deserializer=pb.GetOrderRequest.FromString,
        response_serializer=pb.GetOrderResponse.SerializeToString,
    )  # fmt: skip
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("clinical.orders.v1.OrderService",
                                              {"GetOrder": handler})]
    )  # fmt: skip
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
async def replicas() -> AsyncIterator[tuple[str, str, list[str]]]:
    """(non-owner, owner, who answered): the non-owner points at the owner."""
    answered: list[str] = []

    async def owner(request: pb.GetOrderRequest, context: grpc.aio.ServicerContext) -> object:
        answered.append("owner")
        return pb.GetOrderResponse(order=pb.Order(order_id=request.order_id, version=3))

    owner_server, owner_address = await _replica(owner)

    async def other(request: pb.GetOrderRequest, context: grpc.aio.ServicerContext) -> object:
        answered.append("other")
        context.set_trailing_metadata(((PARTITION_OWNER_METADATA_KEY, owner_address),))
        await context.abort(grpc.StatusCode.UNAVAILABLE, "not the partition owner")
        raise AssertionError("abort raises")

    other_server, other_address = await _replica(other)
    yield other_address, owner_address, answered
    await other_server.stop(0)
    await owner_server.stop(0)


async def test_an_ownership_miss_is_retried_once_at_the_owner(
    replicas: tuple[str, str, list[str]],
) -> None:
    other, _, answered = replicas
    downstream = GrpcDownstream({"orders": other})
    try:
        answer = await downstream.call(
            DownstreamCall("orders", "GetOrder", {"order_id": ORDER_ID}), "t"
        )
    finally:
        await downstream.close()
    assert answer.status == "OK"
    assert answer.body["order"]["order_id"] == ORDER_ID
    assert answered == ["other", "owner"]
    assert downstream.owner_retries == 1


async def test_values_that_do_not_fit_the_message_are_refused_before_any_call() -> None:
    downstream = GrpcDownstream({"orders": "127.0.0.1:1"})
    with pytest.raises(InvalidRequestBodyError):
        await downstream.call(DownstreamCall("orders", "GetOrder", {"min_version": "x"}), "t")
    with pytest.raises(InvalidRequestBodyError):
        await downstream.call(DownstreamCall("orders", "GetOrder", {"nope": 1}), "t")
