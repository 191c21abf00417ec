"""Composition root of the results service: the one place that builds clients and wires them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version

from clinical.results.v1 import results_pb2_grpc
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
from results.adapters.event_catalog import RESULT_EVENTS
from results.adapters.lab_catalogue import CsvLabCatalogue
from results.adapters.order_state_projection import ORDER_STATES_COLLECTION, OrderStatesProjection
from results.adapters.result_documents import MongoOrderStates, MongoResultReadModel
from results.adapters.result_projection import RESULTS_COLLECTION, ResultsProjection
from results.application import ResultsApp
from results.entrypoints.grpc import ResultServicer
from results.settings import ResultsSettings

SERVICE = "results"
GRPC_SERVICE_NAME = "clinical.results.v1.ResultService"


def results_projections(settings: ResultsSettings) -> list[Projection]:
    """The read models: results (from our topic), order states (from the orders topic) and care
    relationships (the patient topic's care teams, the orders topic's orderers)."""
    service = settings.event_log_name
    return [
        ResultsProjection(name=f"{service}.results", topic=events_topic(service)),
        OrderStatesProjection(
            name=f"{service}.order-states", orders_topic=settings.orders_events_topic
        ),
        CareRelationshipsProjection(
            name=f"{service}.care-relationships", patient_topic=settings.patient_events_topic,
            orders_topic=settings.orders_events_topic,
        ),
    ]  # fmt: skip


@dataclass(frozen=True)
class RunningResults:
    """What a running results service offers its host: the gRPC services and its parts."""

    services: Sequence[GrpcService]
    app: ResultsApp
    store: EventStore
    access_log: AccessAuditLog
    health_checks: Sequence[HealthCheck] = ()


@asynccontextmanager
async def running_results(
    settings: ResultsSettings, *, verifier: TokenVerifier | None = None
) -> AsyncIterator[RunningResults]:
    """Start the access log, the event store and the projections; stop them (in reverse) after
    the caller is done serving.

    ``verifier`` replaces the one built from the JWT settings (tests pass their own).
    """
    service = settings.event_log_name
    database = settings.mongodb_database
    async with running_service(settings, service=SERVICE, database=database) as parts:
        store = await parts.event_store(service=service)
        security = parts.security
        results = AggregateRepository(
            store, RESULT_EVENTS, source=f"//clinical/{service}",
            cipher=security.cipher, patient_of=lambda result: str(result.patient_id),
        )  # fmt: skip
        app = ResultsApp(
            results,
            CsvLabCatalogue.bundled(),
            MongoOrderStates(parts.database[ORDER_STATES_COLLECTION]),
            MongoResultReadModel(parts.database[RESULTS_COLLECTION]),
        )
        # The live half of crypto-shredding: drop the patient's key and cached results, mark
        # the read models, as soon as the patient service records PatientForgotten.
        forgotten = ForgottenPatients(
            name=f"{service}.forgotten-patients.r{settings.replica_ordinal}",
            patient_topic=settings.patient_events_topic,
            marked_collections=[RESULTS_COLLECTION, ORDER_STATES_COLLECTION],
            on_forgotten=[security.keyring.evict, results.evict_patient],
        )
        parts.run_projections([*results_projections(settings), forgotten])
        servicer = ResultServicer(
            app, verifier or token_verifier(settings), parts.access_log,
            care_relationships(parts.database), max_wait_s=settings.read_wait_max_s,
        )  # fmt: skip
        register = partial(results_pb2_grpc.add_ResultServiceServicer_to_server, servicer)
        grpc_services = [GrpcService(GRPC_SERVICE_NAME, register)]
        yield RunningResults(grpc_services, app, store, parts.access_log, parts.health_checks)


async def serve(settings: ResultsSettings) -> None:
    """Run the results service until SIGTERM or SIGINT, then stop gracefully."""
    async with (
        service_runtime(settings, name=SERVICE, version=version("clinical-results")),
        running_results(settings) as results,
    ):
        await serve_grpc(settings, services=results.services, health_checks=results.health_checks)
