"""Composition root of the patient service: the one place that builds clients and wires them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from clinical.patient.v1 import patient_pb2_grpc
from clinical_platform.access.log import AccessAuditLog
from clinical_platform.access.publisher import AccessAuditConfig
from clinical_platform.clients.mongo import build_mongo_client
from clinical_platform.eventlog.repository import AggregateRepository
from clinical_platform.eventlog.store import EventStore
from clinical_platform.grpc_server import GrpcService
from clinical_platform.projections.background import start_projections, stop_projections
from clinical_platform.runtime import (
    event_store_config,
    serve_grpc,
    service_runtime,
    token_verifier,
)
from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.security.wiring import SecurityKernel, checkpoint_runners, running_security
from clinical_platform.tokens import TokenVerifier
from patient.adapters.event_catalog import PATIENT_EVENTS
from patient.adapters.projection import PatientIndexProjection
from patient.adapters.read_model import MongoPatientIndex
from patient.application import PatientApp
from patient.entrypoints.grpc import PatientServicer
from patient.matching.matcher import Matcher, Thresholds
from patient.settings import PatientSettings

SERVICE = "patient"
GRPC_SERVICE_NAME = "clinical.patient.v1.PatientService"


def patient_projection(service: str, topic: str) -> PatientIndexProjection:
    """The read model projection; ``service`` names the event log and the consumer group."""
    return PatientIndexProjection(name=f"{service}.patient-index", topic=topic)


@dataclass(frozen=True)
class RunningPatient:
    """What a running patient service offers its host: the gRPC services and its parts."""

    services: Sequence[GrpcService]
    app: PatientApp
    store: EventStore
    database: AsyncDatabase[Any]
    cipher: EnvelopeCipher
    access_log: AccessAuditLog


@asynccontextmanager
async def running_patient(
    settings: PatientSettings, *, service: str = SERVICE, verifier: TokenVerifier | None = None
) -> AsyncIterator[RunningPatient]:
    """Start the access log, the event store and the projection; stop them (in reverse) after
    the caller is done serving.

    ``service`` names the event log (topic ``clinical.<service>.events.v1``) and the consumer
    group; tests pass a unique one.
    """
    async with (
        running_security(settings) as security,
        _running_patient(settings, security, service, verifier) as patient,
    ):
        yield patient


@asynccontextmanager
async def _running_patient(
    settings: PatientSettings,
    security: SecurityKernel,
    service: str,
    verifier: TokenVerifier | None,
) -> AsyncIterator[RunningPatient]:
    store = EventStore(
        event_store_config(settings, service=service),
        attester_factory=checkpoint_runners(security.signer, settings),
    )
    mongo = build_mongo_client(settings)
    database = mongo[settings.mongodb_database]
    access_log = AccessAuditLog(AccessAuditConfig.from_settings(settings, service=SERVICE))
    await access_log.start()
    try:
        await store.start()
    except BaseException:
        await access_log.stop()
        await mongo.close()
        raise
    matcher = Matcher(
        thresholds=Thresholds(match=settings.match_threshold, review=settings.review_threshold)
    )
    app = PatientApp(
        AggregateRepository(
            store,
            PATIENT_EVENTS,
            source=f"//clinical/{service}",
            cipher=security.cipher,
            patient_of=lambda patient: str(patient.id),
        ),
        MongoPatientIndex(database),
        matcher,
        security.keyring,
    )
    projecting = start_projections(
        [patient_projection(service, store.topic)], settings, database, security.cipher
    )
    servicer = PatientServicer(
        app, verifier or token_verifier(settings), access_log, max_wait_s=settings.read_wait_max_s
    )
    register = partial(patient_pb2_grpc.add_PatientServiceServicer_to_server, servicer)
    try:
        yield RunningPatient(
            [GrpcService(GRPC_SERVICE_NAME, register)], app, store, database, security.cipher,
            access_log,
        )  # fmt: skip
    finally:
        await stop_projections(projecting)
        await store.stop()
        await access_log.stop()
        await mongo.close()


async def serve(settings: PatientSettings) -> None:
    """Run the patient service until SIGTERM or SIGINT, then stop gracefully."""
    async with (
        service_runtime(settings, name=SERVICE, version=version("clinical-patient")),
        running_patient(settings) as patient,
    ):
        await serve_grpc(settings, services=patient.services)
