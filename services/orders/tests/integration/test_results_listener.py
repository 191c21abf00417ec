"""Orders hears of results: ResultPosted on the results topic makes a signed order resulted."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import grpc
import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.eventlog import read_topic
from clinical_testing.kafka import publish_envelopes
from clinical_testing.patients import PatientRegistry
from clinical_testing.waiting import once_recorded

from clinical.events.v1.envelope_pb2 import Envelope
from clinical.events.v1.provenance_pb2 import PURPOSE_OF_USE_TREAT
from clinical.events.v1.results_events_pb2 import ResultPosted
from clinical.orders.v1 import orders_pb2 as pb
from clinical.orders.v1.orders_pb2_grpc import OrderServiceStub
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.projections import dead_letter_topic
from orders.settings import OrdersSettings

pytestmark = pytest.mark.integration

PlaceOrder = Callable[..., Awaitable[pb.PlaceOrderResponse]]
SignOrder = Callable[[str], Awaitable[pb.SignOrderResponse]]
Metadata = tuple[tuple[str, str], ...]


def result_posted(order_id: str, patient_id: str) -> Envelope:
    """A ResultPosted as the results service records it (built by hand: no results imports)."""
    now = datetime.now(UTC)
    posted = ResultPosted(order_id=order_id, patient_id=patient_id, performer="lab-tech-1")
    posted.issued_at.FromDatetime(now)
    posted.effective_at.FromDatetime(now)
    envelope = Envelope(
        event_id=str(uuid.uuid4()), event_type="ResultPosted", schema_version=1,
        source="//clinical/results", aggregate_type="LabResult",
        aggregate_id=str(uuid.uuid4()), aggregate_version=1,
        purpose_of_use=PURPOSE_OF_USE_TREAT, request_id="lab-request-1",
        correlation_id="workflow-1", causation_id="lab-request-1",
        payload_type="clinical.events.v1.ResultPosted", payload=posted.SerializeToString(),
    )  # fmt: skip
    envelope.occurred_at.FromDatetime(now)
    envelope.actor.subject = "lab-tech-1"
    return envelope


async def signed_order(
    place_order: PlaceOrder, sign_order: SignOrder, patients: PatientRegistry,
    order_stub: OrderServiceStub, clinician: Metadata,
) -> tuple[pb.PlaceOrderResponse, str]:  # fmt: skip
    """A signed order, once the read model holds its signature: a read of a later version
    (the result's) then finds the order and its orderer, however busy the machine is."""
    patient_id = await patients.register()
    placed = await place_order(patient_id=patient_id)
    signed = await sign_order(placed.order_id)
    await order_stub.GetOrder(
        pb.GetOrderRequest(order_id=placed.order_id, min_version=signed.version),
        metadata=clinician, timeout=10,
    )  # fmt: skip
    return placed, patient_id


async def until_on_topic(servers: ServerEndpoints, topic: str, count: int) -> list[Envelope]:
    for _ in range(100):
        found = await read_topic(servers.kafka_bootstrap_servers, topic)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} records reached {topic}")


async def test_a_posted_result_makes_the_signed_order_resulted_once(
    *, place_order: PlaceOrder, sign_order: SignOrder, order_stub: OrderServiceStub,
    clinician: Metadata, servers: ServerEndpoints, orders_settings: OrdersSettings,
    registered_patients: PatientRegistry,
) -> None:  # fmt: skip
    placed, patient_id = await signed_order(
        place_order, sign_order, registered_patients, order_stub, clinician
    )
    posted = result_posted(placed.order_id, patient_id)

    # Delivered twice: the listener must record the fact once.
    await publish_envelopes(
        servers.kafka_bootstrap_servers, orders_settings.results_events_topic, posted, posted
    )

    # OrderResulted (version 3) is the listener's to record: asked for before, it is refused.
    got = await once_recorded(lambda: order_stub.GetOrder(
        pb.GetOrderRequest(order_id=placed.order_id, min_version=3), metadata=clinician, timeout=10
    ))  # fmt: skip
    assert got.order.status == pb.ORDER_STATUS_RESULTED
    assert got.order.result_id == posted.aggregate_id
    recorded = await read_topic(
        servers.kafka_bootstrap_servers, events_topic(orders_settings.event_log_name)
    )
    resulted = [e for e in recorded if e.event_type == "OrderResulted"]
    assert len(resulted) == 1
    assert (resulted[0].causation_id, resulted[0].correlation_id) == (
        posted.event_id, "workflow-1",
    )  # fmt: skip
    assert resulted[0].actor.on_behalf_of == "lab-tech-1"
    assert resulted[0].actor.subject == f"service:{orders_settings.event_log_name}"


async def test_a_resulted_order_can_no_longer_be_cancelled(
    *, place_order: PlaceOrder, sign_order: SignOrder, order_stub: OrderServiceStub,
    clinician: Metadata, servers: ServerEndpoints, orders_settings: OrdersSettings,
    registered_patients: PatientRegistry,
) -> None:  # fmt: skip
    placed, patient_id = await signed_order(
        place_order, sign_order, registered_patients, order_stub, clinician
    )
    await publish_envelopes(
        servers.kafka_bootstrap_servers,
        orders_settings.results_events_topic,
        result_posted(placed.order_id, patient_id),
    )
    await once_recorded(lambda: order_stub.GetOrder(
        pb.GetOrderRequest(order_id=placed.order_id, min_version=3), metadata=clinician, timeout=10
    ))  # fmt: skip

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await order_stub.CancelOrder(
            pb.CancelOrderRequest(request_id="c-1", order_id=placed.order_id, reason="late"),
            metadata=clinician, timeout=10,
        )  # fmt: skip

    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_result_for_a_cancelled_order_is_dead_lettered_and_the_listener_goes_on(
    *, place_order: PlaceOrder, sign_order: SignOrder, order_stub: OrderServiceStub,
    clinician: Metadata, servers: ServerEndpoints, orders_settings: OrdersSettings,
    registered_patients: PatientRegistry,
) -> None:  # fmt: skip
    cancelled, cancelled_patient = await signed_order(
        place_order, sign_order, registered_patients, order_stub, clinician
    )
    await order_stub.CancelOrder(
        pb.CancelOrderRequest(request_id="c-1", order_id=cancelled.order_id, reason="declined"),
        metadata=clinician, timeout=10,
    )  # fmt: skip
    later, later_patient = await signed_order(
        place_order, sign_order, registered_patients, order_stub, clinician
    )
    refused = result_posted(cancelled.order_id, cancelled_patient)

    await publish_envelopes(servers.kafka_bootstrap_servers, orders_settings.results_events_topic,
        refused, result_posted(later.order_id, later_patient),
    )  # fmt: skip

    got = await once_recorded(lambda: order_stub.GetOrder(
        pb.GetOrderRequest(order_id=later.order_id, min_version=3), metadata=clinician, timeout=10
    ))  # fmt: skip
    assert got.order.status == pb.ORDER_STATUS_RESULTED
    dead = await until_on_topic(
        servers, dead_letter_topic(orders_settings.results_events_topic), count=1
    )
    assert [e.event_id for e in dead] == [refused.event_id]
