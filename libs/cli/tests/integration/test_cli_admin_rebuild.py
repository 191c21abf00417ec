"""clinical admin rebuild: the orders read model dropped and replayed from the real topic, with
a progress bar on stderr, ends equal, document for document, to what the live service wrote."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.patients import patient_registry
from clinical_testing.tokens import Role, TokenMint
from clinical_testing.waiting import eventually
from pymongo.asynchronous.database import AsyncDatabase
from typer.testing import CliRunner

from clinical_cli.app import app
from clinical_platform.clients.kafka import build_admin
from clinical_platform.eventlog.topics import ensure_topic, event_topic_spec, events_topic
from clinical_platform.grpc_server import start_grpc_server
from orders.bootstrap import running_orders

from .conftest import OrdersFromEnv

pytestmark = pytest.mark.integration

# Registered by the test: orders takes no order for a patient who was never registered.
PATIENTS = ("5b0c7a53-7d0b-4d3e-9a40-2f3e3c1d6a01", "0d9f0f3e-2f7e-4a7c-9f57-0c1f1d8e2b11")


async def read_model(database: AsyncDatabase[Any]) -> dict[str, list[Any]]:
    names = sorted(n for n in await database.list_collection_names() if not n.startswith("system."))
    return {name: await database[name].find().sort("_id").to_list() for name in names}


async def test_rebuild_shows_progress_and_leaves_the_read_model_as_it_was(
    servers: ServerEndpoints, mongo_database: AsyncDatabase[Any], token_mint: TokenMint,
    orders_from_env: OrdersFromEnv,
) -> None:  # fmt: skip
    settings = await orders_from_env(partitions=3)
    log = settings.event_log_name
    admin = build_admin(servers.kafka)
    await admin.start()
    await ensure_topic(admin, event_topic_spec(log, partitions=3, replication_factor=1,
                                               min_insync_replicas=1))  # fmt: skip
    runner = CliRunner()
    try:
        async with patient_registry(settings) as registry:
            for patient in PATIENTS:
                await registry.register(patient)
        async with running_orders(settings, verifier=token_mint.verifier_for("orders")) as live:
            server = await start_grpc_server(host="127.0.0.1", port=0, services=live.services)
            await _record_history(runner, token_mint, f"127.0.0.1:{server.port}")

            # The orders are read back at their versions; the care relationships they make
            # (two orderings, one signing) are a projection of their own, which may lag.
            async def relationships_projected() -> bool:
                return await mongo_database["care_relationships"].count_documents({}) == 3

            await eventually(relationships_projected)
            await server.stop(0)
        before = await read_model(mongo_database)

        command = ["-o", "json", "admin", "rebuild", "orders", "--yes"]
        rebuilt = await asyncio.to_thread(runner.invoke, app, command)

        assert rebuilt.exit_code == 0, rebuilt.output
        summary = json.loads(rebuilt.stdout)
        # 3 placed, 2 signed, 1 cancelled: once for the orders, once for care relationships.
        assert summary["events_replayed"] == 12, rebuilt.stderr
        assert summary["projections"] == [f"{log}.orders", f"{log}.care-relationships"]
        # The bars' last frame: every offset of the topic replayed (transaction markers count).
        bars = rebuilt.stderr.splitlines()
        assert [line.split()[1] for line in bars] == summary["projections"]
        for line in bars:
            assert re.search(r" (\d+)/\1 offsets \d+:\d\d:\d\d ETA ", line), line
        assert await read_model(mongo_database) == before
        assert before["orders"]
    finally:
        await admin.delete_topics([events_topic(log)])
        await admin.close()


async def _record_history(runner: CliRunner, mint: TokenMint, address: str) -> None:
    direct = ["--direct", "-o", "json"]
    clinician = ["--token", mint.token("dr-rebuild", Role.CLINICIAN), *direct]
    signing = mint.token("dr-rebuild-sign", Role.CLINICIAN, privileges=["orders:sign"], mfa=True)
    signer = ["--token", signing, *direct]
    lab = ["--token", mint.token("lab-rebuild", Role.LAB), *direct]
    profile = ["profile", "set", "local", "--set", f"orders={address}"]
    assert runner.invoke(app, profile).exit_code == 0

    async def clinical(*args: str) -> dict[str, Any]:
        result = await asyncio.to_thread(runner.invoke, app, list(args))
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.stdout))

    order_ids: list[str] = []
    for patient in PATIENTS:
        for _ in range(1 if order_ids else 2):
            placed = await clinical(*clinician, "order", "place", "--patient-id", patient,
                                    "--test-code", "2823-3", "--reason", "icd10:N18.3")  # fmt: skip
            order_ids.append(placed["order_id"])
    await clinical(*signer, "order", "sign", order_ids[0])
    await clinical(*signer, "order", "sign", order_ids[1])
    await clinical(*clinician, "order", "cancel", order_ids[2], "--reason", "duplicate")
    for order_id, version in zip(order_ids, ("2", "2", "2"), strict=True):
        await clinical(*lab, "order", "get", order_id, "--min-version", version)
