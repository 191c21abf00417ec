"""Security acceptance: no plaintext PHI on any topic, and every read or refusal is audited.

Patient, orders and results run in-process against the real servers, each with its own event
log, database and state, and all three with one access topic of this test's own.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import hvac
import pytest
from clinical_testing.access import read_access_records
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.eventlog import read_topic
from clinical_testing.kafka import delete_topics, offsets_used, read_records
from clinical_testing.plugin import TopicFactory, unique_name
from clinical_testing.serving import channel_to
from clinical_testing.tokens import TokenMint
from clinical_testing.waiting import eventually
from pymongo.asynchronous.database import AsyncDatabase

from clinical.audit.v1 import access_pb2
from clinical.audit.v1.access_pb2 import AccessRecord
from clinical.audit.v1.checkpoint_pb2 import Checkpoint
from clinical.orders.v1 import orders_pb2
from clinical.patient.v1 import patient_pb2
from clinical.patient.v1.patient_pb2_grpc import PatientServiceStub
from clinical.results.v1 import results_pb2
from clinical_platform.clients.kafka import KafkaConnection
from clinical_platform.eventlog.topics import (
    events_topic,
)
from clinical_platform.principals import Role
from clinical_platform.projections import dead_letter_topic
from clinical_platform.security.chain import VerificationReport
from clinical_platform.security.checkpoint_log import (
    StoredRecord,
    read_checkpoints,
    read_partition,
)
from clinical_platform.security.checkpoints import CHECKPOINTS_TOPIC
from clinical_platform.security.envelope_cipher import EnvelopeCipher
from clinical_platform.security.errors import PatientForgottenError
from clinical_platform.security.vault_adapters import TransitSigner
from clinical_platform.security.verification import verify_partition
from clinical_platform.security.wiring import build_keyring, build_signer
from patient.bootstrap import running_patient
from patient.settings import PatientSettings

pytestmark = pytest.mark.integration

Metadata = tuple[tuple[str, str], ...]
# How long the forgotten-patient listeners get to mark orders and results.
MARKER_WAIT_S = 90
TIMEOUT_S = 20.0
USER_AGENT = "acceptance-suite/1.0"  # the hospital fixture's channels say so

# Distinctive values: none of them may appear in clear on any topic.
GIVEN = "Zephyrine"
FAMILY = "Quillfeatherington"
BIRTH_DATE = "1947-11-23"
MRN = "MRN-QX-8841273"
RESULT_VALUE = "6.9173"


Hospital = Any  # conftest's Hospital: the three services' stubs, topics and tokens


def _demographics() -> patient_pb2.Demographics:
    return patient_pb2.Demographics(
        name=patient_pb2.HumanName(given=[GIVEN], family=FAMILY),
        birth_date=BIRTH_DATE,
        sex=patient_pb2.ADMINISTRATIVE_SEX_FEMALE,
        identifiers=[patient_pb2.Identifier(system="urn:mrn:acceptance-hospital", value=MRN)],
    )


async def _register(hospital: Hospital) -> patient_pb2.RegisterPatientResponse:
    request = patient_pb2.RegisterPatientRequest(
        request_id=str(uuid.uuid4()), demographics=_demographics()
    )
    response: patient_pb2.RegisterPatientResponse = await hospital.patient.RegisterPatient(
        request, metadata=hospital.registrar(), timeout=TIMEOUT_S
    )
    # The hospital's clinician reads the patient's records: they are in their care.
    await hospital.put_in_care(response.patient_id)
    return response


async def _raw_records(bootstrap: str, topic: str) -> list[bytes]:
    """Every record's value and headers (keys too) on ``topic``, read raw from offset 0 (aborted
    transactions' records included)."""
    found: list[bytes] = []
    for record in await read_records(bootstrap, topic, committed=False):
        found.append(record.value or b"")
        found.append(record.key or b"")
        found += [name.encode() + b"=" + value for name, value in record.headers]
    return found


