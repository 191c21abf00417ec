"""Composition root of the orders service: the one place that builds clients and wires them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version

from clinical.orders.v1 import orders_pb2_grpc
from clinical_platform.access.log import AccessAuditLog
from clinical_platform.care.relationships import CareRelationshipsProjection, care_relationships
from clinical_platform.eventlog.repository import AggregateRepository
from clinical_platform.eventlog.store import EventStore
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.grpc_server import GrpcService
from clinical_platform.health import HealthCheck
from clinical_platform.lifecycle import running_service
from clinical_platform.projections import Projection
from clinical_platform.runtime import (
    serve_grpc,
    service_runtime,
    token_verifier,
)
from clinical_platform.security.forgetting import ForgottenPatients
from clinical_platform.tokens import TokenVerifier
from orders.adapters.event_catalog import ORDER_EVENTS
from orders.adapters.lab_test_catalogue import CsvLabTestCatalogue
from orders.adapters.order_documents import MongoOrderReadModel
from orders.adapters.order_projection import ORDERS_COLLECTION, OrdersProjection
from orders.application import OrdersApp
from orders.entrypoints.grpc import OrderServicer
from orders.entrypoints.results_listener import ResultsListener
from orders.settings import OrdersSettings

SERVICE = "orders"
GRPC_SERVICE_NAME = "clinical.orders.v1.OrderService"


def orders_projections(settings: OrdersSettings) -> list[Projection]:
    """The read model projection of the orders topic (consumer group ``<log name>.orders``) and
    the care relationships (the patient topic's care teams, the orders topic's orderers)."""
    name = settings.event_log_name
    return [
        OrdersProjection(name=f"{name}.orders", topic=events_topic(name)),
        CareRelationshipsProjection(
            name=f"{name}.care-relationships", patient_topic=settings.patient_events_topic,
            orders_topic=events_topic(name),
        ),
    ]  # fmt: skip


@dataclass(frozen=True)
class RunningOrders:
    """What a running orders service offers its host: the gRPC services and its parts."""

    services: Sequence[GrpcService]
    app: OrdersApp
    store: EventStore
    access_log: AccessAuditLog
    health_checks: Sequence[HealthCheck] = ()


@asynccontextmanager
async def running_orders(
    settings: OrdersSettings, *, verifier: TokenVerifier | None = None
) -> AsyncIterator[RunningOrders]:
    """Start the access log, the event store and the projections; stop them (in reverse) after
    the caller is done serving.

    ``verifier`` replaces the one built from the JWT settings (tests pass their own).
    """
    service = settings.event_log_name
    async with running_service(
        settings, service=SERVICE, database=settings.mongodb_database
    ) as parts:
        store = await parts.event_store(service=service)
        security = parts.security
        orders = AggregateRepository(
            store, ORDER_EVENTS, source=f"//clinical/{service}",
            cipher=security.cipher, patient_of=lambda order: str(order.patient_id),
        )  # fmt: skip
        app = OrdersApp(
            orders,
            CsvLabTestCatalogue.bundled(),
            MongoOrderReadModel(parts.database[ORDERS_COLLECTION]),
        )
        listener = ResultsListener(
            app,
            name=f"{service}.results-listener.r{settings.replica_ordinal}",
            results_topic=settings.results_events_topic,
            owns=lambda order_id: store.partition_of(order_id) in store.owned_partitions,
            service_subject=f"service:{service}",
        )
        # The live half of crypto-shredding: drop the patient's key and cached orders, mark the
        # read model, as soon as the patient service records PatientForgotten.
        forgotten = ForgottenPatients(
            name=f"{service}.forgotten-patients.r{settings.replica_ordinal}",
            patient_topic=settings.patient_events_topic,
            marked_collections=[ORDERS_COLLECTION],
            on_forgotten=[security.keyring.evict, orders.evict_patient],
        )
        parts.run_projections([*orders_projections(settings), listener, forgotten])
        servicer = OrderServicer(
            app, verifier or token_verifier(settings), parts.access_log,
            care_relationships(parts.database), max_wait_s=settings.read_wait_max_s,
        )  # fmt: skip
        register = partial(orders_pb2_grpc.add_OrderServiceServicer_to_server, servicer)
        yield RunningOrders(
            [GrpcService(GRPC_SERVICE_NAME, register)], app, store, parts.access_log,
            parts.health_checks,
        )  # fmt: skip


async def serve(settings: OrdersSettings) -> None:
    """Run the orders service until SIGTERM or SIGINT, then stop gracefully."""
    async with (
        service_runtime(settings, name=SERVICE, version=version("clinical-orders")),
        running_orders(settings) as orders,
    ):
        await serve_grpc(settings, services=orders.services, health_checks=orders.health_checks)
