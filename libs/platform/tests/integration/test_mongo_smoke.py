"""The MongoDB-protocol server (FerretDB) works with pymongo's AsyncMongoClient."""

from typing import Any

import pytest
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from clinical_platform.projections import ensure_indexes

pytestmark = pytest.mark.integration


async def test_insert_query_and_unique_index(mongo_database: AsyncDatabase[Any]) -> None:
    orders = mongo_database["orders"]
    await orders.create_index([("order_id", ASCENDING)], unique=True)
    await orders.insert_many(
        [
            {"order_id": "o-1", "patient_id": "p-1", "status": "signed"},
            {"order_id": "o-2", "patient_id": "p-1", "status": "draft"},
            {"order_id": "o-3", "patient_id": "p-2", "status": "signed"},
        ]
    )

    signed = await orders.find({"status": "signed"}).sort("order_id", ASCENDING).to_list()
    index_names = [index["name"] async for index in await orders.list_indexes()]

    assert [doc["order_id"] for doc in signed] == ["o-1", "o-3"]
    assert "order_id_1" in index_names
    with pytest.raises(DuplicateKeyError):
        await orders.insert_one({"order_id": "o-1", "patient_id": "p-9"})


async def test_ensuring_existing_compound_indexes_again_is_harmless(
    mongo_database: AsyncDatabase[Any],
) -> None:
    # FerretDB 1.24 drops the connection on a repeated create_indexes of a compound index; a
    # projection re-ensures its indexes on every start, so this must be a no-op.
    orders = mongo_database["orders"]
    indexes = [
        IndexModel([("patient_id", ASCENDING), ("placed_at", DESCENDING)]),
        IndexModel([("status", ASCENDING), ("placed_at", DESCENDING)]),
    ]

    for _start in range(3):
        await ensure_indexes(orders, indexes)

    names = sorted([index["name"] async for index in await orders.list_indexes()])
    assert names == ["_id_", "patient_id_1_placed_at_-1", "status_1_placed_at_-1"]
    assert await orders.count_documents({}) == 0