async def _access_records(
    hospital: Hospital, wanted: int, *, timeout_s: float = TIMEOUT_S
) -> list[AccessRecord]:
    """The access topic's records, once it holds at least ``wanted`` (published off-path)."""

    async def enough() -> list[AccessRecord]:
        published = await read_access_records(hospital.bootstrap_servers, hospital.access_topic)
        records = [record for _key, record in published]
        return records if len(records) >= wanted else []

    async with asyncio.timeout(timeout_s):
        return await eventually(enough, within_s=float("inf"), interval_s=0.25)


@dataclass(frozen=True)
class Story:
    registered: patient_pb2.RegisterPatientResponse
    order_id: str
    posted: results_pb2.PostResultResponse


async def _order_and_result(hospital: Hospital) -> Story:
    """Register a patient, place and sign an order for them, post its result."""
    registered = await _register(hospital)
    patient_id = registered.patient_id
    placed = await hospital.orders.PlaceOrder(
        orders_pb2.PlaceOrderRequest(
            request_id=str(uuid.uuid4()), patient_id=patient_id, test_code="2823-3",
            priority=orders_pb2.PRIORITY_STAT,
            reason_codes=[orders_pb2.ReasonCode(system=orders_pb2.CODE_SYSTEM_ICD10, code="N18.3")],
        ),
        metadata=hospital.clinician(), timeout=TIMEOUT_S,
    )  # fmt: skip
    signed = await hospital.orders.SignOrder(
        orders_pb2.SignOrderRequest(request_id=str(uuid.uuid4()), order_id=placed.order_id),
        metadata=hospital.signer(), timeout=TIMEOUT_S,
    )  # fmt: skip
    posted = await hospital.results.PostResult(
        results_pb2.PostResultRequest(
            request_id=str(uuid.uuid4()), order_id=placed.order_id,
            order_min_version=signed.version,
            observations=[results_pb2.Observation(
                code="2823-3", quantity=results_pb2.Quantity(value=RESULT_VALUE, unit="mmol/L"),
            )],
        ),
        metadata=hospital.lab(), timeout=TIMEOUT_S,
    )  # fmt: skip
    return Story(registered, placed.order_id, posted)


async def test_raw_topic_bytes_hold_no_plaintext_phi(hospital: Hospital) -> None:
    story = await _order_and_result(hospital)
    registered, patient_id, posted = story.registered, story.registered.patient_id, story.posted
    read = await hospital.patient.GetPatient(
        patient_pb2.GetPatientRequest(patient_id=patient_id, min_version=registered.version),
        metadata=hospital.clinician(), timeout=TIMEOUT_S,
    )  # fmt: skip
    assert read.patient.demographics.name.family == FAMILY  # served decrypted to the caller
    result = await hospital.results.GetResult(
        results_pb2.GetResultRequest(result_id=posted.result_id, min_version=posted.version),
        metadata=hospital.clinician(), timeout=TIMEOUT_S,
    )  # fmt: skip
    assert result.result.observations[0].quantity.value == RESULT_VALUE
    # GetPatient and GetResult were audited; wait until both records are on the access topic.
    await _access_records(hospital, 2)

    topics = [
        hospital.patient_topic, hospital.orders_topic, hospital.results_topic,
        hospital.access_topic,
    ]  # fmt: skip
    secrets = [GIVEN, FAMILY, BIRTH_DATE, BIRTH_DATE.replace("-", ""), MRN, RESULT_VALUE]
    for topic in topics:
        raw = await _raw_records(hospital.bootstrap_servers, topic)
        assert raw, f"{topic} holds no records"
        for value in raw:
            for secret in secrets:
                assert secret.encode() not in value, f"{secret!r} in clear on {topic}"
                assert secret.lower().encode() not in value.lower(), f"{secret!r} on {topic}"


