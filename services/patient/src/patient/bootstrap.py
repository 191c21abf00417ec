"""Composition root of the patient service: the one place that builds clients and wires them."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from clinical.patient.v1 import patient_pb2_grpc
from clinical_platform.access.log import AccessAuditLog
from clinical_platform.care.reads import PatientReads
from clinical_platform.care.relationships import CareRelationshipsProjection, care_relationships
from clinical_platform.clients.kafka import KafkaConnection
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
from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.security.forgetting import ForgottenPatients
from clinical_platform.tokens import TokenVerifier
from patient import policy
from patient.adapters.candidate_feed import CandidateFeed
from patient.adapters.event_catalog import PATIENT_EVENTS
from patient.adapters.projection import PatientIndexProjection
from patient.adapters.read_model import MongoPatientIndex
from patient.application import PatientApp
from patient.care_team import CareTeamApp
from patient.entrypoints.grpc import CATEGORY, RECORD_TYPE, PatientServicer
from patient.matching.candidate_index import CandidateIndex
from patient.matching.matcher import Matcher, Thresholds
from patient.settings import PatientSettings

SERVICE = "patient"
GRPC_SERVICE_NAME = "clinical.patient.v1.PatientService"


def patient_projection(service: str, topic: str) -> PatientIndexProjection:
    """The read model projection; ``service`` names the event log and the consumer group."""
    return PatientIndexProjection(name=f"{service}.patient-index", topic=topic)


def care_projection(service: str, topic: str, orders_topic: str) -> CareRelationshipsProjection:
    """Care relationships: the patient topic's care teams and the orders topic's orderers."""
    return CareRelationshipsProjection(
        name=f"{service}.care-relationships", patient_topic=topic, orders_topic=orders_topic
    )


def patient_projections(settings: PatientSettings) -> list[Projection]:
    """The service's read model projections (the patient index, from the patient topic; care
    relationships, from the patient and orders topics)."""
    service = settings.event_log_name
    topic = events_topic(service)
    return [
        patient_projection(service, topic),
        care_projection(service, topic, settings.orders_events_topic),
    ]


@dataclass(frozen=True)
class RunningPatient:
    """What a running patient service offers its host: the gRPC services and its parts."""

    services: Sequence[GrpcService]
    app: PatientApp
    store: EventStore
    database: AsyncDatabase[Any]
    cipher: EnvelopeCipher
    access_log: AccessAuditLog
    candidates: CandidateIndex
    health_checks: Sequence[HealthCheck] = ()


@asynccontextmanager
async def running_patient(
    settings: PatientSettings,
    *,
    service: str | None = None,
    verifier: TokenVerifier | None = None,
) -> AsyncIterator[RunningPatient]:
    """Start the access log, the event store and the projection; stop them (in reverse) after
    the caller is done serving.

    ``service`` overrides the event log's name (topic ``clinical.<service>.events.v1``, consumer
    group); tests pass a unique one. ``verifier`` replaces the one built from the JWT settings.
    """
    service = service or settings.event_log_name
    database_name = settings.mongodb_database
    async with running_service(settings, service=SERVICE, database=database_name) as parts:
        store = await parts.event_store(service=service)
        security = parts.security
        matcher = Matcher(
            thresholds=Thresholds(match=settings.match_threshold, review=settings.review_threshold)
        )
        # The one writer that creates data keys: registering a patient makes their key. Every
        # other service's cipher only finds existing keys (and refuses made-up patient ids).
        registering = EnvelopeCipher(security.keyring, creates_keys=True)
        patients = AggregateRepository(
            store, PATIENT_EVENTS, source=f"//clinical/{service}", cipher=registering,
            patient_of=lambda patient: str(patient.id),
        )  # fmt: skip
        # The matcher's index is rebuilt from the log before the first registration is taken.
        candidates = CandidateIndex()
        feed = CandidateFeed(
            KafkaConnection.from_settings(settings), store.topic, security.cipher, candidates
        )
        parts.on_stop(feed.stop)
        await feed.catch_up()
        # The index is millions of long-lived objects: left to the cyclic collector, each full
        # collection walks them all (1.5 s at 100,000 patients) and stalls every call. Frozen
        # objects are skipped; records added later are few in comparison.
        gc.freeze()
        parts.run_task("patient.candidate-feed", feed.follow)
        app = PatientApp(
            patients, MongoPatientIndex(parts.database), matcher, security.keyring,
            blocking=candidates,
        )  # fmt: skip
        # Erasure always completes: whatever happened between PatientForgotten and the key's
        # destruction (a crash, Vault away), the shredder follows the log from its committed
        # offset on every start and destroys any key that survived its patient.
        shredder = ForgottenPatients(
            name=f"{service}.key-shredder", patient_topic=store.topic, marked_collections=(),
            on_forgotten=[security.keyring.forget],
        )  # fmt: skip
        parts.run_projections([
            patient_projection(service, store.topic),
            care_projection(service, store.topic, settings.orders_events_topic),
            shredder,
        ])  # fmt: skip
        reads = PatientReads(
            policy.RECORD_READERS, care_relationships(parts.database), parts.access_log,
            record_type=RECORD_TYPE, category=CATEGORY,
        )  # fmt: skip
        servicer = PatientServicer(
            app, CareTeamApp(patients), verifier or token_verifier(settings), reads,
            max_wait_s=settings.read_wait_max_s,
        )  # fmt: skip
        register = partial(patient_pb2_grpc.add_PatientServiceServicer_to_server, servicer)
        yield RunningPatient(
            [GrpcService(GRPC_SERVICE_NAME, register)], app, store, parts.database,
            security.cipher, parts.access_log, candidates, parts.health_checks,
        )  # fmt: skip


async def serve(settings: PatientSettings) -> None:
    """Run the patient service until SIGTERM or SIGINT, then stop gracefully."""
    async with (
        service_runtime(settings, name=SERVICE, version=version("clinical-patient")),
        running_patient(settings) as patient,
    ):
        await serve_grpc(settings, services=patient.services, health_checks=patient.health_checks)
