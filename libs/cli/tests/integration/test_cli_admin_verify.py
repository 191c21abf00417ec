"""clinical admin verify: the orders log written and attested by the live service verifies, with
a bar per partition and its latest checkpoint; a record its writer never wrote fails the
verification at its offset (exit 9); a topic that is no event topic, or none at all, is refused."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from clinical_testing.patients import patient_registry
from clinical_testing.plugin import TransitKeyFactory, unique_name
from clinical_testing.tokens import Role, TokenMint
from typer.testing import CliRunner, Result

from clinical_cli.app import app
from clinical_platform.clients.kafka import KafkaConnection, build_admin, build_producer
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.grpc_server import start_grpc_server
from orders.bootstrap import running_orders
from orders.settings import OrdersSettings

from .conftest import OrdersFromEnv

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PATIENT = "5b0c7a53-7d0b-4d3e-9a40-2f3e3c1d6a01"  # registered by the test: orders takes no other


async def test_an_attested_log_verifies_and_a_forged_record_fails_at_its_offset(
    token_mint: TokenMint, transit_key: TransitKeyFactory, orders_from_env: OrdersFromEnv,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # A checkpoint a second after the writes, signed with this test's key (audit reads it too).
    settings = await orders_from_env(VAULT_AUDIT_SIGNING_KEY=transit_key(key_type="ed25519"),
                                     AUDIT_CHECKPOINT_EVERY_SECONDS="1.0")  # fmt: skip
    topic = events_topic(settings.event_log_name)
    # The command reads the audit service's settings: the event topics are this test's one
    # and one that does not exist.
    ghost = events_topic(unique_name("ghost-"))
    pattern = f"^({re.escape(topic)}|{re.escape(ghost)})$"
    monkeypatch.setenv("AUDIT_EVENT_TOPIC_PATTERN", pattern)
    async with patient_registry(settings) as registry:
        await registry.register(PATIENT)
    try:
        async with running_orders(settings, verifier=token_mint.verifier_for("orders")) as live:
            server = await start_grpc_server(host="127.0.0.1", port=0, services=live.services)
            await _place_orders(token_mint, f"127.0.0.1:{server.port}", count=3)
            await server.stop(0)
            clean = await _verified_once_attested()
        forged_at = await _forge_a_record(settings, topic)

        tampered = await _clinical("-o", "json", "admin", "verify", "--topic", topic)
        not_events = await _clinical("admin", "verify", "--topic", "__consumer_offsets")
        missing = await _clinical("admin", "verify", "--topic", ghost)

        assert clean.exit_code == 0, clean.output
        summary = json.loads(clean.stdout)
        assert summary["ok"] is True
        [partition] = summary["partitions"]
        assert (partition["topic"], partition["partition"], partition["records"]) == (topic, 0, 3)
        assert partition["attested_through"] is not None
        assert partition["attested_at"]
        assert re.search(rf"verify {re.escape(topic)} \[0\] .* (\d+)/\1 offsets ", clean.stderr)
        assert tampered.exit_code == 9, tampered.output
        [bad] = json.loads(tampered.stdout)["partitions"]
        assert (bad["ok"], bad["first_bad_offset"]) == (False, forged_at)
        [line] = [line for line in tampered.stderr.splitlines() if line.startswith("error:")]
        assert line.startswith(f"error: DATA_LOSS: {topic} partition 0: first bad offset "
                               f"{forged_at}: ")  # fmt: skip
        assert (not_events.exit_code, missing.exit_code) == (6, 5), (not_events.output,
                                                                     missing.output)  # fmt: skip
    finally:
        admin = build_admin(KafkaConnection.from_settings(settings))
        await admin.start()
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()


async def _clinical(*args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def _verified_once_attested() -> Result:
    """``clinical admin verify`` (every event topic) until the writer's checkpoint covers its
    records: the live service signs one a second after its writes."""
    for _ in range(60):
        verified = await _clinical("-o", "json", "admin", "verify")
        if verified.exit_code != 0:
            return verified
        partitions = json.loads(verified.stdout)["partitions"]
        if partitions and all(p["unattested"] == 0 for p in partitions):
            return verified
        await asyncio.sleep(0.5)
    return verified


async def _place_orders(mint: TokenMint, address: str, *, count: int) -> None:
    runner = CliRunner()
    clinician = ["--token", mint.token("dr-verify", Role.CLINICIAN), "--direct", "-o", "json"]
    assert (
        runner.invoke(app, ["profile", "set", "local", "--set", f"orders={address}"]).exit_code == 0
    )
    for _ in range(count):
        placed = await asyncio.to_thread(runner.invoke, app, [
            *clinician, "order", "place", "--patient-id", PATIENT, "--test-code", "2823-3",
            "--reason", "icd10:N18.3"])  # fmt: skip
        assert placed.exit_code == 0, placed.output


async def _forge_a_record(settings: OrdersSettings, topic: str) -> int:
    """Tampering, as the console's test does it: a record on the topic its writer never wrote."""
    producer = build_producer(KafkaConnection.from_settings(settings))
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, b"forged", partition=0)
    finally:
        await producer.stop()
    return int(sent.offset)
