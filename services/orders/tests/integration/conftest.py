"""An orders service per test: real event store, Mongo read model and projections, in-process.

Each test gets its own event log (a unique log name, so a unique topic), its own results topic
to listen to, its own database, state folder and consumer groups.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from clinical_testing.endpoints import ServerEndpoints, isolated_service_values
from clinical_testing.kafka import delete_event_log
from clinical_testing.patients import PatientRegistry
from clinical_testing.plugin import TopicFactory, unique_name
from clinical_testing.serving import channel_to
from clinical_testing.tokens import TokenMint
from clinical_testing.waiting import eventually
from pymongo.asynchronous.database import AsyncDatabase

from clinical.orders.v1 import orders_pb2 as pb
from clinical.orders.v1 import orders_pb2_grpc
from clinical_platform.care.relationships import CARE_RELATIONSHIPS, ORDERING
from clinical_platform.principals import Role
from orders.bootstrap import RunningOrders, running_orders
from orders.settings import OrdersSettings

Metadata = tuple[tuple[str, str], ...]
PlaceOrder = Callable[..., Awaitable[pb.PlaceOrderResponse]]
SignOrder = Callable[[str], Awaitable[pb.SignOrderResponse]]
TIMEOUT_S = 10


@pytest.fixture
async def orders_settings(
    servers: ServerEndpoints,
    mongo_database: AsyncDatabase[Any],
    kafka_topic: TopicFactory,
    tmp_path: Path,
) -> AsyncIterator[OrdersSettings]:
    """Settings of an orders service with an event log, results topic and database of its own."""
    results_topic = await kafka_topic(prefix="clinical.results-test.", partitions=3)
    access_topic = await kafka_topic(prefix="clinical.audit.access-test.")
    values = isolated_service_values(
        servers, event_log_name=unique_name("orders-"), database=mongo_database.name,
        state_dir=tmp_path / "state", access_topic=access_topic,
    )  # fmt: skip
    settings = OrdersSettings.model_validate(values | {"results_events_topic": results_topic})
    yield settings
    await delete_event_log(
        servers.kafka_bootstrap_servers, settings.event_log_name, settings.results_events_topic
    )


@pytest.fixture
async def orders_service(
    orders_settings: OrdersSettings, token_mint: TokenMint
) -> AsyncIterator[RunningOrders]:
    """A running orders service (event store started, projections running)."""
    async with running_orders(
        orders_settings, verifier=token_mint.verifier_for("orders")
    ) as running:
        yield running


@pytest.fixture
async def order_stub(
    orders_service: RunningOrders,
) -> AsyncIterator[orders_pb2_grpc.OrderServiceStub]:
    """A client of the service, served on a free loopback port."""
    async with channel_to(orders_service.services) as channel:
        yield orders_pb2_grpc.OrderServiceStub(channel)


@pytest.fixture
def clinician(token_mint: TokenMint) -> Metadata:
    return token_mint.metadata("dr-ordering", Role.CLINICIAN)


@pytest.fixture
def lab(token_mint: TokenMint) -> Metadata:
    return token_mint.metadata("lab-1", Role.LAB)


@pytest.fixture
def signer(token_mint: TokenMint) -> Metadata:
    return token_mint.metadata("dr-signing", Role.CLINICIAN, privileges=["orders:sign"], mfa=True)


@pytest.fixture
def place_order(
    order_stub: orders_pb2_grpc.OrderServiceStub, clinician: Metadata,
    mongo_database: AsyncDatabase[Any], registered_patients: PatientRegistry,
) -> PlaceOrder:  # fmt: skip
    """Place a glucose order (fields and metadata overridable; the patient a newly registered
    one) and return the response, once the service knows that its orderer has a care
    relationship with the patient."""
    relationships = mongo_database[CARE_RELATIONSHIPS]

    async def place(metadata: Metadata = clinician, **fields: Any) -> pb.PlaceOrderResponse:
        if "patient_id" not in fields:
            fields["patient_id"] = await registered_patients.register()
        defaults: dict[str, Any] = {
            "request_id": str(uuid.uuid4()),
            "test_code": "2345-7",
            "priority": pb.PRIORITY_ROUTINE,
            "reason_codes": [pb.ReasonCode(system=pb.CODE_SYSTEM_ICD10, code="E11.9")],
        }
        request = pb.PlaceOrderRequest(**(defaults | fields))
        response: pb.PlaceOrderResponse = await order_stub.PlaceOrder(
            request, metadata=metadata, timeout=TIMEOUT_S
        )
        ordering = {"patient_id": request.patient_id, "basis": ORDERING, "active": True}
        assert await eventually(lambda: relationships.find_one(ordering), within_s=TIMEOUT_S)
        return response

    return place


@pytest.fixture
def sign_order(order_stub: orders_pb2_grpc.OrderServiceStub, signer: Metadata) -> SignOrder:
    """Sign an order as a clinician holding orders:sign with an MFA token."""

    async def sign(order_id: str) -> pb.SignOrderResponse:
        request = pb.SignOrderRequest(request_id=str(uuid.uuid4()), order_id=order_id)
        response: pb.SignOrderResponse = await order_stub.SignOrder(
            request, metadata=signer, timeout=TIMEOUT_S
        )
        return response

    return sign
