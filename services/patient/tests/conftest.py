"""Fixtures of the patient tests: sample demographics, and a patient service per test.

Integration tests get a service with a real event store, Mongo read model and projection,
in-process.

Each test gets its own event log (a unique service name, so a unique topic), its own database
and its own consumer group; the servicer listens on 127.0.0.1 on a free port.
"""

from __future__ import annotations

import secrets
import string
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.plugin import TopicFactory, unique_name
from clinical_testing.tokens import TokenMint
from clinical_testing.waiting import eventually
from pymongo.asynchronous.database import AsyncDatabase

from clinical.patient.v1 import patient_pb2 as pb
from clinical.patient.v1 import patient_pb2_grpc
from clinical_platform.care.relationships import CARE_RELATIONSHIPS, CARE_TEAM, relationship_id
from clinical_platform.clients.kafka import KafkaConnection, build_admin
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.grpc_server import start_grpc_server
from clinical_platform.principals import Role
from clinical_platform.projections import dead_letter_topic
from patient.bootstrap import RunningPatient, running_patient
from patient.domain.demographics import (
    AdministrativeSex,
    PatientAddress,
    PatientDemographics,
    PatientIdentifier,
    PatientName,
)
from patient.settings import PatientSettings

Metadata = tuple[tuple[str, str]]
TIMEOUT_S = 20.0
Register = Callable[..., Awaitable[pb.RegisterPatientResponse]]


@dataclass
class PatientUnderTest:
    stub: patient_pb2_grpc.PatientServiceStub
    running: RunningPatient
    settings: PatientSettings
    service: str
    database: AsyncDatabase[Any]
    access_topic: str

    @property
    def topic(self) -> str:
        return events_topic(self.service)


@pytest.fixture
async def patient_service(
    servers: ServerEndpoints,
    mongo_database: AsyncDatabase[Any],
    token_mint: TokenMint,
    tmp_path: Path,
    kafka_topic: TopicFactory,
) -> AsyncIterator[PatientUnderTest]:
    """A running patient service on a free loopback port, and a stub to call it."""
    service = unique_name("patient-")
    access_topic = await kafka_topic(prefix="clinical.audit.access-test.")
    settings = PatientSettings.model_validate(
        {
            **servers.as_env(),
            "grpc_port": 0,
            "mongodb_database": mongo_database.name,
            "state_dir": tmp_path / "state",
            "event_partitions": 3,
            "read_wait_max_s": 10.0,
            "ACCESS_AUDIT_TOPIC": access_topic,
            "ACCESS_AUDIT_PARTITIONS": 1,
        }
    )
    try:
        async with running_patient(
            settings, service=service, verifier=token_mint.verifier_for("patient")
        ) as up:
            server = await start_grpc_server(host="127.0.0.1", port=0, services=up.services)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                stub = patient_pb2_grpc.PatientServiceStub(channel)
                yield PatientUnderTest(stub, up, settings, service, mongo_database, access_topic)
            await server.stop(0)
    finally:
        admin = build_admin(KafkaConnection(servers.kafka_bootstrap_servers))
        await admin.start()
        try:
            topic = events_topic(service)
            await admin.delete_topics([topic, dead_letter_topic(topic)])
        finally:
            await admin.close()


@pytest.fixture
def stub(patient_service: PatientUnderTest) -> patient_pb2_grpc.PatientServiceStub:
    return patient_service.stub


@pytest.fixture
def registrar(token_mint: TokenMint) -> Metadata:
    return token_mint.metadata("registrar-1", Role.REGISTRAR)


@pytest.fixture
def clinician(token_mint: TokenMint) -> Metadata:
    return token_mint.metadata("dr-1", Role.CLINICIAN)


@pytest.fixture
def auditor(token_mint: TokenMint) -> Metadata:
    return token_mint.metadata("auditor-1", Role.AUDITOR)


def margaret_demographics(**changes: Any) -> pb.Demographics:
    """Margaret Thornton, born 1961-04-12, of 17 Wattle Street, Kedron 4031."""
    demographics = pb.Demographics(
        name=pb.HumanName(given=["Margaret"], family="Thornton"),
        birth_date="1961-04-12",
        sex=pb.ADMINISTRATIVE_SEX_FEMALE,
        address=pb.Address(
            lines=["17 Wattle Street", "Rosetta Village"], city="Kedron", district="QLD",
            postal_code="4031",
        ),
        phone="+61 7 3350 1234",
        identifiers=[pb.Identifier(system="urn:mrn:kedron-hospital", value="K123456")],
    )  # fmt: skip
    for name, value in changes.items():
        demographics.ClearField(name)  # type: ignore[arg-type]  # any field, by name
        if isinstance(value, list):
            getattr(demographics, name).extend(value)
        elif hasattr(value, "CopyFrom"):
            getattr(demographics, name).CopyFrom(value)
        else:
            setattr(demographics, name, value)
    return demographics


@pytest.fixture
def margaret_pb() -> Callable[..., pb.Demographics]:
    """Build Margaret's demographics, with any fields replaced: ``margaret(phone="")``."""
    return margaret_demographics


