"""Queries of the orders read model: one order (waiting for a version; the current one, an
exact one or the one current at an instant) and pages by patient, test and placing time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from clinical_platform.projections import wait_for_version
from clinical_platform.reads import (
    VersionNotRecorded,
    decode_keyset_token,
    encode_keyset_token,
)
from clinical_platform.security.forgetting import FORGOTTEN_FIELD
from clinical_platform.versions import VersionWanted, time_window
from orders.domain.errors import OrderNotFound, RecordOfForgottenPatient
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

    async def get(
        self, order_id: str, *, min_version: int, wait_s: float, wanted: VersionWanted = None
    ) -> OrderView | None:
        document = await wait_for_version(self._orders, order_id, min_version, timeout_s=wait_s)
        if document is not None and document.get(FORGOTTEN_FIELD):
            raise RecordOfForgottenPatient(order_id)
        if document is None:
            return None
        return order_view(document if wanted is None else version_document(document, wanted))

    async def list(self, query: OrderQuery) -> OrderPage:
        where: dict[str, Any] = {"patient_id": query.patient_id, FORGOTTEN_FIELD: {"$ne": True}}
        if query.status is not None:
            where["status"] = str(query.status)
        if query.test_codes:
            # One code is an equality FerretDB answers from an index; several an $in it filters.
            codes = list(query.test_codes)
            where["test_code"] = codes[0] if len(codes) == 1 else {"$in": codes}
        if placed := time_window(query.authored_from, query.authored_to):
            where["placed_at"] = placed
        total = await self._orders.count_documents(where)
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
        return OrderPage(views, token, total)


def version_document(document: dict[str, Any], wanted: int | datetime) -> dict[str, Any]:
    """The document as it was at version ``wanted`` or at instant ``wanted``: the fold of its
    history's entries up to it. VersionNotRecorded for a version it does not hold;
    OrderNotFound for an instant before the order was placed."""
    history = sorted(document.get("history", ()), key=lambda entry: int(entry["version"]))
    if isinstance(wanted, datetime):
        upto = [e for e in history if e["recorded_at"] <= wanted]
        if not upto:
            raise OrderNotFound(document["_id"])
    else:
        upto = [e for e in history if int(e["version"]) <= wanted]
        if not upto or int(upto[-1]["version"]) != wanted:
            raise VersionNotRecorded(wanted, "version")
    folded: dict[str, Any] = {"_id": document["_id"]}
    for entry in upto:
        folded.update(entry["set"])
    return {**folded, "version": upto[-1]["version"], "recorded_at": upto[-1]["recorded_at"]}


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
        recorded_at=document.get("recorded_at"),
    )