async def test_query_rpcs_and_denials_leave_access_records_with_ip_and_user_agent(
    hospital: Hospital,
) -> None:
    registered = await _register(hospital)
    patient_id = registered.patient_id
    await hospital.patient.GetPatient(
        patient_pb2.GetPatientRequest(patient_id=patient_id, min_version=registered.version),
        metadata=hospital.clinician(), timeout=TIMEOUT_S,
    )  # fmt: skip
    other_patient = hospital.mint.metadata(
        "patient-portal-user", Role.PATIENT, patient_id=str(uuid.uuid4())
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await hospital.patient.GetPatient(
            patient_pb2.GetPatientRequest(patient_id=patient_id),
            metadata=other_patient, timeout=TIMEOUT_S,
        )  # fmt: skip
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED

    records = await _access_records(hospital, 2)
    about = [r for r in records if r.patient_id == patient_id and r.operation == "GetPatient"]
    by_outcome = {r.outcome: r for r in about}
    assert set(by_outcome) == {
        access_pb2.ACCESS_OUTCOME_SUCCESS,
        access_pb2.ACCESS_OUTCOME_DENIED,
    }
    read = by_outcome[access_pb2.ACCESS_OUTCOME_SUCCESS]
    denied = by_outcome[access_pb2.ACCESS_OUTCOME_DENIED]
    assert read.actor.subject == "dr-acceptance"
    assert denied.actor.subject == "patient-portal-user"
    assert read.action == denied.action == access_pb2.ACCESS_ACTION_READ
    assert read.record_type == denied.record_type == "Patient"
    assert list(read.accessed_record_ids) == [patient_id]
    assert denied.reason
    for record in (read, denied):
        assert record.source_ip == "127.0.0.1"
        assert USER_AGENT in record.user_agent
        assert record.source.endswith("/patient")


class VaultProxy:
    """A TCP relay in front of Vault that the test can take away and bring back (same port)."""

    def __init__(self, target: str) -> None:
        host_port = target.split("//", 1)[-1].rstrip("/")
        host, _, port = host_port.rpartition(":")
        self._target = (host, int(port))
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._relay, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


async def test_vault_unavailable_fails_registration_closed_and_appends_nothing(
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any], token_mint: TokenMint,
    tmp_path: Path, kafka_topic: TopicFactory,
) -> None:  # fmt: skip
    proxy = VaultProxy(servers.vault_addr)
    await proxy.start()
    service = unique_name("patient-")
    settings = PatientSettings.model_validate(
        {
            "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap_servers,
            "VAULT_ADDR": proxy.addr, "VAULT_TOKEN": servers.vault_token,
            "VAULT_TIMEOUT_SECONDS": 2,
            "MONGODB_URL": servers.mongodb_url, "grpc_port": 0, "event_partitions": 3,
            "mongodb_database": mongo_database.name, "state_dir": tmp_path / "state",
            "ACCESS_AUDIT_TOPIC": await kafka_topic(prefix="clinical.audit.access-test."),
            "ACCESS_AUDIT_PARTITIONS": 1,
        }
    )  # fmt: skip
    registrar = token_mint.metadata("registrar-acceptance", Role.REGISTRAR)
    topic = events_topic(service)
    try:
        async with AsyncExitStack() as stack:
            patient = await stack.enter_async_context(
                running_patient(
                    settings, service=service, verifier=token_mint.verifier_for("patient")
                )
            )
            channel = channel_to(list(patient.services), user_agent=USER_AGENT)
            stub = PatientServiceStub(await stack.enter_async_context(channel))

            async def register() -> patient_pb2.RegisterPatientResponse:
                request = patient_pb2.RegisterPatientRequest(
                    request_id=str(uuid.uuid4()), demographics=_demographics()
                )
                response: patient_pb2.RegisterPatientResponse = await stub.RegisterPatient(
                    request, metadata=registrar, timeout=TIMEOUT_S
                )
                return response

            await proxy.stop()
            before = await offsets_used(servers.kafka_bootstrap_servers, topic)
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await register()
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
            assert await offsets_used(servers.kafka_bootstrap_servers, topic) == before

            await proxy.start()

            async def registered_once() -> patient_pb2.RegisterPatientResponse | None:
                try:
                    return await register()
                except grpc.aio.AioRpcError as error:
                    if error.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    return None

            # The seal-status watch may take an interval to see Vault back.
            registered = await eventually(registered_once, within_s=TIMEOUT_S, interval_s=0.5)
            assert registered is not None
            assert registered.patient_id
            assert await offsets_used(servers.kafka_bootstrap_servers, topic) > before
    finally:
        await proxy.stop()
        await delete_topics(servers.kafka_bootstrap_servers, [topic, dead_letter_topic(topic)])


