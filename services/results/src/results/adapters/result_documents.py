"""Queries of the results read model and of the service's view of orders."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from clinical_platform.projections import wait_for_version
from clinical_platform.reads import decode_keyset_token, encode_keyset_token
from clinical_platform.security.forgetting import FORGOTTEN_FIELD
from clinical_platform.versions import time_window
from results.adapters.observation_documents import Document, observation_from_document
from results.domain.errors import RecordOfForgottenPatient
from results.domain.result import OrderState, OrderStatus, ResultStatus
from results.ports import ResultPage, ResultQuery, ResultView, Revision


class MongoResultReadModel:
    """Reads the ``results`` collection the results projection writes."""

    def __init__(self, collection: AsyncCollection[Any]) -> None:
        self._results = collection

    async def get(self, result_id: str, *, min_version: int, wait_s: float) -> ResultView | None:
        document = await wait_for_version(self._results, result_id, min_version, timeout_s=wait_s)
        if document is not None and document.get(FORGOTTEN_FIELD):
            raise RecordOfForgottenPatient(result_id)
        return None if document is None else result_view(document)

    async def list(self, query: ResultQuery) -> ResultPage:
        where: dict[str, Any] = {FORGOTTEN_FIELD: {"$ne": True}}
        if query.patient_id:
            where["patient_id"] = query.patient_id
        if query.order_id:
            where["order_id"] = query.order_id
        # One value is an equality FerretDB answers from an index; several an $in it filters
        # among the patient's (or order's) results.
        for field, values in (("codes", query.codes), ("report_code", query.report_codes),
                              ("status", tuple(str(s) for s in query.statuses))):  # fmt: skip
            if values:
                where[field] = values[0] if len(values) == 1 else {"$in": list(values)}
        if effective := time_window(query.effective_from, query.effective_to):
            where["effective_at"] = effective
        total = await self._results.count_documents(where)
        if query.page_token:
            issued_at, result_id = decode_keyset_token(query.page_token)
            where["$or"] = [
                {"issued_at": {"$lt": issued_at}},
                {"issued_at": issued_at, "_id": {"$gt": result_id}},
            ]
        cursor = (
            self._results.find(where)
            .sort([("issued_at", DESCENDING), ("_id", ASCENDING)])
            .limit(query.page_size + 1)
        )
        documents = [document async for document in cursor]
        views = tuple(result_view(d) for d in documents[: query.page_size])
        more = len(documents) > query.page_size
        token = encode_keyset_token(views[-1].issued_at, views[-1].result_id) if more else ""
        return ResultPage(views, token, total)


class MongoOrderStates:
    """Reads the ``order_states`` collection the order states projection writes."""

    def __init__(self, collection: AsyncCollection[Any]) -> None:
        self._orders = collection

    async def get(self, order_id: str, *, min_version: int, wait_s: float) -> OrderState | None:
        document = await wait_for_version(self._orders, order_id, min_version, timeout_s=wait_s)
        if document is None or "patient_id" not in document:
            return None
        return OrderState(
            order_id=UUID(document["_id"]),
            patient_id=UUID(document["patient_id"]),
            status=OrderStatus(document["status"]),
            version=document["version"],
        )


def result_view(document: Document) -> ResultView:
    """A read-model document as a view."""
    return ResultView(
        result_id=document["_id"],
        version=document["version"],
        order_id=document["order_id"],
        patient_id=document["patient_id"],
        status=ResultStatus(document["status"]),
        observations=tuple(observation_from_document(o) for o in document["observations"]),
        performer=document["performer"],
        effective_at=document["effective_at"],
        issued_at=document["issued_at"],
        revisions=tuple(
            Revision(
                version=r["version"],
                status=ResultStatus(r["status"]),
                observations=tuple(observation_from_document(o) for o in r["observations"]),
                recorded_by=r["recorded_by"],
                recorded_at=r["recorded_at"],
                reason=r["reason"],
            )
            for r in document.get("revisions", ())
        ),
    )
