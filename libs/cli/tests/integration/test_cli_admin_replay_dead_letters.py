"""clinical admin replay-dead-letters: an order the projection set aside (its event quarantined
on the dead-letter topic, the read model without it) is replayed into the read model; a dead
letter that still fails is set aside again, once, and the command exits 10; the next replay
starts after what the last one read."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from clinical_testing.patients import patient_registry
from clinical_testing.tokens import Role, TokenMint
from pymongo.asynchronous.database import AsyncDatabase
from typer.testing import CliRunner, Result

from clinical_cli.app import app
from clinical_platform.clients.kafka import (
    KafkaConnection,
    build_admin,
    build_consumer,
    build_producer,
)
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.grpc_server import start_grpc_server
from clinical_platform.projections.applier import dead_letter_topic, quarantine
from orders.bootstrap import running_orders

from .conftest import OrdersFromEnv

pytestmark = pytest.mark.integration

PATIENT = "0d9f0f3e-2f7e-4a7c-9f57-0c1f1d8e2b11"  # registered by the test: orders takes no other


async def test_a_dead_lettered_order_is_replayed_into_the_read_model(
    mongo_database: AsyncDatabase[Any], token_mint: TokenMint, orders_from_env: OrdersFromEnv
) -> None:
    settings = await orders_from_env()
    log = settings.event_log_name
    topic = events_topic(log)
    kafka = KafkaConnection.from_settings(settings)
    replay = ["-o", "json", "admin", "replay-dead-letters", "orders", "--only", f"{log}.orders"]
    try:
        async with patient_registry(settings) as registry:
            await registry.register(PATIENT)
        async with running_orders(settings, verifier=token_mint.verifier_for("orders")) as live:
            server = await start_grpc_server(host="127.0.0.1", port=0, services=live.services)
            order_id = await _place_an_order(token_mint, f"127.0.0.1:{server.port}")
            await server.stop(0)
        orders = mongo_database["orders"]
        placed = await orders.find_one({"_id": order_id})
        # As if the projection had failed on the event: set aside, never in the read model.
        await orders.delete_one({"_id": order_id})
        await _quarantine_the_topic(kafka, topic)
        await _dead_letter(kafka, topic, b"not an envelope")

        first = await _clinical(*replay)
        again = await _clinical(*replay)

        assert first.exit_code == 10, first.output
        [report] = json.loads(first.stdout)["projections"]
        assert report == {"projection": f"{log}.orders", "replayed": 2, "applied": 1,
                          "still_failing": 1}  # fmt: skip
        assert await orders.find_one({"_id": order_id}) == placed
        assert "error: STILL_FAILING: 1 of 2 dead letters failed again" in first.stderr
        assert f"replay {log}.orders" in first.stderr
        # The second replay reads only the one set aside again, and sets it aside once more.
        assert again.exit_code == 10, again.output
        assert json.loads(again.stdout)["projections"][0]["replayed"] == 1
        assert await _dead_letter_count(kafka, topic) == 4  # 2 quarantined, then 1 per replay
    finally:
        admin = build_admin(kafka)
        await admin.start()
        try:
            await admin.delete_topics([topic, dead_letter_topic(topic)])
        finally:
            await admin.close()


async def _clinical(*args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def _place_an_order(mint: TokenMint, address: str) -> str:
    runner = CliRunner()
    assert (
        runner.invoke(app, ["profile", "set", "local", "--set", f"orders={address}"]).exit_code == 0
    )
    clinician = ["--token", mint.token("dr-replay", Role.CLINICIAN), "--direct", "-o", "json"]
    placed = await _clinical(*clinician, "order", "place", "--patient-id", PATIENT,
                             "--test-code", "2823-3", "--reason", "icd10:N18.3")  # fmt: skip
    assert placed.exit_code == 0, placed.output
    order_id = str(json.loads(placed.stdout)["order_id"])
    lab = ["--token", mint.token("lab-replay", Role.LAB), "--direct", "-o", "json"]
    read = await _clinical(*lab, "order", "get", order_id, "--min-version", "1")
    assert read.exit_code == 0, read.output
    return order_id


async def _quarantine_the_topic(kafka: KafkaConnection, topic: str) -> None:
    """Every record of the topic set aside as the projection's applier does it."""
    consumer = build_consumer(kafka)
    producer = build_producer(kafka)
    await consumer.start()
    await producer.start()
    try:
        source = TopicPartition(topic, 0)
        consumer.assign([source])
        end = (await consumer.end_offsets([source]))[source]
        while await consumer.position(source) < end:
            fetched = await consumer.getmany(source, timeout_ms=1000)
            for record in fetched.get(source, []):
                await quarantine(record, ValueError("a bug since fixed"), producer)
    finally:
        await consumer.stop()
        await producer.stop()


async def _dead_letter(kafka: KafkaConnection, topic: str, value: bytes) -> None:
    """A poison record (no envelope at all) quarantined from the topic's offset 999."""
    producer = build_producer(kafka)
    await producer.start()
    try:
        record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
            topic, 0, 999, 0, 0, None, value, None, 0, len(value), ()
        )
        await quarantine(record, ValueError("undecodable"), producer)
    finally:
        await producer.stop()


async def _dead_letter_count(kafka: KafkaConnection, topic: str) -> int:
    consumer = build_consumer(kafka)
    await consumer.start()
    try:
        dead = TopicPartition(dead_letter_topic(topic), 0)
        return int((await consumer.end_offsets([dead]))[dead])
    finally:
        await consumer.stop()
