"""A results service per test: real event store, Mongo read models and projections, in-process.

Each test gets its own event log (a unique log name, so a unique topic), its own orders topic
(onto which tests publish order events as the orders service would), its own database, state
folder and consumer groups.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from clinical_testing.endpoints import ServerEndpoints, isolated_service_values
from clinical_testing.kafka import delete_event_log, publish_envelopes
from clinical_testing.patients import PatientRegistry
from clinical_testing.plugin import TopicFactory, unique_name
from clinical_testing.serving import channel_to
from clinical_testing.tokens import TokenMint
from clinical_testing.waiting import eventually
from google.protobuf.message import Message
from pymongo.asynchronous.database import AsyncDatabase

from clinical.events.v1 import orders_events_pb2 as order_events
from clinical.events.v1.envelope_pb2 import Envelope
from clinical.events.v1.provenance_pb2 import PURPOSE_OF_USE_TREAT
from clinical.results.v1 import results_pb2 as pb
from clinical.results.v1 import results_pb2_grpc
from clinical_platform.care.relationships import CARE_RELATIONSHIPS, ORDERING, relationship_id
from clinical_platform.principals import Role
from results.bootstrap import RunningResults, running_results
from results.settings import ResultsSettings

Metadata = tuple[tuple[str, str], ...]
TIMEOUT_S = 10
ORDERER = "dr-ordering"
# The order events that leave an order in each state, as the orders service records them.
_HISTORIES = {
    "draft": ["OrderPlaced"],
    "signed": ["OrderPlaced", "OrderSigned"],
    "cancelled": ["OrderPlaced", "OrderSigned", "OrderCancelled"],
}


@pytest.fixture
async def results_settings(
    servers: ServerEndpoints,
    mongo_database: AsyncDatabase[Any],
    kafka_topic: TopicFactory,
    tmp_path: Path,
) -> AsyncIterator[ResultsSettings]:
    """Settings of a results service with an event log, orders topic and database of its own."""
    orders_topic = await kafka_topic(prefix="clinical.orders-test.", partitions=3)
    access_topic = await kafka_topic(prefix="clinical.audit.access-test.")
    values = isolated_service_values(
        servers, event_log_name=unique_name("results-"), database=mongo_database.name,
        state_dir=tmp_path / "state", access_topic=access_topic,
    )  # fmt: skip
    settings = ResultsSettings.model_validate(values | {"orders_events_topic": orders_topic})
    yield settings
    await delete_event_log(
        servers.kafka_bootstrap_servers, settings.event_log_name, settings.orders_events_topic
    )


@pytest.fixture
async def results_service(
    results_settings: ResultsSettings, token_mint: TokenMint
) -> AsyncIterator[RunningResults]:
    """A running results service (event store started, projections running)."""
    async with running_results(
        results_settings, verifier=token_mint.verifier_for("results")
    ) as running:
        yield running


@pytest.fixture
async def result_stub(
    results_service: RunningResults,
) -> AsyncIterator[results_pb2_grpc.ResultServiceStub]:
    """A client of the service, served on a free loopback port."""
    async with channel_to(results_service.services) as channel:
        yield results_pb2_grpc.ResultServiceStub(channel)


@pytest.fixture
def lab(token_mint: TokenMint) -> Metadata:
    return token_mint.metadata("lab-tech-1", Role.LAB)


@pytest.fixture
def clinician(token_mint: TokenMint) -> Metadata:
    """The orderer of every order `publish_order` writes: in a care relationship with its
    patient."""
    return token_mint.metadata(ORDERER, Role.CLINICIAN)


def order_envelope(order_id: str, version: int, event_type: str, payload: Message) -> Envelope:
    envelope = Envelope(
        event_id=str(uuid.uuid4()), event_type=event_type, schema_version=1,
        source="//clinical/orders", aggregate_type="Order", aggregate_id=order_id,
        aggregate_version=version, purpose_of_use=PURPOSE_OF_USE_TREAT,
        request_id=str(uuid.uuid4()), payload_type=payload.DESCRIPTOR.full_name,
        payload=payload.SerializeToString(),
    )  # fmt: skip
    envelope.occurred_at.FromDatetime(datetime.now(UTC))
    envelope.actor.subject = ORDERER
    return envelope


def _payload(event_type: str, patient_id: str) -> Message:
    match event_type:
        case "OrderPlaced":
            return order_events.OrderPlaced(
                patient_id=patient_id, priority="routine", orderer=ORDERER,
                test=order_events.OrderedTest(code="2345-7", display="Glucose"),
            )  # fmt: skip
        case "OrderSigned":
            return order_events.OrderSigned(
                signature=order_events.OrderSignature(signer="dr-signing", mfa=True)
            )
        case _:
            return order_events.OrderCancelled(cancelled_by="dr-ordering", reason="declined")


@pytest.fixture
def publish_order(
    servers: ServerEndpoints, results_settings: ResultsSettings,
    mongo_database: AsyncDatabase[Any], registered_patients: PatientRegistry,
) -> Callable[..., Awaitable[tuple[str, str, int]]]:  # fmt: skip
    """Publish an order's history up to a state (for a newly registered patient, unless one is
    given); returns (order id, patient id, version) once the service knows its orderer is in a
    care relationship with the patient."""
    relationships = mongo_database[CARE_RELATIONSHIPS]

    async def publish_history(status: str = "signed", patient_id: str = "") -> tuple[str, str, int]:
        order_id = str(uuid.uuid4())
        patient_id = patient_id or await registered_patients.register()
        history = _HISTORIES[status]
        envelopes = [
            order_envelope(order_id, version, event_type, _payload(event_type, patient_id))
            for version, event_type in enumerate(history, start=1)
        ]
        await publish_envelopes(
            servers.kafka_bootstrap_servers, results_settings.orders_events_topic, *envelopes
        )
        ordering = {"_id": relationship_id(patient_id, ORDERER, ORDERING), "active": True}
        assert await eventually(lambda: relationships.find_one(ordering), within_s=TIMEOUT_S)
        return order_id, patient_id, len(history)

    return publish_history


def _glucose(value: str, unit: str = "mg/dL") -> pb.Observation:
    return pb.Observation(code="2345-7", quantity=pb.Quantity(value=value, unit=unit))


@pytest.fixture
def post_result(
    result_stub: results_pb2_grpc.ResultServiceStub,
    lab: Metadata,
    publish_order: Callable[..., Awaitable[tuple[str, str, int]]],
) -> Callable[..., Awaitable[pb.PostResultResponse]]:
    """Post a glucose result for a freshly signed order (fields and metadata overridable)."""

    async def post(metadata: Metadata = lab, **fields: Any) -> pb.PostResultResponse:
        if "order_id" not in fields:
            order_id, _, version = await publish_order("signed")
            fields |= {"order_id": order_id, "order_min_version": version}
        defaults: dict[str, Any] = {
            "request_id": str(uuid.uuid4()),
            "observations": [_glucose("85")],
        }
        response: pb.PostResultResponse = await result_stub.PostResult(
            pb.PostResultRequest(**(defaults | fields)), metadata=metadata, timeout=TIMEOUT_S
        )
        return response

    return post
