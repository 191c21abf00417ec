"""A patient's record end to end: registered, ordered, signed, resulted, amended and read back.

The patient, orders and results services run as real processes (``python -m <service>``)
against the session's servers, each with its own topics, database and state; the tests speak
only their public gRPC API, with tokens from `token_mint`. The module's tests share one set of
processes; the last one stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from aiokafka.errors import KafkaError
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.plugin import unique_name
from clinical_testing.service_process import ServiceProcess, StartService
from clinical_testing.tokens import TokenMint
from clinical_testing.waiting import once_recorded
from pymongo import AsyncMongoClient

from clinical.orders.v1 import orders_pb2 as orders_pb
from clinical.orders.v1.orders_pb2_grpc import OrderServiceStub
from clinical.patient.v1 import patient_pb2 as patient_pb
from clinical.patient.v1.patient_pb2_grpc import PatientServiceStub
from clinical.results.v1 import results_pb2 as results_pb
from clinical.results.v1.results_pb2_grpc import ResultServiceStub
from clinical_platform.clients.kafka import build_admin
from clinical_platform.eventlog.topics import ensure_topic, event_topic_spec, events_topic
from clinical_platform.principals import Role
from clinical_platform.projections import dead_letter_topic

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

PARTITIONS = 3
CALL_TIMEOUT = 15
Metadata = tuple[tuple[str, str], ...]


@dataclass
class Clinic:
    patients: PatientServiceStub
    orders: OrderServiceStub
    results: ResultServiceStub
    processes: list[ServiceProcess]


@pytest.fixture(scope="module")
async def clinic(servers: ServerEndpoints, start_service: StartService) -> AsyncIterator[Clinic]:
    """The three services as processes, wired to each other's topics only."""
    orders_log, results_log = unique_name("orders-"), unique_name("results-")
    database = unique_name("e2e_")
    access_topic = unique_name("e2e.access.")
    shared = {"ACCESS_AUDIT_TOPIC": access_topic, "ACCESS_AUDIT_PARTITIONS": "1"}
    # Orders and results each consume the other's topic: create both before either starts.
    admin = build_admin(servers.kafka)
    await admin.start()
    for log in (orders_log, results_log):
        spec = event_topic_spec(
            log, partitions=PARTITIONS, replication_factor=1, min_insync_replicas=1
        )
        await ensure_topic(admin, spec)
    processes = [
        # The patient service has no setting for its event log name, so its topic is the
        # shared clinical.patient.events.v1; its database and state are still this test's.
        start_service(
            "patient",
            PATIENT_MONGODB_DATABASE=f"{database}_p",
            PATIENT_ORDERS_EVENTS_TOPIC=events_topic(orders_log),
            **shared,
        ),
        start_service(
            "orders",
            ORDERS_EVENT_LOG_NAME=orders_log,
            ORDERS_MONGODB_DATABASE=f"{database}_o",
            ORDERS_EVENT_PARTITIONS=str(PARTITIONS),
            ORDERS_RESULTS_EVENTS_TOPIC=events_topic(results_log),
            **shared,
        ),
        start_service(
            "results",
            RESULTS_EVENT_LOG_NAME=results_log,
            RESULTS_MONGODB_DATABASE=f"{database}_r",
            RESULTS_EVENT_PARTITIONS=str(PARTITIONS),
            RESULTS_ORDERS_EVENTS_TOPIC=events_topic(orders_log),
            **shared,
        ),
    ]
    try:
        await asyncio.gather(*(process.wait_serving(within_s=90) for process in processes))
        patient, orders, results = (
            grpc.aio.insecure_channel(process.address) for process in processes
        )
        async with patient, orders, results:
            yield Clinic(
                PatientServiceStub(patient), OrderServiceStub(orders), ResultServiceStub(results),
                processes,
            )  # fmt: skip
    finally:
        for process in processes:
            process.kill()
        topics = [events_topic(log) for log in (orders_log, results_log)]
        for topic in [*topics, *map(dead_letter_topic, topics), access_topic]:
            # Some exist only if a service created them (a DLQ, the access topic).
            with contextlib.suppress(KafkaError):
                await admin.delete_topics([topic])
        await admin.close()
        mongo: AsyncMongoClient[Any] = AsyncMongoClient(servers.mongodb_url)
        for suffix in ("_p", "_o", "_r"):
            await mongo.drop_database(f"{database}{suffix}")
        await mongo.close()


