"""GetResult and ListResults on the real servers: versions, pages, who reads which results."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from clinical_testing.patients import PatientRegistry
from clinical_testing.tokens import TokenMint

from clinical.results.v1 import results_pb2 as pb
from clinical.results.v1.results_pb2_grpc import ResultServiceStub
from clinical_platform.principals import Role

pytestmark = pytest.mark.integration

Metadata = tuple[tuple[str, str], ...]
PostResult = Callable[..., Awaitable[pb.PostResultResponse]]
PublishOrder = Callable[..., Awaitable[tuple[str, str, int]]]
Fields = Callable[[grpc.aio.AioRpcError], list[str]]


async def code_of(call: Awaitable[object]) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    code: grpc.StatusCode = refused.value.code()
    return code


async def results_for(
    patient_id: str, count: int, post_result: PostResult, publish_order: PublishOrder
) -> list[pb.PostResultResponse]:
    posted = []
    for _ in range(count):
        order_id, _, version = await publish_order("signed", patient_id=patient_id)
        posted.append(await post_result(order_id=order_id, order_min_version=version))
    return posted


async def test_reading_an_unknown_result_is_not_found(
    result_stub: ResultServiceStub, lab: Metadata
) -> None:
    # Lab staff read every result, so they may hear one does not exist (a clinician may not:
    # tests/integration/test_reads_by_relationship.py).
    request = pb.GetResultRequest(result_id=str(uuid.uuid4()))
    assert await code_of(result_stub.GetResult(request, metadata=lab, timeout=10)) == (
        grpc.StatusCode.NOT_FOUND
    )


async def test_a_patient_cannot_tell_an_unknown_result_from_someone_elses(
    post_result: PostResult, result_stub: ResultServiceStub, token_mint: TokenMint
) -> None:
    theirs = await post_result()
    staff = token_mint.metadata("staff", Role.LAB)
    await result_stub.GetResult(  # in the read model: the patient's reads need not wait
        pb.GetResultRequest(result_id=theirs.result_id, min_version=1), metadata=staff, timeout=10
    )
    patient = token_mint.metadata("p-2", Role.PATIENT, patient_id=str(uuid.uuid4()))

    answers = set()
    for result_id, min_version in itertools.product((theirs.result_id, str(uuid.uuid4())), (0, 1)):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await result_stub.GetResult(
                pb.GetResultRequest(result_id=result_id, min_version=min_version),
                metadata=patient,
                timeout=10,
            )
        answers.add((refused.value.code(), refused.value.details()))

    # Not found, and no version 1 in the log for an unknown id: refused as someone else's.
    [(code, _)] = answers
    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_a_version_the_log_does_not_hold_is_out_of_range_without_waiting(
    post_result: PostResult, result_stub: ResultServiceStub, clinician: Metadata
) -> None:
    posted = await post_result()
    # Once the read model shows the result, the service sees it is the clinician's patient's.
    await result_stub.GetResult(
        pb.GetResultRequest(result_id=posted.result_id, min_version=1), metadata=clinician,
        timeout=10,
    )  # fmt: skip
    request = pb.GetResultRequest(result_id=posted.result_id, min_version=2**63 - 1)
    # Far beyond the service's read wait: had it waited, it would be DEADLINE_EXCEEDED.
    assert await code_of(result_stub.GetResult(request, metadata=clinician, timeout=60)) == (
        grpc.StatusCode.OUT_OF_RANGE
    )


BREAK_GLASS = (("x-purpose-of-use", "ETREAT"), ("x-break-glass-reason", "collapsed in clinic"))


@pytest.mark.parametrize("staff", ["lab", "clinician by break-glass"])
async def test_lab_staff_and_a_clinician_by_break_glass_read_any_patients_result(
    post_result: PostResult, result_stub: ResultServiceStub, token_mint: TokenMint, staff: str
) -> None:
    posted = await post_result()
    metadata = (
        token_mint.metadata("staff", Role.LAB) if staff == "lab"
        else (*token_mint.metadata("dr-elsewhere", Role.CLINICIAN), *BREAK_GLASS)
    )  # fmt: skip
    got = await result_stub.GetResult(
        pb.GetResultRequest(result_id=posted.result_id, min_version=1), metadata=metadata,
        timeout=10,
    )  # fmt: skip
    assert got.result.result_id == posted.result_id


async def test_a_patient_reads_their_own_results_and_no_one_elses(
    post_result: PostResult, publish_order: PublishOrder, result_stub: ResultServiceStub,
    token_mint: TokenMint, registered_patients: PatientRegistry,
) -> None:  # fmt: skip
    mine = await registered_patients.register()
    (my_result,) = await results_for(mine, 1, post_result, publish_order)
    their_result = await post_result()
    patient = token_mint.metadata("p-1", Role.PATIENT, patient_id=mine)

    got = await result_stub.GetResult(
        pb.GetResultRequest(result_id=my_result.result_id, min_version=1),
        metadata=patient, timeout=10,
    )  # fmt: skip
    listed = await result_stub.ListResults(
        pb.ListResultsRequest(min_version=1, min_version_result_id=my_result.result_id),
        metadata=patient, timeout=10,
    )  # fmt: skip
    other = result_stub.GetResult(
        pb.GetResultRequest(result_id=their_result.result_id, min_version=1),
        metadata=patient, timeout=10,
    )  # fmt: skip
    other_list = result_stub.ListResults(
        pb.ListResultsRequest(patient_id=str(uuid.uuid4())), metadata=patient, timeout=10
    )

    assert got.result.patient_id == mine
    assert [r.result_id for r in listed.results] == [my_result.result_id]
    assert await code_of(other) == grpc.StatusCode.PERMISSION_DENIED
    assert await code_of(other_list) == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("role", [Role.REGISTRAR, Role.SERVICE, Role.AUDITOR])
async def test_other_roles_do_not_read_results(
    result_stub: ResultServiceStub, token_mint: TokenMint, role: Role
) -> None:
    metadata = token_mint.metadata("someone", role)
    get = result_stub.GetResult(
        pb.GetResultRequest(result_id=str(uuid.uuid4())), metadata=metadata, timeout=10
    )
    listing = result_stub.ListResults(
        pb.ListResultsRequest(patient_id=str(uuid.uuid4())), metadata=metadata, timeout=10
    )
    assert await code_of(get) == grpc.StatusCode.PERMISSION_DENIED
    assert await code_of(listing) == grpc.StatusCode.PERMISSION_DENIED


async def test_reads_without_a_token_are_unauthenticated(result_stub: ResultServiceStub) -> None:
    get = result_stub.GetResult(pb.GetResultRequest(result_id=str(uuid.uuid4())), timeout=10)
    listing = result_stub.ListResults(pb.ListResultsRequest(), timeout=10)
    assert await code_of(get) == grpc.StatusCode.UNAUTHENTICATED
    assert await code_of(listing) == grpc.StatusCode.UNAUTHENTICATED


async def test_a_patients_results_list_newest_first_in_pages_and_by_order(
    post_result: PostResult, publish_order: PublishOrder, result_stub: ResultServiceStub,
    clinician: Metadata, registered_patients: PatientRegistry,
) -> None:  # fmt: skip
    patient_id = await registered_patients.register()
    posted = await results_for(patient_id, 3, post_result, publish_order)
    await post_result()  # another patient's
    for result in posted:  # each result is read-after-write on its own partition
        await result_stub.GetResult(
            pb.GetResultRequest(result_id=result.result_id, min_version=1),
            metadata=clinician, timeout=10,
        )  # fmt: skip

    pages, token = [], ""
    while True:
        page = await result_stub.ListResults(
            pb.ListResultsRequest(patient_id=patient_id, page_size=2, page_token=token),
            metadata=clinician, timeout=10,
        )  # fmt: skip
        pages.append([(r.result_id, r.order_id) for r in page.results])
        token = page.next_page_token
        if not token:
            break
    _, order_of_second = pages[0][1]
    # A clinician names the patient: a list across patients would need break-glass.
    by_order = await result_stub.ListResults(
        pb.ListResultsRequest(patient_id=patient_id, order_id=order_of_second),
        metadata=clinician, timeout=10,
    )  # fmt: skip

    assert [len(page) for page in pages] == [2, 1]
    assert [result_id for page in pages for result_id, _ in page] == [
        p.result_id for p in reversed(posted)
    ]
    assert [r.order_id for r in by_order.results] == [order_of_second]


MALFORMED = {
    "no-filter": ({}, ["patient_id"]),
    "patient-not-uuid": ({"patient_id": "p"}, ["patient_id"]),
    "order-not-uuid": ({"order_id": "o"}, ["order_id"]),
    "page-too-large": ({"patient_id": str(uuid.UUID(int=1)), "page_size": 500}, ["page_size"]),
    "version-without-id": (
        {"patient_id": str(uuid.UUID(int=1)), "min_version": 1},
        ["min_version_result_id"],
    ),
    "bad-token": ({"patient_id": str(uuid.UUID(int=1)), "page_token": "x"}, ["page_token"]),
}


@pytest.mark.parametrize(("request_fields", "violated"), MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_listings_are_invalid_arguments(
    result_stub: ResultServiceStub, lab: Metadata, violated_fields: Fields,
    request_fields: dict[str, Any], violated: list[str],
) -> None:  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await result_stub.ListResults(
            pb.ListResultsRequest(**request_fields), metadata=lab, timeout=10
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(refused.value) == violated
