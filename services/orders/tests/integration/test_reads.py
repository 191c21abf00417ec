"""GetOrder and ListOrders on the real servers: waiting for versions, pages, who reads what."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from clinical_testing.patients import PatientRegistry
from clinical_testing.tokens import TokenMint

from clinical.orders.v1 import orders_pb2 as pb
from clinical.orders.v1.orders_pb2_grpc import OrderServiceStub
from clinical_platform.principals import Role

pytestmark = pytest.mark.integration

PlaceOrder = Callable[..., Awaitable[pb.PlaceOrderResponse]]
SignOrder = Callable[[str], Awaitable[pb.SignOrderResponse]]
Fields = Callable[[grpc.aio.AioRpcError], list[str]]
Metadata = tuple[tuple[str, str], ...]


async def code_of(call: Awaitable[object]) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    code: grpc.StatusCode = refused.value.code()
    return code


async def test_reading_an_unknown_order_is_not_found(
    order_stub: OrderServiceStub, lab: Metadata
) -> None:
    # Lab staff read every order, so they may hear one does not exist (a clinician may not:
    # tests/integration/test_reads_by_relationship.py).
    call = order_stub.GetOrder(
        pb.GetOrderRequest(order_id=str(uuid.uuid4())), metadata=lab, timeout=10
    )
    assert await code_of(call) == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("beyond", [2, 2**63 - 1])
async def test_a_version_the_log_does_not_hold_is_out_of_range_without_waiting(
    place_order: PlaceOrder, order_stub: OrderServiceStub, lab: Metadata,
    violated_fields: Fields, beyond: int,
) -> None:  # fmt: skip
    placed = await place_order()

    # A deadline far beyond the service's read wait: had it waited, it would answer
    # DEADLINE_EXCEEDED once its wait ran out.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await order_stub.GetOrder(
            pb.GetOrderRequest(order_id=placed.order_id, min_version=beyond),
            metadata=lab, timeout=60,
        )  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as listing_refused:
        await order_stub.ListOrders(
            pb.ListOrdersRequest(
                patient_id=str(uuid.uuid4()), min_version=beyond,
                min_version_order_id=placed.order_id,
            ),
            metadata=lab, timeout=60,
        )  # fmt: skip

    for answer in (refused.value, listing_refused.value):
        assert answer.code() == grpc.StatusCode.OUT_OF_RANGE
        assert violated_fields(answer) == ["min_version"]


BREAK_GLASS = (("x-purpose-of-use", "ETREAT"), ("x-break-glass-reason", "collapsed in clinic"))


@pytest.mark.parametrize("staff", ["lab", "clinician by break-glass"])
async def test_lab_staff_and_a_clinician_by_break_glass_read_any_patients_order(
    place_order: PlaceOrder, order_stub: OrderServiceStub, token_mint: TokenMint, staff: str
) -> None:
    placed = await place_order()
    metadata = (
        token_mint.metadata("staff", Role.LAB) if staff == "lab"
        else (*token_mint.metadata("dr-elsewhere", Role.CLINICIAN), *BREAK_GLASS)
    )  # fmt: skip
    got = await order_stub.GetOrder(
        pb.GetOrderRequest(order_id=placed.order_id, min_version=1), metadata=metadata, timeout=10
    )
    assert got.order.order_id == placed.order_id


async def test_a_patient_reads_their_own_order_and_no_one_elses(
    place_order: PlaceOrder, order_stub: OrderServiceStub, token_mint: TokenMint,
    registered_patients: PatientRegistry,
) -> None:  # fmt: skip
    mine, theirs = await registered_patients.register(), await registered_patients.register()
    my_order = await place_order(patient_id=mine)
    their_order = await place_order(patient_id=theirs)
    patient = token_mint.metadata("p-1", Role.PATIENT, patient_id=mine)

    got = await order_stub.GetOrder(
        pb.GetOrderRequest(order_id=my_order.order_id, min_version=1), metadata=patient, timeout=10
    )
    denied = order_stub.GetOrder(
        pb.GetOrderRequest(order_id=their_order.order_id, min_version=1),
        metadata=patient, timeout=10,
    )  # fmt: skip

    assert got.order.patient_id == mine
    assert await code_of(denied) == grpc.StatusCode.PERMISSION_DENIED


async def test_a_patient_cannot_tell_an_unknown_order_from_someone_elses(
    place_order: PlaceOrder, order_stub: OrderServiceStub, token_mint: TokenMint
) -> None:
    theirs = await place_order()
    staff = token_mint.metadata("staff", Role.LAB)
    await order_stub.GetOrder(  # in the read model: the patient's reads need not wait
        pb.GetOrderRequest(order_id=theirs.order_id, min_version=1), metadata=staff, timeout=10
    )
    patient = token_mint.metadata("p-2", Role.PATIENT, patient_id=str(uuid.uuid4()))

    answers = set()
    for order_id, min_version in itertools.product((theirs.order_id, str(uuid.uuid4())), (0, 1)):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await order_stub.GetOrder(
                pb.GetOrderRequest(order_id=order_id, min_version=min_version),
                metadata=patient,
                timeout=10,
            )
        answers.add((refused.value.code(), refused.value.details()))

    # Not found, and no version 1 in the log for an unknown id: refused as someone else's.
    [(code, _)] = answers
    assert code == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("role", [Role.REGISTRAR, Role.SERVICE, Role.AUDITOR])
async def test_other_roles_do_not_read_orders(
    order_stub: OrderServiceStub, token_mint: TokenMint, role: Role
) -> None:
    metadata = token_mint.metadata("someone", role)
    get = order_stub.GetOrder(
        pb.GetOrderRequest(order_id=str(uuid.uuid4())), metadata=metadata, timeout=10
    )
    listing = order_stub.ListOrders(
        pb.ListOrdersRequest(patient_id=str(uuid.uuid4())), metadata=metadata, timeout=10
    )
    assert await code_of(get) == grpc.StatusCode.PERMISSION_DENIED
    assert await code_of(listing) == grpc.StatusCode.PERMISSION_DENIED


async def test_reads_without_a_token_are_unauthenticated(order_stub: OrderServiceStub) -> None:
    get = order_stub.GetOrder(pb.GetOrderRequest(order_id=str(uuid.uuid4())), timeout=10)
    listing = order_stub.ListOrders(pb.ListOrdersRequest(), timeout=10)
    assert await code_of(get) == grpc.StatusCode.UNAUTHENTICATED
    assert await code_of(listing) == grpc.StatusCode.UNAUTHENTICATED


async def test_a_patients_orders_list_newest_first_by_status_in_pages(
    place_order: PlaceOrder, sign_order: SignOrder, order_stub: OrderServiceStub,
    clinician: Metadata, registered_patients: PatientRegistry,
) -> None:  # fmt: skip
    patient_id = await registered_patients.register()
    placed = [await place_order(patient_id=patient_id) for _ in range(5)]
    await place_order()  # another patient's
    signed = await sign_order(placed[1].order_id)
    for order in placed:  # each order is read-after-write on its own partition
        await order_stub.GetOrder(
            pb.GetOrderRequest(order_id=order.order_id, min_version=1),
            metadata=clinician, timeout=10,
        )  # fmt: skip

    pages, token = [], ""
    while True:
        page = await order_stub.ListOrders(
            pb.ListOrdersRequest(
                patient_id=patient_id, page_size=2, page_token=token,
                min_version=signed.version, min_version_order_id=placed[1].order_id,
            ),
            metadata=clinician, timeout=10,
        )  # fmt: skip
        pages.append([order.order_id for order in page.orders])
        token = page.next_page_token
        if not token:
            break
    only_signed = await order_stub.ListOrders(
        pb.ListOrdersRequest(patient_id=patient_id, status=pb.ORDER_STATUS_SIGNED),
        metadata=clinician, timeout=10,
    )  # fmt: skip

    assert [len(page) for page in pages] == [2, 2, 1]
    assert [order_id for page in pages for order_id in page] == [
        p.order_id for p in reversed(placed)
    ]
    assert [order.order_id for order in only_signed.orders] == [placed[1].order_id]


async def test_a_patient_lists_their_own_orders_without_naming_themselves(
    place_order: PlaceOrder, order_stub: OrderServiceStub, token_mint: TokenMint,
    registered_patients: PatientRegistry,
) -> None:  # fmt: skip
    mine = await registered_patients.register()
    placed = await place_order(patient_id=mine)
    patient = token_mint.metadata("p-1", Role.PATIENT, patient_id=mine)

    listed = await order_stub.ListOrders(
        pb.ListOrdersRequest(min_version=1, min_version_order_id=placed.order_id),
        metadata=patient, timeout=10,
    )  # fmt: skip
    someone_else = order_stub.ListOrders(
        pb.ListOrdersRequest(patient_id=str(uuid.uuid4())), metadata=patient, timeout=10
    )

    assert [order.order_id for order in listed.orders] == [placed.order_id]
    assert await code_of(someone_else) == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("request_fields", "violated"),
    [
        ({}, ["patient_id"]),
        ({"patient_id": "nobody"}, ["patient_id"]),
        ({"patient_id": str(uuid.UUID(int=1)), "page_size": 201}, ["page_size"]),
        ({"patient_id": str(uuid.UUID(int=1)), "min_version": 2}, ["min_version_order_id"]),
        ({"patient_id": str(uuid.UUID(int=1)), "page_token": "not-ours"}, ["page_token"]),
    ],
    ids=["no-patient", "patient-not-uuid", "page-too-large", "version-without-id", "bad-token"],
)
async def test_malformed_listings_are_invalid_arguments(
    order_stub: OrderServiceStub, lab: Metadata, violated_fields: Fields,
    request_fields: dict[str, Any], violated: list[str],
) -> None:  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await order_stub.ListOrders(
            pb.ListOrdersRequest(**request_fields), metadata=lab, timeout=10
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(refused.value) == violated