def potassium(value: str) -> results_pb.Observation:
    return results_pb.Observation(
        code="2823-3", quantity=results_pb.Quantity(value=value, unit="mmol/L")
    )


def request_id() -> str:
    return str(uuid.uuid4())


async def register(clinic: Clinic, registrar: Metadata, given: str, birth_date: str) -> str:
    """A patient registered at the patient service (orders takes no other patient): their id."""
    demographics = patient_pb.Demographics(
        name=patient_pb.HumanName(given=[given], family=unique_name(f"{given}-")),
        birth_date=birth_date, sex=patient_pb.ADMINISTRATIVE_SEX_FEMALE,
    )  # fmt: skip
    registered = await clinic.patients.RegisterPatient(
        patient_pb.RegisterPatientRequest(request_id=request_id(), demographics=demographics),
        metadata=registrar, timeout=CALL_TIMEOUT,
    )  # fmt: skip
    return str(registered.patient_id)


async def place_signed_order(
    clinic: Clinic, patient_id: str, clinician: Metadata, signer: Metadata
) -> tuple[str, int]:
    placed = await clinic.orders.PlaceOrder(
        orders_pb.PlaceOrderRequest(
            request_id=request_id(), patient_id=patient_id, test_code="2823-3",
            priority=orders_pb.PRIORITY_STAT,
            reason_codes=[orders_pb.ReasonCode(system=orders_pb.CODE_SYSTEM_ICD10, code="N18.3")],
        ),
        metadata=clinician, timeout=CALL_TIMEOUT,
    )  # fmt: skip
    signed = await clinic.orders.SignOrder(
        orders_pb.SignOrderRequest(request_id=request_id(), order_id=placed.order_id),
        metadata=signer, timeout=CALL_TIMEOUT,
    )  # fmt: skip
    assert signed.version > placed.version
    return placed.order_id, signed.version