async def test_forgetting_a_patient_marks_their_orders_and_results_and_no_replay_can_decrypt(
    hospital: Hospital, servers: ServerEndpoints
) -> None:
    story = await _order_and_result(hospital)
    forgotten_id = story.registered.patient_id

    await hospital.patient.ForgetPatient(
        patient_pb2.ForgetPatientRequest(
            request_id=str(uuid.uuid4()), patient_id=forgotten_id, reason="erasure request"
        ),
        metadata=hospital.registrar(), timeout=TIMEOUT_S,
    )  # fmt: skip

    # Orders and results hear PatientForgotten and turn their documents into markers.
    for read in (
        lambda: hospital.orders.GetOrder(
            orders_pb2.GetOrderRequest(order_id=story.order_id),
            metadata=hospital.clinician(), timeout=TIMEOUT_S,
        ),
        lambda: hospital.results.GetResult(
            results_pb2.GetResultRequest(result_id=story.posted.result_id),
            metadata=hospital.clinician(), timeout=TIMEOUT_S,
        ),
    ):  # fmt: skip
        assert await _eventually_refused(read) == grpc.StatusCode.FAILED_PRECONDITION
    # A full replay from offset 0 of every topic, with a keyring that never saw the key.
    other = await _register(hospital)
    client = hvac.Client(url=servers.vault_addr, token=servers.vault_token)
    keyring = build_keyring(client, hospital.keyring_settings)
    cipher = EnvelopeCipher(keyring)
    outcomes: dict[str, set[str]] = {forgotten_id: set(), other.patient_id: set()}
    for topic in (hospital.patient_topic, hospital.orders_topic, hospital.results_topic):
        for envelope in await read_topic(hospital.bootstrap_servers, topic):
            if envelope.patient_id not in outcomes:
                continue
            try:
                await cipher.decrypt(envelope)
            except PatientForgottenError:
                outcomes[envelope.patient_id].add("forgotten")
            else:
                outcomes[envelope.patient_id].add("readable")
    assert outcomes == {forgotten_id: {"forgotten"}, other.patient_id: {"readable"}}
    # The audit chain still verifies: hashes and signed checkpoints cover the ciphertext.
    signer = build_signer(client, hospital.keyring_settings)
    for topic in (hospital.patient_topic, hospital.orders_topic, hospital.results_topic):
        for partition in range(3):
            report = await _verified_once_attested(
                hospital.bootstrap_servers, topic, partition, signer
            )
            assert report.ok, f"{topic}[{partition}]: {report.reason}"


async def _verified_once_attested(
    bootstrap: str, topic: str, partition: int, signer: TransitSigner
) -> VerificationReport:
    """Verify a partition once a checkpoint covers its last record (checkpoints come every
    few seconds), so the verdict rests on signed roots and not on the hash chain alone."""
    kafka = KafkaConnection(bootstrap)
    latest: list[tuple[list[StoredRecord], list[Checkpoint]]] = []

    async def attested_or_empty() -> bool:
        records = await read_partition(kafka, topic, partition)
        checkpoints = await read_checkpoints(kafka, CHECKPOINTS_TOPIC, topic, partition)
        latest[:] = [(records, checkpoints)]
        return not records or (
            bool(checkpoints) and checkpoints[-1].last_offset >= records[-1].offset
        )

    await eventually(attested_or_empty, within_s=60, interval_s=1)
    records, checkpoints = latest[0]
    return await verify_partition(records, checkpoints, signer, topic=topic, partition=partition)


async def _eventually_refused(call: Any) -> grpc.StatusCode:
    """The status the call fails with once the read model caught up (or OK's absence)."""

    async def refusal() -> grpc.StatusCode | None:
        try:
            await call()
        except grpc.aio.AioRpcError as refused:
            if refused.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                return refused.code()
        return None

    # The listener's consumer group may still be joining on a busy machine.
    return await eventually(refusal, within_s=MARKER_WAIT_S, interval_s=0.2) or grpc.StatusCode.OK
