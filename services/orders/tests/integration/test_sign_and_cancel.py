"""SignOrder and CancelOrder on the real servers: the state machine, privileges, error codes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

import grpc
import pytest
from clinical_testing.tokens import TokenMint

from clinical.orders.v1 import orders_pb2 as pb
from clinical.orders.v1.orders_pb2_grpc import OrderServiceStub
from clinical_platform.principals import Role

pytestmark = pytest.mark.integration

PlaceOrder = Callable[..., Awaitable[pb.PlaceOrderResponse]]
SignOrder = Callable[[str], Awaitable[pb.SignOrderResponse]]
Fields = Callable[[grpc.aio.AioRpcError], list[str]]
Metadata = tuple[tuple[str, str], ...]


def sign_request(order_id: str, **fields: int) -> pb.SignOrderRequest:
    return pb.SignOrderRequest(request_id=str(uuid.uuid4()), order_id=order_id, **fields)


def cancel_request(order_id: str, reason: str = "ordered twice") -> pb.CancelOrderRequest:
    return pb.CancelOrderRequest(request_id=str(uuid.uuid4()), order_id=order_id, reason=reason)


async def code_of(call: Awaitable[object]) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    code: grpc.StatusCode = refused.value.code()
    return code


async def test_a_signed_order_shows_the_signature_of_the_mfa_authenticated_signer(
    place_order: PlaceOrder, sign_order: SignOrder, order_stub: OrderServiceStub,
    clinician: Metadata,
) -> None:  # fmt: skip
    placed = await place_order()

    signed = await sign_order(placed.order_id)

    got = await order_stub.GetOrder(
        pb.GetOrderRequest(order_id=placed.order_id, min_version=signed.version),
        metadata=clinician, timeout=10,
    )  # fmt: skip
    assert signed.version == 2
    assert got.order.status == pb.ORDER_STATUS_SIGNED
    assert (got.order.signature.signer, got.order.signature.mfa) == ("dr-signing", True)
    assert got.order.signature.signed_at.seconds > 0


async def test_the_signer_reads_the_order_they_signed_at_once(
    place_order: PlaceOrder, order_stub: OrderServiceStub, signer: Metadata
) -> None:
    # Signing relates the signer to the patient; the order itself says so before the care
    # relationship read model has caught up.
    placed = await place_order()
    signed = await order_stub.SignOrder(sign_request(placed.order_id), metadata=signer, timeout=10)

    got = await order_stub.GetOrder(
        pb.GetOrderRequest(order_id=placed.order_id, min_version=signed.version),
        metadata=signer, timeout=10,
    )  # fmt: skip

    assert got.order.signature.signer == "dr-signing"


async def test_a_retried_signature_returns_the_first_version(
    place_order: PlaceOrder, order_stub: OrderServiceStub, signer: Metadata
) -> None:
    placed = await place_order()
    request = sign_request(placed.order_id)

    first = await order_stub.SignOrder(request, metadata=signer, timeout=10)
    again = await order_stub.SignOrder(request, metadata=signer, timeout=10)

    assert first.version == again.version == 2


@pytest.mark.parametrize(
    ("roles", "privileges", "mfa"),
    [
        ((Role.CLINICIAN,), [], True),
        ((Role.CLINICIAN,), ["orders:sign"], False),
        ((Role.LAB,), ["orders:sign"], True),
    ],
    ids=["no-privilege", "no-mfa", "not-a-clinician"],
)
async def test_signing_needs_a_clinician_with_the_privilege_and_mfa(
    *, place_order: PlaceOrder, order_stub: OrderServiceStub, token_mint: TokenMint,
    roles: tuple[Role, ...], privileges: list[str], mfa: bool,
) -> None:  # fmt: skip
    placed = await place_order()
    metadata = token_mint.metadata("dr-x", *roles, privileges=privileges, mfa=mfa)

    call = order_stub.SignOrder(sign_request(placed.order_id), metadata=metadata, timeout=10)

    assert await code_of(call) == grpc.StatusCode.PERMISSION_DENIED


async def test_signing_an_unknown_order_is_not_found(
    order_stub: OrderServiceStub, signer: Metadata
) -> None:
    call = order_stub.SignOrder(sign_request(str(uuid.uuid4())), metadata=signer, timeout=10)
    assert await code_of(call) == grpc.StatusCode.NOT_FOUND


async def test_signing_a_signed_order_is_a_failed_precondition(
    place_order: PlaceOrder, sign_order: SignOrder
) -> None:
    placed = await place_order()
    await sign_order(placed.order_id)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await sign_order(placed.order_id)

    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.details() == f"order {placed.order_id} is signed and cannot be signed"


async def test_a_stale_expected_version_is_aborted(
    place_order: PlaceOrder, order_stub: OrderServiceStub, signer: Metadata
) -> None:
    placed = await place_order()
    stale = sign_request(placed.order_id, expected_version=0)

    assert await code_of(order_stub.SignOrder(stale, metadata=signer, timeout=10)) == (
        grpc.StatusCode.ABORTED
    )
    current = sign_request(placed.order_id, expected_version=1)
    assert (await order_stub.SignOrder(current, metadata=signer, timeout=10)).version == 2


async def test_a_malformed_order_id_is_an_invalid_argument(
    order_stub: OrderServiceStub, signer: Metadata, clinician: Metadata, violated_fields: Fields
) -> None:
    for call in [
        order_stub.SignOrder(sign_request("42"), metadata=signer, timeout=10),
        order_stub.CancelOrder(cancel_request("42"), metadata=clinician, timeout=10),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violated_fields(refused.value) == ["order_id"]


@pytest.mark.parametrize("sign_first", [False, True], ids=["draft", "signed"])
async def test_a_draft_or_signed_order_is_cancelled_with_its_reason(
    place_order: PlaceOrder, sign_order: SignOrder, order_stub: OrderServiceStub,
    clinician: Metadata, sign_first: bool,
) -> None:  # fmt: skip
    placed = await place_order()
    if sign_first:
        await sign_order(placed.order_id)

    cancelled = await order_stub.CancelOrder(
        cancel_request(placed.order_id, "patient declined"), metadata=clinician, timeout=10
    )

    got = await order_stub.GetOrder(
        pb.GetOrderRequest(order_id=placed.order_id, min_version=cancelled.version),
        metadata=clinician, timeout=10,
    )  # fmt: skip
    assert cancelled.version == (3 if sign_first else 2)
    assert got.order.status == pb.ORDER_STATUS_CANCELLED
    assert (got.order.cancellation.cancelled_by, got.order.cancellation.reason) == (
        "dr-ordering", "patient declined",
    )  # fmt: skip


async def test_cancelling_twice_is_a_failed_precondition_and_signing_it_too(
    place_order: PlaceOrder, sign_order: SignOrder, order_stub: OrderServiceStub,
    clinician: Metadata,
) -> None:  # fmt: skip
    placed = await place_order()
    await order_stub.CancelOrder(cancel_request(placed.order_id), metadata=clinician, timeout=10)

    again = order_stub.CancelOrder(cancel_request(placed.order_id), metadata=clinician, timeout=10)

    assert await code_of(again) == grpc.StatusCode.FAILED_PRECONDITION
    assert await code_of(sign_order(placed.order_id)) == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_cancellation_without_a_reason_is_an_invalid_argument(
    place_order: PlaceOrder, order_stub: OrderServiceStub, clinician: Metadata,
    violated_fields: Fields,
) -> None:  # fmt: skip
    placed = await place_order()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await order_stub.CancelOrder(
            cancel_request(placed.order_id, reason="  "), metadata=clinician, timeout=10
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(refused.value) == ["reason"]


async def test_cancelling_an_unknown_order_is_not_found(
    order_stub: OrderServiceStub, clinician: Metadata
) -> None:
    call = order_stub.CancelOrder(cancel_request(str(uuid.uuid4())), metadata=clinician, timeout=10)
    assert await code_of(call) == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("role", [Role.LAB, Role.PATIENT, Role.AUDITOR])
async def test_only_clinicians_cancel_orders(
    place_order: PlaceOrder, order_stub: OrderServiceStub, token_mint: TokenMint, role: Role
) -> None:
    placed = await place_order()
    metadata = token_mint.metadata("someone", role)
    call = order_stub.CancelOrder(cancel_request(placed.order_id), metadata=metadata, timeout=10)
    assert await code_of(call) == grpc.StatusCode.PERMISSION_DENIED


async def test_a_call_without_a_token_is_unauthenticated(order_stub: OrderServiceStub) -> None:
    for call in [
        order_stub.SignOrder(sign_request(str(uuid.uuid4())), timeout=10),
        order_stub.CancelOrder(cancel_request(str(uuid.uuid4())), timeout=10),
    ]:
        assert await code_of(call) == grpc.StatusCode.UNAUTHENTICATED


async def test_an_mfa_login_older_than_five_minutes_cannot_sign(
    place_order: PlaceOrder, order_stub: OrderServiceStub, token_mint: TokenMint
) -> None:
    placed = await place_order()
    stale = token_mint.metadata(
        "dr-signing", Role.CLINICIAN, privileges=["orders:sign"], mfa=True,
        auth_time=int(time.time()) - 6 * 60,
    )  # fmt: skip

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await order_stub.SignOrder(sign_request(placed.order_id), metadata=stale, timeout=10)

    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "in the last 5 minutes (auth_time)" in str(refused.value.details())


async def test_a_token_for_another_service_is_refused_with_its_reason(
    order_stub: OrderServiceStub, token_mint: TokenMint
) -> None:
    for_patient = token_mint.metadata("dr-ordering", Role.CLINICIAN, audience="clinical-patient")

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await order_stub.ListOrders(pb.ListOrdersRequest(), metadata=for_patient, timeout=10)

    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == (
        "the bearer token is not valid: not issued for this service (aud)"
    )
