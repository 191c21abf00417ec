"""AmendResult on the real servers: amendments and corrections keep every earlier revision."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from clinical_testing.tokens import TokenMint

from clinical.results.v1 import results_pb2 as pb
from clinical.results.v1.results_pb2_grpc import ResultServiceStub
from clinical_platform.principals import Role

pytestmark = pytest.mark.integration

Metadata = tuple[tuple[str, str], ...]
PostResult = Callable[..., Awaitable[pb.PostResultResponse]]
Fields = Callable[[grpc.aio.AioRpcError], list[str]]


def glucose(value: str) -> pb.Observation:
    return pb.Observation(code="2345-7", quantity=pb.Quantity(value=value, unit="mg/dL"))


def amendment(
    result_id: str,
    value: str = "120",
    kind: pb.RevisionKind.ValueType = pb.REVISION_KIND_AMENDMENT,
    reason: str = "re-run on a new sample",
    **fields: Any,
) -> pb.AmendResultRequest:
    return pb.AmendResultRequest(
        request_id=str(uuid.uuid4()), result_id=result_id, kind=kind,
        observations=[glucose(value)], reason=reason, **fields,
    )  # fmt: skip


async def code_of(call: Awaitable[object]) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    code: grpc.StatusCode = refused.value.code()
    return code


async def test_amendments_and_corrections_keep_every_revision_with_its_reason(
    post_result: PostResult, result_stub: ResultServiceStub, lab: Metadata, clinician: Metadata
) -> None:
    posted = await post_result(observations=[glucose("85")])
    amended = await result_stub.AmendResult(
        amendment(posted.result_id, "120", reason="late-arriving sample"), metadata=lab, timeout=10
    )
    corrected = await result_stub.AmendResult(
        amendment(posted.result_id, "600", pb.REVISION_KIND_CORRECTION, "transcription error"),
        metadata=lab, timeout=10,
    )  # fmt: skip

    got = await result_stub.GetResult(
        pb.GetResultRequest(result_id=posted.result_id, min_version=corrected.version),
        metadata=clinician, timeout=10,
    )  # fmt: skip

    result = got.result
    assert (amended.version, corrected.version) == (2, 3)
    assert result.status == pb.RESULT_STATUS_CORRECTED
    assert [o.quantity.value for o in result.observations] == ["600"]
    assert result.observations[0].interpretation == pb.INTERPRETATION_CRITICAL_HIGH
    assert [
        (r.version, r.status, r.reason, r.recorded_by, r.observations[0].quantity.value)
        for r in result.revisions
    ] == [
        (1, pb.RESULT_STATUS_FINAL, "", "lab-tech-1", "85"),
        (2, pb.RESULT_STATUS_AMENDED, "late-arriving sample", "lab-tech-1", "120"),
        (3, pb.RESULT_STATUS_CORRECTED, "transcription error", "lab-tech-1", "600"),
    ]


async def test_a_retried_amendment_returns_the_first_version(
    post_result: PostResult, result_stub: ResultServiceStub, lab: Metadata
) -> None:
    posted = await post_result()
    request = amendment(posted.result_id)

    first = await result_stub.AmendResult(request, metadata=lab, timeout=10)
    again = await result_stub.AmendResult(request, metadata=lab, timeout=10)

    assert first.version == again.version == 2


async def test_amending_an_unknown_result_is_not_found(
    result_stub: ResultServiceStub, lab: Metadata
) -> None:
    call = result_stub.AmendResult(amendment(str(uuid.uuid4())), metadata=lab, timeout=10)
    assert await code_of(call) == grpc.StatusCode.NOT_FOUND


async def test_a_stale_expected_version_is_aborted(
    post_result: PostResult, result_stub: ResultServiceStub, lab: Metadata
) -> None:
    posted = await post_result()
    stale = amendment(posted.result_id, expected_version=2)
    assert await code_of(result_stub.AmendResult(stale, metadata=lab, timeout=10)) == (
        grpc.StatusCode.ABORTED
    )


@pytest.mark.parametrize(
    ("request_fields", "violated"),
    [
        ({"reason": " "}, ["reason"]),
        ({"kind": pb.REVISION_KIND_UNSPECIFIED}, ["kind"]),
        ({"value": "NaN"}, ["observations[0].quantity.value"]),
    ],
    ids=["no-reason", "no-kind", "not-finite"],
)
async def test_malformed_amendments_are_invalid_arguments(
    *, post_result: PostResult, result_stub: ResultServiceStub, lab: Metadata,
    violated_fields: Fields, request_fields: dict[str, Any], violated: list[str],
) -> None:  # fmt: skip
    posted = await post_result()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await result_stub.AmendResult(
            amendment(posted.result_id, **request_fields),
            metadata=lab, timeout=10,
        )  # fmt: skip
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(refused.value) == violated


async def test_a_malformed_result_id_is_an_invalid_argument(
    result_stub: ResultServiceStub, lab: Metadata, violated_fields: Fields
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await result_stub.AmendResult(amendment("r-1"), metadata=lab, timeout=10)
    assert violated_fields(refused.value) == ["result_id"]


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.PATIENT, Role.AUDITOR])
async def test_only_laboratory_staff_amend_results(
    post_result: PostResult, result_stub: ResultServiceStub, token_mint: TokenMint, role: Role
) -> None:
    posted = await post_result()
    metadata = token_mint.metadata("someone", role)
    call = result_stub.AmendResult(amendment(posted.result_id), metadata=metadata, timeout=10)
    assert await code_of(call) == grpc.StatusCode.PERMISSION_DENIED


async def test_amending_without_a_token_is_unauthenticated(result_stub: ResultServiceStub) -> None:
    call = result_stub.AmendResult(amendment(str(uuid.uuid4())), timeout=10)
    assert await code_of(call) == grpc.StatusCode.UNAUTHENTICATED
