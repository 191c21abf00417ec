"""Register records one at a time through the real patient service and score its links.

With read-back, each registration is followed by GetPatient(min_version), as a careful client
does; without, the next registration follows at once, as a migration does. Matching must give
the same links either way: it reads the service's blocking index, not the read model.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.matching.febrl import Pair, Records
from clinical.patient.v1 import patient_pb2 as pb
from clinical.patient.v1 import patient_pb2_grpc
from clinical_platform.audiences import service_audience
from clinical_platform.clients.kafka import KafkaConnection, build_admin
from clinical_platform.clients.mongo import build_mongo_client
from clinical_platform.devtokens import mint_token
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.grpc_server import start_grpc_server
from clinical_platform.principals import Role
from clinical_platform.projections import dead_letter_topic
from clinical_platform.tokens import TokenVerifier
from patient.bootstrap import RunningPatient, running_patient
from patient.domain.demographics import PatientDemographics
from patient.entrypoints.translate import demographics_to
from patient.settings import PatientSettings

CALL_TIMEOUT_S = 30


@dataclass(frozen=True)
class Figures:
    """Link quality of one run: MATCH decisions between records against the true pairs."""

    records: int
    true_pairs: int
    predicted: int
    true_positives: int
    outcomes: dict[str, int]
    queued: int
    seconds: float
    links: frozenset[Pair] = frozenset()
    label: str = "FEBRL1 through RegisterPatient"

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.true_pairs if self.true_pairs else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if self.true_positives else 0.0

    def render(self) -> str:
        grades = ", ".join(f"{grade}={count}" for grade, count in sorted(self.outcomes.items()))
        per_record_ms = 1000 * self.seconds / self.records if self.records else 0.0
        return "\n".join((
            f"{self.label}: {self.records} records, {self.true_pairs} true pairs",
            f"  outcomes: {grades}; review queue: {self.queued} possible matches",
            f"  predicted links {self.predicted}, correct {self.true_positives}",
            f"  precision {self.precision:.4f}  recall {self.recall:.4f}  F1 {self.f1:.4f}",
            f"  {self.seconds:.1f} s, {per_record_ms:.1f} ms per record",
        ))  # fmt: skip


@dataclass(frozen=True)
class ServedPatient:
    """A patient service of this run's own, served over gRPC, and a registrar's credentials."""

    stub: patient_pb2_grpc.PatientServiceStub
    auth: tuple[tuple[str, str], ...]
    running: RunningPatient
    service: str
    registered: list[str] = field(default_factory=list)

    async def register(self, request_id: str, demographics: PatientDemographics) -> Any:
        """RegisterPatient, as a registrar; the RegisterPatientResponse."""
        request = pb.RegisterPatientRequest(
            request_id=f"{self.service}-{request_id}", demographics=demographics_to(demographics)
        )
        response = await self.stub.RegisterPatient(
            request, metadata=self.auth, timeout=CALL_TIMEOUT_S
        )
        self.registered.append(response.patient_id)
        return response


@asynccontextmanager
async def served_patient(settings: PatientSettings) -> AsyncIterator[ServedPatient]:
    """Start a patient service with a topic and database of its own; delete them afterwards."""
    key = Ed25519PrivateKey.generate()
    # The evaluation runs for up to two hours on one token: its verifier allows that lifetime.
    token = mint_token(key, subject="eval", roles=[Role.REGISTRAR], ttl_s=7200)
    service = f"eval-{uuid.uuid4().hex[:10]}"
    verifier = TokenVerifier(
        (key.public_key(),), audience=service_audience("patient"), max_lifetime_s=7200
    )
    try:
        async with running_patient(settings, service=service, verifier=verifier) as patient:
            server = await start_grpc_server(host="127.0.0.1", port=0, services=patient.services)
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                    stub = patient_pb2_grpc.PatientServiceStub(channel)
                    auth = (("authorization", f"Bearer {token}"),)
                    yield ServedPatient(stub, auth, patient, service)
            finally:
                await server.stop(0)
    finally:
        await _clean_up(settings, service)


async def register_all(
    settings: PatientSettings,
    records: Records,
    truth: set[Pair],
    *,
    read_back: bool = True,
    label: str = "FEBRL1 through RegisterPatient",
) -> Figures:
    """Register ``records`` in order on a patient service of this run's own, then clean up."""
    record_of: dict[str, str] = {}
    predicted: set[Pair] = set()
    outcomes: dict[str, int] = {}
    started = time.perf_counter()
    async with served_patient(settings) as patient:
        for rec_id, demographics in records.items():
            response = await patient.register(rec_id, demographics)
            record_of[response.patient_id] = rec_id
            grade = pb.MatchGrade.Name(response.outcome)
            outcomes[grade] = outcomes.get(grade, 0) + 1
            predicted |= {frozenset((rec_id, record_of[p])) for p in response.linked_patient_ids}
            if read_back:
                wait_for = pb.GetPatientRequest(
                    patient_id=response.patient_id, min_version=response.version
                )
                await patient.stub.GetPatient(
                    wait_for, metadata=patient.auth, timeout=CALL_TIMEOUT_S
                )
        seconds = time.perf_counter() - started
        queued = len(await patient.running.app.review_queue(limit=10_000))
    return Figures(
        records=len(records), true_pairs=len(truth), predicted=len(predicted),
        true_positives=len(predicted & truth), outcomes=outcomes, queued=queued,
        seconds=seconds, links=frozenset(predicted), label=label,
    )  # fmt: skip


async def _clean_up(settings: PatientSettings, service: str) -> None:
    """Drop this run's database and delete its topics (events, dead letters, access records)."""
    mongo = build_mongo_client(settings)
    try:
        await mongo.drop_database(settings.mongodb_database)
    finally:
        await mongo.close()
    admin = build_admin(KafkaConnection.from_settings(settings))
    await admin.start()
    try:
        topic = events_topic(service)
        await admin.delete_topics([topic, dead_letter_topic(topic), settings.access_audit_topic])
    finally:
        await admin.close()
