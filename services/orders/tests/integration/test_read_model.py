"""The orders read model: a replay from scratch rebuilds it exactly; poison is dead-lettered."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.kafka import record_values
from clinical_testing.patients import PatientRegistry
from clinical_testing.tokens import TokenMint
from clinical_testing.waiting import eventually
from pymongo.asynchronous.database import AsyncDatabase

from clinical.orders.v1 import orders_pb2 as pb
from clinical.orders.v1.orders_pb2_grpc import OrderServiceStub
from clinical_platform.clients.kafka import build_producer
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.grpc_server import start_grpc_server
from clinical_platform.principals import Role
from clinical_platform.projections import dead_letter_topic
from clinical_platform.projections.entrypoint import project
from orders.adapters.order_projection import ORDERS_COLLECTION
from orders.bootstrap import orders_projections, running_orders
from orders.settings import OrdersSettings

pytestmark = pytest.mark.integration

Metadata = tuple[tuple[str, str], ...]


async def record_some_history(
    stub: OrderServiceStub, token_mint: TokenMint, patient_id: str
) -> None:
    clinician = token_mint.metadata("dr-a", Role.CLINICIAN)
    signer = token_mint.metadata("dr-b", Role.CLINICIAN, privileges=["orders:sign"], mfa=True)
    latest: dict[str, int] = {}
    for test_code in ("2345-7", "718-7", "2160-0", "2823-3"):
        placed = await stub.PlaceOrder(
            pb.PlaceOrderRequest(
                request_id=str(uuid.uuid4()), patient_id=patient_id, test_code=test_code,
                priority=pb.PRIORITY_ROUTINE,
                reason_codes=[pb.ReasonCode(system=pb.CODE_SYSTEM_ICD10, code="R73.9")],
            ),
            metadata=clinician, timeout=10,
        )  # fmt: skip
        latest[placed.order_id] = placed.version
    first, second, third, _ = latest
    for order_id in (first, second):
        request = pb.SignOrderRequest(request_id=str(uuid.uuid4()), order_id=order_id)
        latest[order_id] = (await stub.SignOrder(request, metadata=signer, timeout=10)).version
    cancel = pb.CancelOrderRequest(request_id=str(uuid.uuid4()), order_id=third, reason="dup")
    latest[third] = (await stub.CancelOrder(cancel, metadata=clinician, timeout=10)).version
    for order_id, version in latest.items():
        read = pb.GetOrderRequest(order_id=order_id, min_version=version)
        await stub.GetOrder(read, metadata=clinician, timeout=10)


async def test_replaying_the_topic_from_scratch_rebuilds_the_same_documents(
    orders_settings: OrdersSettings, token_mint: TokenMint, mongo_database: AsyncDatabase[Any],
    second_database: AsyncDatabase[Any], registered_patients: PatientRegistry,
) -> None:  # fmt: skip
    async with running_orders(
        orders_settings, verifier=token_mint.verifier_for("orders")
    ) as running:
        server = await start_grpc_server(host="127.0.0.1", port=0, services=running.services)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            await record_some_history(
                OrderServiceStub(channel), token_mint, await registered_patients.register()
            )
        await server.stop(0)
    live = await mongo_database[ORDERS_COLLECTION].find().sort("_id").to_list()

    rebuilt_settings = orders_settings.model_copy(update={"mongodb_database": second_database.name})
    # The orders read model alone (care relationships follow the patient topic too).
    [orders_only] = [p for p in orders_projections(rebuilt_settings)
                     if p.collections == (ORDERS_COLLECTION,)]  # fmt: skip
    replayed = await project(rebuilt_settings, [orders_only], rebuild=True)

    rebuilt = await second_database[ORDERS_COLLECTION].find().sort("_id").to_list()
    assert replayed == 7  # 4 placed, 2 signed, 1 cancelled
    assert len(live) == 4
    for live_document, rebuilt_document in zip(live, rebuilt, strict=True):
        assert rebuilt_document == live_document
    indexes = await second_database[ORDERS_COLLECTION].index_information()
    assert {"patient_placed", "patient_status_placed"} <= set(indexes)


async def test_a_poison_event_is_dead_lettered_and_the_projection_keeps_going(
    servers: ServerEndpoints, orders_settings: OrdersSettings, order_stub: OrderServiceStub,
    clinician: Metadata, registered_patients: PatientRegistry,
) -> None:  # fmt: skip
    topic = events_topic(orders_settings.event_log_name)
    producer = build_producer(servers.kafka)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"\xff not an envelope", key=b"poison")
    finally:
        await producer.stop()

    placed = await order_stub.PlaceOrder(
        pb.PlaceOrderRequest(
            request_id="after-poison", patient_id=await registered_patients.register(),
            test_code="718-7",
            priority=pb.PRIORITY_ROUTINE,
            reason_codes=[pb.ReasonCode(system=pb.CODE_SYSTEM_ICD10, code="D64.9")],
        ),
        metadata=clinician, timeout=10,
    )  # fmt: skip

    got = await order_stub.GetOrder(
        pb.GetOrderRequest(order_id=placed.order_id, min_version=1), metadata=clinician, timeout=10
    )
    assert got.order.test_code == "718-7"
    dead = await eventually(
        lambda: record_values(
            servers.kafka_bootstrap_servers, dead_letter_topic(topic), committed=False
        )
    )
    # Each projection of the topic (orders, care relationships) sets the poison aside.
    assert dead
    assert set(dead) == {b"\xff not an envelope"}
