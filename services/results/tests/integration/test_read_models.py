"""The results read models: a replay from scratch rebuilds them exactly; poison is dead-lettered."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.kafka import record_values
from clinical_testing.tokens import TokenMint
from clinical_testing.waiting import eventually
from pymongo.asynchronous.database import AsyncDatabase

from clinical.results.v1 import results_pb2 as pb
from clinical.results.v1.results_pb2_grpc import ResultServiceStub
from clinical_platform.care.relationships import CARE_RELATIONSHIPS
from clinical_platform.clients.kafka import build_producer
from clinical_platform.grpc_server import start_grpc_server
from clinical_platform.projections import dead_letter_topic
from clinical_platform.projections.entrypoint import project
from results.adapters.order_state_projection import ORDER_STATES_COLLECTION
from results.adapters.result_projection import RESULTS_COLLECTION
from results.bootstrap import results_projections, running_results
from results.settings import ResultsSettings

pytestmark = pytest.mark.integration

Metadata = tuple[tuple[str, str], ...]
PublishOrder = Callable[..., Awaitable[tuple[str, str, int]]]


def potassium(value: str) -> pb.Observation:
    return pb.Observation(code="2823-3", quantity=pb.Quantity(value=value, unit="mmol/L"))


async def record_some_history(
    stub: ResultServiceStub, publish_order: PublishOrder, lab: Metadata
) -> int:
    """Three results, one amended and one corrected; returns the number of result events."""
    latest: dict[str, int] = {}
    for value in ("4.1", "5.9", "2.5"):
        order_id, _, version = await publish_order("signed")
        posted = await stub.PostResult(
            pb.PostResultRequest(
                request_id=str(uuid.uuid4()), order_id=order_id, order_min_version=version,
                observations=[potassium(value)],
            ),
            metadata=lab, timeout=10,
        )  # fmt: skip
        latest[posted.result_id] = posted.version
    first, second, _ = latest
    for result_id, kind in ((first, pb.REVISION_KIND_AMENDMENT),
                            (second, pb.REVISION_KIND_CORRECTION)):  # fmt: skip
        amended = await stub.AmendResult(
            pb.AmendResultRequest(
                request_id=str(uuid.uuid4()), result_id=result_id, kind=kind,
                observations=[potassium("7.0")], reason="re-run",
            ),
            metadata=lab, timeout=10,
        )  # fmt: skip
        latest[result_id] = amended.version
    for result_id, version in latest.items():
        read = pb.GetResultRequest(result_id=result_id, min_version=version)
        await stub.GetResult(read, metadata=lab, timeout=10)
    return sum(latest.values())


async def test_replaying_the_topics_from_scratch_rebuilds_the_same_documents(
    *, results_settings: ResultsSettings, token_mint: TokenMint, publish_order: PublishOrder,
    lab: Metadata, mongo_database: AsyncDatabase[Any], second_database: AsyncDatabase[Any],
) -> None:  # fmt: skip
    async with running_results(
        results_settings, verifier=token_mint.verifier_for("results")
    ) as running:
        server = await start_grpc_server(host="127.0.0.1", port=0, services=running.services)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            result_events = await record_some_history(
                ResultServiceStub(channel), publish_order, lab
            )
        await server.stop(0)

    rebuilt_settings = results_settings.model_copy(
        update={"mongodb_database": second_database.name}
    )
    # Results and order states (care relationships follow the patient topic too).
    projections = [p for p in results_projections(rebuilt_settings)
                   if p.collections != (CARE_RELATIONSHIPS,)]  # fmt: skip
    replayed = await project(rebuilt_settings, projections, rebuild=True)

    assert replayed == result_events + 3 * 2  # and each order's OrderPlaced and OrderSigned
    for collection in (RESULTS_COLLECTION, ORDER_STATES_COLLECTION):
        live = await mongo_database[collection].find().sort("_id").to_list()
        rebuilt = await second_database[collection].find().sort("_id").to_list()
        assert len(live) == 3
        for live_document, rebuilt_document in zip(live, rebuilt, strict=True):
            assert rebuilt_document == live_document
    indexes = await second_database[RESULTS_COLLECTION].index_information()
    assert {"patient_issued", "order_issued"} <= set(indexes)


async def test_a_poison_order_event_is_dead_lettered_and_the_view_keeps_going(
    *, servers: ServerEndpoints, results_settings: ResultsSettings,
    result_stub: ResultServiceStub, publish_order: PublishOrder, lab: Metadata,
) -> None:  # fmt: skip
    orders_topic = results_settings.orders_events_topic
    producer = build_producer(servers.kafka)
    await producer.start()
    try:
        await producer.send_and_wait(orders_topic, b"\x00garbage", key=b"poison")
    finally:
        await producer.stop()
    order_id, _, version = await publish_order("signed")

    posted = await result_stub.PostResult(
        pb.PostResultRequest(
            request_id="after-poison", order_id=order_id, order_min_version=version,
            observations=[potassium("4.0")],
        ),
        metadata=lab, timeout=10,
    )  # fmt: skip

    assert posted.version == 1
    dead = await eventually(
        lambda: record_values(
            servers.kafka_bootstrap_servers, dead_letter_topic(orders_topic), committed=False
        )
    )
    # Each projection of the topic (order states, care relationships) sets the poison aside.
    assert dead
    assert set(dead) == {b"\x00garbage"}
