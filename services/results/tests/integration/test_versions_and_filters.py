"""GetResult of an exact version or as of an instant, and ListResults by code, effective time
and status with its total, on the real servers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from pymongo.asynchronous.database import AsyncDatabase

from clinical.results.v1 import results_pb2 as pb
from clinical.results.v1.results_pb2_grpc import ResultServiceStub
from results.adapters.result_projection import RESULTS_COLLECTION

pytestmark = pytest.mark.integration

Metadata = tuple[tuple[str, str], ...]
PostResult = Callable[..., Awaitable[pb.PostResultResponse]]
PublishOrder = Callable[..., Awaitable[tuple[str, str, int]]]


def timestamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


def glucose(value: str) -> pb.Observation:
    return pb.Observation(code="2345-7", quantity=pb.Quantity(value=value, unit="mg/dL"))


def hemoglobin(value: str) -> pb.Observation:
    return pb.Observation(code="718-7", quantity=pb.Quantity(value=value, unit="g/dL"))


async def test_an_amended_results_first_version_reads_final_with_its_first_values(
    post_result: PostResult, result_stub: ResultServiceStub, lab: Metadata
) -> None:
    posted = await post_result(observations=[glucose("85")])
    await asyncio.sleep(0.05)
    between = datetime.now(UTC)
    await asyncio.sleep(0.05)
    amend = pb.AmendResultRequest(
        request_id=str(uuid.uuid4()), result_id=posted.result_id,
        kind=pb.REVISION_KIND_AMENDMENT, observations=[glucose("120")], reason="new sample",
    )  # fmt: skip
    amended = await result_stub.AmendResult(amend, metadata=lab, timeout=10)

    async def read(**fields: Any) -> pb.Result:
        request = pb.GetResultRequest(result_id=posted.result_id, **fields)
        result: pb.Result = (await result_stub.GetResult(request, metadata=lab, timeout=10)).result
        return result

    first = await read(version=1)
    current = await read(min_version=amended.version)
    at_between = await read(as_of=timestamp(between))

    assert (first.version, first.status) == (1, pb.RESULT_STATUS_FINAL)
    assert [o.quantity.value for o in first.observations] == ["85"]
    assert [r.version for r in first.revisions] == [1]
    assert (current.version, current.status) == (2, pb.RESULT_STATUS_AMENDED)
    assert [o.quantity.value for o in current.observations] == ["120"]
    assert at_between == first
    assert first.recorded_at.ToDatetime() < current.recorded_at.ToDatetime()


async def test_a_version_never_recorded_is_out_of_range_and_an_instant_before_is_not_found(
    post_result: PostResult, result_stub: ResultServiceStub, lab: Metadata
) -> None:
    before = datetime.now(UTC) - timedelta(days=1)
    posted = await post_result()

    async def refused(**fields: Any) -> grpc.StatusCode:
        request = pb.GetResultRequest(result_id=posted.result_id, **fields)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await result_stub.GetResult(request, metadata=lab, timeout=10)
        code: grpc.StatusCode = failed.value.code()
        return code

    assert await refused(version=2) == grpc.StatusCode.OUT_OF_RANGE
    assert await refused(as_of=timestamp(before)) == grpc.StatusCode.NOT_FOUND
    assert await refused(version=1, as_of=timestamp(before)) == grpc.StatusCode.INVALID_ARGUMENT


async def test_results_are_listed_by_code_effective_time_and_status_with_their_total(
    post_result: PostResult, publish_order: PublishOrder, result_stub: ResultServiceStub,
    lab: Metadata,
) -> None:  # fmt: skip
    patient_id = ""
    week_ago = datetime.now(UTC) - timedelta(days=7)
    posted: dict[str, str] = {}
    for name, observations, effective in (
        ("glucose old", [glucose("85")], week_ago),
        ("glucose", [glucose("90")], None),
        ("both", [glucose("95"), hemoglobin("14.1")], None),
        ("hemoglobin", [hemoglobin("13.9")], None),
    ):
        order_id, patient_id, version = await publish_order("signed", patient_id)
        fields: dict[str, Any] = {"order_id": order_id, "order_min_version": version,
                                  "observations": observations}  # fmt: skip
        if effective is not None:
            fields["effective_at"] = timestamp(effective)
        posted[name] = (await post_result(**fields)).result_id
    amend = pb.AmendResultRequest(
        request_id=str(uuid.uuid4()), result_id=posted["hemoglobin"],
        kind=pb.REVISION_KIND_CORRECTION, observations=[hemoglobin("12.9")], reason="typo",
    )  # fmt: skip
    corrected = await result_stub.AmendResult(amend, metadata=lab, timeout=10)

    async def listed(**fields: Any) -> tuple[set[str], int]:
        request = pb.ListResultsRequest(
            patient_id=patient_id, page_size=1, min_version=corrected.version,
            min_version_result_id=posted["hemoglobin"], **fields,
        )  # fmt: skip
        page = await result_stub.ListResults(request, metadata=lab, timeout=10)
        names = {name for name, result_id in posted.items()
                 if result_id in {r.result_id for r in page.results}}  # fmt: skip
        return names, page.total

    assert (await listed(codes=["2345-7"]))[1] == 3
    assert (await listed(codes=["718-7"]))[1] == 2
    assert (await listed(report_codes=["718-7"])) == ({"hemoglobin"}, 1)
    assert (await listed(report_codes=["11502-2"])) == ({"both"}, 1)
    since = timestamp(week_ago + timedelta(days=1))
    assert (await listed(codes=["2345-7"], effective_from=since))[1] == 2
    assert (await listed(effective_to=since)) == ({"glucose old"}, 1)
    assert (await listed(statuses=[pb.RESULT_STATUS_CORRECTED])) == ({"hemoglobin"}, 1)
    assert (await listed(statuses=[pb.RESULT_STATUS_FINAL]))[1] == 3
    assert (await listed(statuses=[pb.RESULT_STATUS_AMENDED])) == (set(), 0)
    assert (await listed())[1] == 4


async def test_an_unknown_status_in_a_listing_is_an_invalid_argument(
    result_stub: ResultServiceStub, lab: Metadata
) -> None:
    request = pb.ListResultsRequest(patient_id=str(uuid.uuid4()), statuses=[7])  # type: ignore[list-item]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await result_stub.ListResults(request, metadata=lab, timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_code_filters_are_indexed_and_pushed_down(
    post_result: PostResult, mongo_database: AsyncDatabase[Any]
) -> None:
    await post_result()  # the projection has set its collection up
    results = mongo_database[RESULTS_COLLECTION]
    indexes = await results.index_information()
    assert {"patient_codes", "patient_report_code"} <= indexes.keys()
    for shape in ({"patient_id": "p", "codes": "2345-7"}, {"patient_id": "p", "report_code": "x"}):
        # An equality on top-level fields FerretDB pushes down to an index (docs/read-models.md;
        # on a collection this small PostgreSQL may still choose to scan).
        explained = await mongo_database.command(
            "explain", {"find": RESULTS_COLLECTION, "filter": shape}
        )
        assert explained["filterPushdown"], shape