@pytest.fixture
def stranger() -> pb.Demographics:
    return pb.Demographics(
        name=pb.HumanName(given=["Lachlan"], family="Berry"),
        birth_date="1999-02-19",
        address=pb.Address(lines=["69 Giblin Street"], city="Bittern", postal_code="4814"),
    )


@pytest.fixture
def register(stub: patient_pb2_grpc.PatientServiceStub, registrar: Metadata) -> Register:
    """Register demographics (Margaret by default) and wait until the read model has them."""

    async def register_and_wait(
        demographics: pb.Demographics | None = None, metadata: Metadata = registrar
    ) -> pb.RegisterPatientResponse:
        response: pb.RegisterPatientResponse = await stub.RegisterPatient(
            pb.RegisterPatientRequest(
                request_id=str(uuid.uuid4()), demographics=demographics or margaret_demographics()
            ),
            metadata=metadata, timeout=TIMEOUT_S,
        )  # fmt: skip
        await stub.GetPatient(
            pb.GetPatientRequest(patient_id=response.patient_id, min_version=response.version),
            metadata=registrar, timeout=TIMEOUT_S,
        )  # fmt: skip
        return response

    return register_and_wait


CareFor = Callable[[str], Awaitable[int]]


@pytest.fixture
def care_for(
    patient_service: PatientUnderTest, registrar: Metadata, clinician: Metadata
) -> CareFor:
    """Put the ``clinician`` on a record's care team (a registrar assigns them), wait until the
    service knows the relationship, and return the record's new version."""
    stub, relationships = patient_service.stub, patient_service.database[CARE_RELATIONSHIPS]

    async def assign(patient_id: str) -> int:
        assigned = await stub.AssignCareTeamMember(
            pb.AssignCareTeamMemberRequest(
                request_id=str(uuid.uuid4()), patient_id=patient_id, member_subject="dr-1"
            ),
            metadata=registrar, timeout=TIMEOUT_S,
        )  # fmt: skip
        relationship = {"_id": relationship_id(patient_id, "dr-1", CARE_TEAM), "active": True}
        assert await eventually(lambda: relationships.find_one(relationship), within_s=TIMEOUT_S)
        version: int = assigned.version
        return version

    return assign


@pytest.fixture
def margaret() -> PatientDemographics:
    """Margaret Thornton, born 1961-04-12, of 17 Wattle Street, Kedron 4031 QLD."""
    return PatientDemographics(
        name=PatientName(given=("Margaret",), family="Thornton"),
        birth_date="1961-04-12",
        sex=AdministrativeSex.FEMALE,
        address=PatientAddress(
            lines=("17 Wattle Street", "Rosetta Village"),
            city="Kedron",
            district="QLD",
            postal_code="4031",
        ),
        phone="+61 7 3350 1234",
        email="m.thornton@example.org",
        identifiers=(PatientIdentifier("urn:mrn:kedron-hospital", "K123456"),),
    )


def _canary(alphabet: str = string.ascii_lowercase, length: int = 20) -> str:
    """A value no id, timestamp or counter in a log line can hold by chance (>= 2**60)."""
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass(frozen=True)
class PhiCanaries:
    """Margaret's demographics with high-entropy PHI: a log line holding one leaked it."""

    family: str = field(default_factory=lambda: f"Thornton{_canary()}")
    given: str = field(default_factory=lambda: f"Margaret{_canary()}")
    street: str = field(default_factory=lambda: f"17 Wattle{_canary()} Street")
    city: str = field(default_factory=lambda: f"Kedron{_canary()}")
    postal_code: str = field(default_factory=_canary)
    phone: str = field(default_factory=lambda: f"+61 {_canary(string.digits)}")
    birth_date: str = "1961-04-12"

    @property
    def values(self) -> tuple[str, ...]:
        """What must never be logged (the birth date, whose digits a clock never shows)."""
        return (self.family, self.given, self.street, self.city, self.postal_code, self.phone,
                self.phone.removeprefix("+61 "), self.birth_date)  # fmt: skip

    def domain(self, margaret: PatientDemographics) -> PatientDemographics:
        return replace(
            margaret,
            name=PatientName(given=(self.given,), family=self.family),
            birth_date=self.birth_date,
            address=PatientAddress((self.street,), self.city, "QLD", self.postal_code),
            phone=self.phone,
        )

    def pb(self) -> pb.Demographics:
        return margaret_demographics(
            name=pb.HumanName(given=[self.given], family=self.family),
            birth_date=self.birth_date,
            address=pb.Address(lines=[self.street], city=self.city, district="QLD",
                               postal_code=self.postal_code),
            phone=self.phone,
        )  # fmt: skip


@pytest.fixture
def phi() -> PhiCanaries:
    """Fresh PHI canaries for a test that searches logs or telemetry for patient data."""
    return PhiCanaries()


@pytest.fixture
def phi_values(phi: PhiCanaries) -> tuple[str, ...]:
    """The canaries a log line must never hold."""
    return phi.values


@pytest.fixture
def phi_margaret(phi: PhiCanaries, margaret: PatientDemographics) -> PatientDemographics:
    """Margaret carrying the canaries, as the domain holds her."""
    return phi.domain(margaret)


@pytest.fixture
def phi_margaret_pb(phi: PhiCanaries) -> pb.Demographics:
    """Margaret carrying the canaries, as a client sends her."""
    return phi.pb()
