"""Orders and results together: an order is placed, signed, resulted, and hears of its result.

Both services run in-process against the real servers, each with its own event log, database
and state; they talk only through their event topics, as in production.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.patients import PatientRegistry, patient_registry
from clinical_testing.plugin import TopicFactory, unique_name
from clinical_testing.tokens import TokenMint
from clinical_testing.waiting import once_recorded
from pymongo.asynchronous.database import AsyncDatabase

from clinical.orders.v1 import orders_pb2 as orders_pb
from clinical.orders.v1.orders_pb2_grpc import OrderServiceStub
from clinical.results.v1 import results_pb2 as results_pb
from clinical.results.v1.results_pb2_grpc import ResultServiceStub
from clinical_platform.clients.kafka import build_admin
from clinical_platform.eventlog.topics import ensure_topic, event_topic_spec, events_topic
from clinical_platform.grpc_server import GrpcService, start_grpc_server
from clinical_platform.principals import Role
from clinical_platform.projections import dead_letter_topic
from orders.bootstrap import running_orders
from orders.settings import OrdersSettings
from results.bootstrap import running_results
from results.settings import ResultsSettings

pytestmark = pytest.mark.integration


@dataclass
class Clinic:
    orders: OrderServiceStub
    results: ResultServiceStub
    clinician: tuple[tuple[str, str], ...]
    signer: tuple[tuple[str, str], ...]
    lab: tuple[tuple[str, str], ...]
    # Registers patients' data keys as the patient service does (this clinic runs none).
    patients: PatientRegistry


async def _serve(stack: AsyncExitStack, services: list[GrpcService]) -> grpc.aio.Channel:
    server = await start_grpc_server(host="127.0.0.1", port=0, services=services)
    stack.push_async_callback(server.stop, 0)
    return await stack.enter_async_context(grpc.aio.insecure_channel(f"127.0.0.1:{server.port}"))


@pytest.fixture
async def clinic(
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any], token_mint: TokenMint,
    tmp_path: Path, kafka_topic: TopicFactory,
) -> AsyncIterator[Clinic]:  # fmt: skip
    orders_log, results_log = unique_name("orders-"), unique_name("results-")
    access_topic = await kafka_topic(prefix="clinical.audit.access-test.")
    shared = {
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap_servers,
        "VAULT_ADDR": servers.vault_addr,
        "VAULT_TOKEN": servers.vault_token,
        "MONGODB_URL": servers.mongodb_url, "grpc_port": 0, "event_partitions": 3,
        "ACCESS_AUDIT_TOPIC": access_topic, "ACCESS_AUDIT_PARTITIONS": 1,
    }  # fmt: skip
    orders_settings = OrdersSettings.model_validate(
        shared | {
            "event_log_name": orders_log, "mongodb_database": f"{mongo_database.name}_o",
            "state_dir": tmp_path / "orders", "results_events_topic": events_topic(results_log),
        }
    )  # fmt: skip
    results_settings = ResultsSettings.model_validate(
        shared | {
            "event_log_name": results_log, "mongodb_database": f"{mongo_database.name}_r",
            "state_dir": tmp_path / "results", "orders_events_topic": events_topic(orders_log),
        }
    )  # fmt: skip
    # Each service listens to the other's topic: create both before either starts.
    admin = build_admin(servers.kafka)
    await admin.start()
    for log in (orders_log, results_log):
        spec = event_topic_spec(log, partitions=3, replication_factor=1, min_insync_replicas=1)
        await ensure_topic(admin, spec)
    try:
        async with AsyncExitStack() as stack:
            orders = await stack.enter_async_context(
                running_orders(orders_settings, verifier=token_mint.verifier_for("orders"))
            )
            results = await stack.enter_async_context(
                running_results(results_settings, verifier=token_mint.verifier_for("results"))
            )
            patients = await stack.enter_async_context(patient_registry(orders_settings))
            yield Clinic(
                orders=OrderServiceStub(await _serve(stack, list(orders.services))),
                results=ResultServiceStub(await _serve(stack, list(results.services))),
                clinician=token_mint.metadata("dr-a", Role.CLINICIAN),
                signer=token_mint.metadata(
                    "dr-b", Role.CLINICIAN, privileges=["orders:sign"], mfa=True
                ),
                lab=token_mint.metadata("lab-1", Role.LAB),
                patients=patients,
            )
    finally:
        topics = [events_topic(log) for log in (orders_log, results_log)]
        await admin.delete_topics(topics + [dead_letter_topic(topic) for topic in topics])
        await admin.close()
        for suffix in ("_o", "_r"):
            await mongo_database.client.drop_database(f"{mongo_database.name}{suffix}")


async def place_and_sign(clinic: Clinic) -> tuple[str, int]:
    placed = await clinic.orders.PlaceOrder(
        orders_pb.PlaceOrderRequest(
            request_id=str(uuid.uuid4()), patient_id=await clinic.patients.register(),
            test_code="2823-3",
            priority=orders_pb.PRIORITY_STAT,
            reason_codes=[orders_pb.ReasonCode(system=orders_pb.CODE_SYSTEM_ICD10, code="N18.3")],
        ),
        metadata=clinic.clinician, timeout=10,
    )  # fmt: skip
    signed = await clinic.orders.SignOrder(
        orders_pb.SignOrderRequest(request_id=str(uuid.uuid4()), order_id=placed.order_id),
        metadata=clinic.signer, timeout=10,
    )  # fmt: skip
    return placed.order_id, signed.version


def potassium(value: str) -> results_pb.Observation:
    return results_pb.Observation(
        code="2823-3", quantity=results_pb.Quantity(value=value, unit="mmol/L")
    )


async def test_a_signed_order_is_resulted_and_orders_hears_of_it(clinic: Clinic) -> None:
    order_id, signed_version = await place_and_sign(clinic)

    posted = await clinic.results.PostResult(
        results_pb.PostResultRequest(
            request_id=str(uuid.uuid4()), order_id=order_id, order_min_version=signed_version,
            observations=[potassium("6.9")],
        ),
        metadata=clinic.lab, timeout=10,
    )  # fmt: skip
    # OrderResulted is for orders' results listener to record: until then the version is
    # OUT_OF_RANGE (not waited for), so the client asks again.
    order = await once_recorded(lambda: clinic.orders.GetOrder(
        orders_pb.GetOrderRequest(order_id=order_id, min_version=signed_version + 1),
        metadata=clinic.clinician, timeout=10,
    ))  # fmt: skip

    assert order.order.status == orders_pb.ORDER_STATUS_RESULTED
    assert order.order.result_id == posted.result_id
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await clinic.orders.CancelOrder(
            orders_pb.CancelOrderRequest(request_id="late", order_id=order_id, reason="late"),
            metadata=clinic.clinician, timeout=10,
        )  # fmt: skip
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_results_refuses_an_order_it_has_seen_cancelled(clinic: Clinic) -> None:
    order_id, _ = await place_and_sign(clinic)
    cancelled = await clinic.orders.CancelOrder(
        orders_pb.CancelOrderRequest(request_id="c-1", order_id=order_id, reason="declined"),
        metadata=clinic.clinician, timeout=10,
    )  # fmt: skip

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await clinic.results.PostResult(
            results_pb.PostResultRequest(
                request_id="r-1", order_id=order_id, order_min_version=cancelled.version,
                observations=[potassium("4.0")],
            ),
            metadata=clinic.lab, timeout=10,
        )  # fmt: skip

    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