async def test_a_registered_patients_order_is_signed_resulted_amended_and_read_back(
    clinic: Clinic, token_mint: TokenMint
) -> None:
    registrar = token_mint.metadata("registrar-1", Role.REGISTRAR)
    clinician = token_mint.metadata("dr-a", Role.CLINICIAN)
    signer = token_mint.metadata("dr-b", Role.CLINICIAN, privileges=["orders:sign"], mfa=True)
    lab = token_mint.metadata("lab-1", Role.LAB)
    demographics = patient_pb.Demographics(
        name=patient_pb.HumanName(given=["Ada"], family=unique_name("Lovelace-")),
        birth_date="1985-12-10", sex=patient_pb.ADMINISTRATIVE_SEX_FEMALE,
        address=patient_pb.Address(lines=["12 St James's Square"], city="London", country="GB"),
        phone="+44 20 7946 0000",
    )  # fmt: skip

    registered = await clinic.patients.RegisterPatient(
        patient_pb.RegisterPatientRequest(request_id=request_id(), demographics=demographics),
        metadata=registrar, timeout=CALL_TIMEOUT,
    )  # fmt: skip
    patient_id = registered.patient_id
    order_id, signed_version = await place_signed_order(clinic, patient_id, clinician, signer)
    posted = await clinic.results.PostResult(
        results_pb.PostResultRequest(
            request_id=request_id(), order_id=order_id, order_min_version=signed_version,
            observations=[potassium("6.9")],
        ),
        metadata=lab, timeout=CALL_TIMEOUT,
    )  # fmt: skip
    amended = await clinic.results.AmendResult(
        results_pb.AmendResultRequest(
            request_id=request_id(), result_id=posted.result_id,
            kind=results_pb.REVISION_KIND_AMENDMENT, observations=[potassium("5.1")],
            reason="haemolysed sample, redrawn", expected_version=posted.version,
        ),
        metadata=lab, timeout=CALL_TIMEOUT,
    )  # fmt: skip

    patient = await clinic.patients.GetPatient(
        patient_pb.GetPatientRequest(patient_id=patient_id, min_version=registered.version),
        metadata=registrar, timeout=CALL_TIMEOUT,
    )  # fmt: skip
    # Orders hears of the result from the results topic: OrderResulted follows OrderSigned.
    # Until its listener recorded it, that version is OUT_OF_RANGE: the client asks again.
    order = await once_recorded(lambda: clinic.orders.GetOrder(
        orders_pb.GetOrderRequest(order_id=order_id, min_version=signed_version + 1),
        metadata=clinician, timeout=CALL_TIMEOUT,
    ))  # fmt: skip
    listed_orders = await clinic.orders.ListOrders(
        orders_pb.ListOrdersRequest(
            patient_id=patient_id, min_version=order.order.version, min_version_order_id=order_id
        ),
        metadata=clinician, timeout=CALL_TIMEOUT,
    )  # fmt: skip
    result = await clinic.results.GetResult(
        results_pb.GetResultRequest(result_id=posted.result_id, min_version=amended.version),
        metadata=clinician, timeout=CALL_TIMEOUT,
    )  # fmt: skip
    listed_results = await clinic.results.ListResults(
        results_pb.ListResultsRequest(
            patient_id=patient_id, min_version=amended.version,
            min_version_result_id=posted.result_id,
        ),
        metadata=clinician, timeout=CALL_TIMEOUT,
    )  # fmt: skip

    assert patient.patient.patient_id == patient_id
    assert patient.patient.demographics == demographics
    assert order.order.status == orders_pb.ORDER_STATUS_RESULTED
    assert order.order.result_id == posted.result_id
    assert order.order.patient_id == patient_id
    assert order.order.signature.signer == "dr-b"
    assert order.order.signature.mfa
    assert [o.order_id for o in listed_orders.orders] == [order_id]
    assert listed_orders.orders[0].status == orders_pb.ORDER_STATUS_RESULTED
    assert result.result.status == results_pb.RESULT_STATUS_AMENDED
    assert result.result.version == amended.version
    assert result.result.patient_id == patient_id
    assert result.result.order_id == order_id
    assert [o.quantity.value for o in result.result.observations] == ["5.1"]
    revisions = {revision.version: revision for revision in result.result.revisions}
    first = revisions[posted.version]
    assert first.status == results_pb.RESULT_STATUS_FINAL
    assert [o.quantity.value for o in first.observations] == ["6.9"]
    assert revisions[amended.version].reason == "haemolysed sample, redrawn"
    assert [r.result_id for r in listed_results.results] == [posted.result_id]
    assert listed_results.results[0].status == results_pb.RESULT_STATUS_AMENDED


async def test_a_patient_reads_their_own_order_but_not_anothers(
    clinic: Clinic, token_mint: TokenMint
) -> None:
    clinician = token_mint.metadata("dr-a", Role.CLINICIAN)
    signer = token_mint.metadata("dr-b", Role.CLINICIAN, privileges=["orders:sign"], mfa=True)
    registrar = token_mint.metadata("registrar-1", Role.REGISTRAR)
    own_patient = await register(clinic, registrar, "Grace", "1906-12-09")
    other_patient = await register(clinic, registrar, "Hedy", "1914-11-09")
    own_order, own_version = await place_signed_order(clinic, own_patient, clinician, signer)
    other_order, other_version = await place_signed_order(clinic, other_patient, clinician, signer)
    patient = token_mint.metadata("pat-1", Role.PATIENT, patient_id=own_patient)

    own = await clinic.orders.GetOrder(
        orders_pb.GetOrderRequest(order_id=own_order, min_version=own_version),
        metadata=patient, timeout=CALL_TIMEOUT,
    )  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await clinic.orders.GetOrder(
            orders_pb.GetOrderRequest(order_id=other_order, min_version=other_version),
            metadata=patient, timeout=CALL_TIMEOUT,
        )  # fmt: skip

    assert own.order.patient_id == own_patient
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


# Last in the module: the services are shared by its tests.
async def test_services_stop_cleanly_on_sigterm(clinic: Clinic) -> None:
    codes = await asyncio.gather(*(process.terminate() for process in clinic.processes))

    assert codes == [0, 0, 0], "\n\n".join(p.log_tail() for p in clinic.processes)
