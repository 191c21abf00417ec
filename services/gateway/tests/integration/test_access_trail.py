"""Refusals at the front door land on the platform's access trail, as DENIED access records."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.kafka import read_records
from clinical_testing.keycloak import Keycloak
from clinical_testing.plugin import TopicFactory

from clinical.audit.v1.access_pb2 import ACCESS_OUTCOME_DENIED, AccessRecord
from gateway.application import GatewayApp

pytestmark = pytest.mark.integration

GatewayFactory = Callable[..., Awaitable[tuple[httpx.AsyncClient, GatewayApp]]]


async def test_refused_tokens_and_scopes_are_denied_access_records(
    servers: ServerEndpoints, kafka_topic: TopicFactory, keycloak: Keycloak,
    make_gateway: GatewayFactory, tmp_path: Path,
) -> None:  # fmt: skip
    topic = await kafka_topic(prefix="clinical.audit.access-test.", partitions=1)
    client, _ = await make_gateway(**{
        "access_trail": True, "state_dir": tmp_path / "gateway", "ACCESS_AUDIT_TOPIC": topic,
        "ACCESS_AUDIT_PARTITIONS": 1,
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap_servers,
    })  # fmt: skip
    lab = keycloak.user_token("lab", "user/Observation.rs")
    forged = lab[:-4] + ("AAAA" if not lab.endswith("AAAA") else "BBBB")
    headers = {"x-request-id": "trail-1"}
    await client.get("/api/v1/whoami", headers={**headers, "authorization": f"Bearer {forged}"})
    await client.post("/api/v1/results", json={},
                      headers={**headers, "authorization": f"Bearer {lab}"})  # fmt: skip

    records: list[AccessRecord] = []
    for _ in range(60):
        records = [
            AccessRecord.FromString(r.value) for r in await read_records(servers.kafka, topic)
        ]
        if len(records) >= 2:
            break
        await asyncio.sleep(0.5)
    assert [(r.outcome, r.source, r.request_id) for r in records] == [
        (ACCESS_OUTCOME_DENIED, "//clinical/gateway", "trail-1")
    ] * 2
    assert [r.reason for r in records] == ["signature invalid", "insufficient scope"]
    assert records[0].actor.subject == "unauthenticated"
    assert (records[1].operation, records[1].actor.client_id) == ("PostResult", "clinical-cli")
    assert forged not in str(records)
