"""Queries of the orders read model: one order (waiting for a version) and pages by patient."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from clinical_platform.projections import wait_for_version
from clinical_platform.reads import decode_keyset_token, encode_keyset_token
from clinical_platform.security.forgetting import FORGOTTEN_FIELD
from orders.domain.errors import RecordOfForgottenPatient
from orders.domain.order import (
    CodeSystem,
    OrderedTest,
    OrderSignature,
    OrderStatus,
    Priority,
    ReasonCode,
)
from orders.ports import Cancellation, OrderPage, OrderQuery, OrderView


class MongoOrderReadModel:
    """Reads the ``orders`` collection the orders projection writes."""

    def __init__(self, collection: AsyncCollection[Any]) -> None:
        self._orders = collection

    async def get(self, order_id: str, *, min_version: int, wait_s: float) -> OrderView | None:
        document = await wait_for_version(self._orders, order_id, min_version, timeout_s=wait_s)
        if document is not None and document.get(FORGOTTEN_FIELD):
            raise RecordOfForgottenPatient(order_id)
        return None if document is None else order_view(document)

    async def list(self, query: OrderQuery) -> OrderPage:
        where: dict[str, Any] = {"patient_id": query.patient_id, FORGOTTEN_FIELD: {"$ne": True}}
        if query.status is not None:
            where["status"] = str(query.status)
        if query.page_token:
            placed_at, order_id = decode_keyset_token(query.page_token)
            where["$or"] = [
                {"placed_at": {"$lt": placed_at}},
                {"placed_at": placed_at, "_id": {"$gt": order_id}},
            ]
        cursor = (
            self._orders.find(where)
            .sort([("placed_at", DESCENDING), ("_id", ASCENDING)])
            .limit(query.page_size + 1)
        )
        documents = [document async for document in cursor]
        views = tuple(order_view(d) for d in documents[: query.page_size])
        more = len(documents) > query.page_size
        token = encode_keyset_token(views[-1].placed_at, views[-1].order_id) if more else ""
        return OrderPage(views, token)


def order_view(document: dict[str, Any]) -> OrderView:
    """A read-model document as a view."""
    signature = document.get("signature")
    cancellation = document.get("cancellation")
    return OrderView(
        order_id=document["_id"],
        version=document["version"],
        patient_id=document["patient_id"],
        test=OrderedTest(**document["test"]),
        priority=Priority(document["priority"]),
        reasons=tuple(
            ReasonCode(CodeSystem(r["system"]), r["code"]) for r in document.get("reasons", ())
        ),
        orderer=document["orderer"],
        placed_at=document["placed_at"],
        status=OrderStatus(document["status"]),
        signature=OrderSignature(**signature) if signature else None,
        cancellation=Cancellation(**cancellation) if cancellation else None,
        result_id=document.get("result_id"),
        resulted_at=document.get("resulted_at"),
    )
