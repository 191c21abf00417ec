"""The in-process hospital (patient, orders, results on the real servers) that integration
tests share: each with its own event logs, databases, state and access topic."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.kafka import delete_topics
from clinical_testing.plugin import TopicFactory, unique_name
from clinical_testing.serving import channel_to
from clinical_testing.tokens import TokenMint
from clinical_testing.waiting import eventually
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from clinical.orders.v1.orders_pb2_grpc import OrderServiceStub
from clinical.patient.v1.patient_pb2 import AssignCareTeamMemberRequest
from clinical.patient.v1.patient_pb2_grpc import PatientServiceStub
from clinical.results.v1.results_pb2_grpc import ResultServiceStub
from clinical_platform.care.relationships import CARE_RELATIONSHIPS, CARE_TEAM, relationship_id
from clinical_platform.clients.kafka import build_admin
from clinical_platform.eventlog.topics import (
    ensure_topic,
    event_topic_spec,
    events_topic,
)
from clinical_platform.grpc_server import GrpcService
from clinical_platform.principals import Role
from clinical_platform.projections import dead_letter_topic
from orders.bootstrap import running_orders
from orders.settings import OrdersSettings
from patient.bootstrap import running_patient
from patient.settings import PatientSettings
from results.bootstrap import running_results
from results.settings import ResultsSettings

Metadata = tuple[tuple[str, str], ...]
USER_AGENT = "acceptance-suite/1.0"
CLINICIAN = "dr-acceptance"


@dataclass
class Hospital:
    keyring_settings: OrdersSettings
    patient: PatientServiceStub
    orders: OrderServiceStub
    results: ResultServiceStub
    mint: TokenMint
    bootstrap_servers: str
    patient_topic: str
    orders_topic: str
    results_topic: str
    access_topic: str
    # The read models' databases: <database>_p, _o and _r, on this server.
    database: str = ""
    mongodb_url: str = ""

    def clinician(self) -> Metadata:
        return self.mint.metadata(CLINICIAN, Role.CLINICIAN)

    def registrar(self) -> Metadata:
        return self.mint.metadata("registrar-acceptance", Role.REGISTRAR)

    def signer(self) -> Metadata:
        return self.mint.metadata(
            "dr-signing", Role.CLINICIAN, privileges=["orders:sign"], mfa=True
        )

    def lab(self) -> Metadata:
        return self.mint.metadata("lab-acceptance", Role.LAB)

    async def put_in_care(self, patient_id: str) -> None:
        """Put `clinician` on the patient's care team (as `registrar`) and wait until patient,
        orders and results all know the relationship."""
        await self.patient.AssignCareTeamMember(
            AssignCareTeamMemberRequest(
                request_id=str(uuid.uuid4()), patient_id=patient_id, member_subject=CLINICIAN
            ),
            metadata=self.registrar(), timeout=10,
        )  # fmt: skip
        relationship = {"_id": relationship_id(patient_id, CLINICIAN, CARE_TEAM), "active": True}
        mongo: AsyncMongoClient[Any] = AsyncMongoClient(self.mongodb_url)
        try:
            for suffix in ("_p", "_o", "_r"):
                relationships = mongo[f"{self.database}{suffix}"][CARE_RELATIONSHIPS]
                found = await eventually(partial(relationships.find_one, relationship), within_s=30)
                assert found, f"the care relationship never reached {self.database}{suffix}"
        finally:
            await mongo.close()


async def _serve(stack: AsyncExitStack, services: list[GrpcService]) -> grpc.aio.Channel:
    return await stack.enter_async_context(channel_to(services, user_agent=USER_AGENT))


@pytest.fixture
async def hospital(
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any], token_mint: TokenMint,
    tmp_path: Path, kafka_topic: TopicFactory,
) -> AsyncIterator[Hospital]:  # fmt: skip
    """Patient, orders and results in-process; state under ``tmp_path/<service>``."""
    access_topic = await kafka_topic(prefix="clinical.audit.access-test.")
    async with running_hospital(
        servers, token_mint, state_dir=tmp_path, database=mongo_database.name,
        access_topic=access_topic,
    ) as running:  # fmt: skip
        yield running


@pytest.fixture(scope="module")
async def module_hospital(
    servers: ServerEndpoints, token_mint: TokenMint, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Hospital]:
    """The hospital, started once for a module whose tests share its records."""
    access_topic = unique_name("clinical.audit.access-test.")
    try:
        async with running_hospital(
            servers, token_mint, state_dir=tmp_path_factory.mktemp("hospital"),
            database=unique_name("test_hospital"), access_topic=access_topic,
        ) as running:  # fmt: skip
            yield running
    finally:
        await delete_topics(servers.kafka_bootstrap_servers, [access_topic])


@asynccontextmanager
async def running_hospital(
    servers: ServerEndpoints, token_mint: TokenMint, *, state_dir: Path, database: str,
    access_topic: str,
) -> AsyncIterator[Hospital]:  # fmt: skip
    """Patient, orders and results in-process, with event logs of their own; state under
    ``state_dir/<service>``, read models in ``<database>_p``, ``_o`` and ``_r``."""
    patient_log = unique_name("patient-")
    orders_log, results_log = unique_name("orders-"), unique_name("results-")
    shared = {
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap_servers,
        "VAULT_ADDR": servers.vault_addr,
        "VAULT_TOKEN": servers.vault_token,
        "MONGODB_URL": servers.mongodb_url, "grpc_port": 0, "event_partitions": 3,
        "ACCESS_AUDIT_TOPIC": access_topic, "ACCESS_AUDIT_PARTITIONS": 1,
    }  # fmt: skip
    patient_settings = PatientSettings.model_validate(
        shared | {
            "mongodb_database": f"{database}_p", "state_dir": state_dir / "patient",
            "read_wait_max_s": 10.0, "orders_events_topic": events_topic(orders_log),
        }
    )  # fmt: skip
    orders_settings = OrdersSettings.model_validate(
        shared | {
            "event_log_name": orders_log, "mongodb_database": f"{database}_o",
            "state_dir": state_dir / "orders", "results_events_topic": events_topic(results_log),
            "patient_events_topic": events_topic(patient_log),
        }
    )  # fmt: skip
    results_settings = ResultsSettings.model_validate(
        shared | {
            "event_log_name": results_log, "mongodb_database": f"{database}_r",
            "state_dir": state_dir / "results", "orders_events_topic": events_topic(orders_log),
            "patient_events_topic": events_topic(patient_log),
        }
    )  # fmt: skip
    admin = build_admin(servers.kafka)
    await admin.start()
    for log in (orders_log, results_log):
        spec = event_topic_spec(log, partitions=3, replication_factor=1, min_insync_replicas=1)
        await ensure_topic(admin, spec)
    try:
        async with AsyncExitStack() as stack:
            patient = await stack.enter_async_context(
                running_patient(
                    patient_settings,
                    service=patient_log,
                    verifier=token_mint.verifier_for("patient"),
                )
            )
            orders = await stack.enter_async_context(
                running_orders(orders_settings, verifier=token_mint.verifier_for("orders"))
            )
            results = await stack.enter_async_context(
                running_results(results_settings, verifier=token_mint.verifier_for("results"))
            )
            yield Hospital(
                patient=PatientServiceStub(await _serve(stack, list(patient.services))),
                orders=OrderServiceStub(await _serve(stack, list(orders.services))),
                results=ResultServiceStub(await _serve(stack, list(results.services))),
                mint=token_mint,
                bootstrap_servers=servers.kafka_bootstrap_servers,
                patient_topic=events_topic(patient_log),
                orders_topic=events_topic(orders_log),
                results_topic=events_topic(results_log),
                access_topic=access_topic,
                keyring_settings=orders_settings,
                database=database,
                mongodb_url=servers.mongodb_url,
            )
    finally:
        topics = [events_topic(log) for log in (patient_log, orders_log, results_log)]
        await admin.delete_topics(topics + [dead_letter_topic(topic) for topic in topics])
        await admin.close()
        mongo: AsyncMongoClient[Any] = AsyncMongoClient(servers.mongodb_url)
        for suffix in ("_p", "_o", "_r"):
            await mongo.drop_database(f"{database}{suffix}")
        await mongo.close()
