"""The local read-model store answers pushed-down equality filters from indexes, not scans.

FerretDB on PostgreSQL (infra/local/localinfra/postgresql.py): each index FerretDB creates gets
a GIN companion the ``@>`` filter can use, and custom plans let the planner see the field.
PostgreSQL's own plan, from ``explain``, is the evidence.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from clinical_testing.endpoints import ServerEndpoints
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration

DOCUMENTS = 20_000


@pytest.fixture
async def database(servers: ServerEndpoints) -> AsyncIterator[AsyncDatabase[Any]]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(servers.mongodb_url)
    name = f"indexes_{uuid.uuid4().hex[:12]}"
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


def _nodes(plan: dict[str, Any]) -> list[str]:
    return [plan["Node Type"], *(n for child in plan.get("Plans", []) for n in _nodes(child))]


async def test_equality_on_an_indexed_field_is_answered_from_an_index(
    database: AsyncDatabase[Any],
) -> None:
    things = database["things"]
    await things.create_index([("family", ASCENDING)])
    await things.create_index([("patient_id", ASCENDING), ("status", ASCENDING)])
    await things.insert_many(
        [
            {"_id": f"t{n}", "patient_id": f"p{n % 2000}", "status": "signed" if n % 3 else "draft",
             "family": f"family{n % 5000}", "given": [f"given{n % 700}", "ann"]}
            for n in range(DOCUMENTS)
        ]
    )  # fmt: skip

    await things.create_index([("given", ASCENDING)])
    shapes = [{"_id": "t1234"}, {"family": "family42"}, {"given": "given42"},
              {"patient_id": "p7", "status": "draft"}]  # fmt: skip
    for shape in shapes:
        plan = await database.command("explain", {"find": "things", "filter": shape})
        nodes = _nodes(plan["queryPlanner"]["Plan"])
        assert "Seq Scan" not in nodes, (shape, nodes)
        assert any("Index" in node for node in nodes), (shape, nodes)
        assert plan["filterPushdown"], shape

    assert await things.count_documents({"given": "given42"}) == len(range(42, DOCUMENTS, 700))
