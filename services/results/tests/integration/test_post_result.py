"""PostResult on the real servers: interpretation, one result per signed order, error codes."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.eventlog import read_topic
from clinical_testing.tokens import TokenMint

from clinical.results.v1 import results_pb2 as pb
from clinical.results.v1.results_pb2_grpc import ResultServiceStub
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.principals import Role
from results.settings import ResultsSettings

pytestmark = pytest.mark.integration

Metadata = tuple[tuple[str, str], ...]
PostResult = Callable[..., Awaitable[pb.PostResultResponse]]
PublishOrder = Callable[..., Awaitable[tuple[str, str, int]]]
Fields = Callable[[grpc.aio.AioRpcError], list[str]]


def quantity(code: str, value: str, unit: str) -> pb.Observation:
    return pb.Observation(code=code, quantity=pb.Quantity(value=value, unit=unit))


async def code_of(call: Awaitable[object]) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    code: grpc.StatusCode = refused.value.code()
    return code


async def test_a_posted_result_is_interpreted_and_belongs_to_the_orders_patient(
    post_result: PostResult, publish_order: PublishOrder, result_stub: ResultServiceStub,
    clinician: Metadata,
) -> None:  # fmt: skip
    order_id, patient_id, version = await publish_order("signed")
    observations = [
        quantity("2345-7", "35", "mg/dL"),  # glucose below its critical limit
        quantity("2823-3", "5.6", "mmol/L"),  # potassium high
        quantity("718-7", "14.1", "g/dL"),  # hemoglobin normal
        pb.Observation(code="600-7", coded=pb.Coding(system="http://snomed.info/sct",
                                                     code="112283007", display="E. coli")),
    ]  # fmt: skip

    posted = await post_result(
        order_id=order_id, order_min_version=version, observations=observations
    )

    got = await result_stub.GetResult(
        pb.GetResultRequest(result_id=posted.result_id, min_version=posted.version),
        metadata=clinician, timeout=10,
    )  # fmt: skip
    result = got.result
    assert posted.version == 1
    assert (result.order_id, result.patient_id, result.performer) == (
        order_id, patient_id, "lab-tech-1",
    )  # fmt: skip
    assert result.status == pb.RESULT_STATUS_FINAL
    assert [(o.interpretation, o.critical) for o in result.observations] == [
        (pb.INTERPRETATION_CRITICAL_LOW, True),
        (pb.INTERPRETATION_HIGH, False),
        (pb.INTERPRETATION_NORMAL, False),
        (pb.INTERPRETATION_UNSPECIFIED, False),
    ]
    assert result.observations[0].display == "Glucose [Mass/volume] in Serum or Plasma"
    assert (
        result.observations[0].reference_range.low,
        result.observations[0].reference_range.high,
    ) == ("70", "99")
    assert result.observations[3].coded.code == "112283007"
    assert [(r.version, r.status, r.reason) for r in result.revisions] == [
        (1, pb.RESULT_STATUS_FINAL, "")
    ]


async def test_a_retried_post_returns_the_first_result_and_records_one_event(
    post_result: PostResult, publish_order: PublishOrder, servers: ServerEndpoints,
    results_settings: ResultsSettings,
) -> None:  # fmt: skip
    order_id, _, version = await publish_order("signed")

    first = await post_result(request_id="post-1", order_id=order_id, order_min_version=version)
    again = await post_result(request_id="post-1", order_id=order_id, order_min_version=version)

    assert (again.result_id, again.version) == (first.result_id, first.version)
    recorded = await read_topic(
        servers.kafka_bootstrap_servers, events_topic(results_settings.event_log_name)
    )
    assert [(e.event_type, e.aggregate_id) for e in recorded] == [("ResultPosted", first.result_id)]


async def test_a_second_result_for_an_order_already_exists(
    post_result: PostResult, publish_order: PublishOrder
) -> None:
    order_id, _, version = await publish_order("signed")
    await post_result(order_id=order_id, order_min_version=version)

    second = post_result(order_id=order_id, order_min_version=version)

    assert await code_of(second) == grpc.StatusCode.ALREADY_EXISTS


@pytest.mark.parametrize("status", ["draft", "cancelled"])
async def test_only_a_signed_order_that_is_not_cancelled_takes_a_result(
    post_result: PostResult, publish_order: PublishOrder, status: str
) -> None:
    order_id, _, version = await publish_order(status)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await post_result(order_id=order_id, order_min_version=version)

    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.details() == (
        f"order {order_id} is {status}; only a signed order can be resulted"
    )


async def test_a_result_for_a_patient_never_registered_is_refused_and_not_recorded(
    post_result: PostResult, publish_order: PublishOrder, violated_fields: Fields,
    servers: ServerEndpoints, results_settings: ResultsSettings,
) -> None:  # fmt: skip
    # Only forged order events name such a patient: the orders service refuses them.
    made_up = str(uuid.uuid4())
    order_id, _, version = await publish_order("signed", patient_id=made_up)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await post_result(order_id=order_id, order_min_version=version)

    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert violated_fields(refused.value) == ["patient_id"]
    assert made_up not in (refused.value.details() or "")
    topic = events_topic(results_settings.event_log_name)
    assert await read_topic(servers.kafka_bootstrap_servers, topic) == []


async def test_a_result_for_an_order_results_never_heard_of_is_not_found(
    post_result: PostResult,
) -> None:
    assert await code_of(post_result(order_id=str(uuid.uuid4()))) == grpc.StatusCode.NOT_FOUND


async def test_waiting_for_an_order_version_that_never_arrives_ends_at_the_deadline(
    result_stub: ResultServiceStub, publish_order: PublishOrder, lab: Metadata
) -> None:
    order_id, _, _ = await publish_order("draft")
    request = pb.PostResultRequest(
        request_id="r-1", order_id=order_id, order_min_version=2,
        observations=[quantity("2345-7", "85", "mg/dL")],
    )  # fmt: skip

    call = result_stub.PostResult(request, metadata=lab, timeout=1.0)

    assert await code_of(call) == grpc.StatusCode.DEADLINE_EXCEEDED


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.PATIENT, Role.AUDITOR])
async def test_only_laboratory_staff_post_results(
    post_result: PostResult, token_mint: TokenMint, role: Role
) -> None:
    call = post_result(metadata=token_mint.metadata("someone", role), order_id=str(uuid.uuid4()))
    assert await code_of(call) == grpc.StatusCode.PERMISSION_DENIED


async def test_posting_without_a_token_is_unauthenticated(post_result: PostResult) -> None:
    call = post_result(metadata=(), order_id=str(uuid.uuid4()))
    assert await code_of(call) == grpc.StatusCode.UNAUTHENTICATED


BAD_RANGE = pb.Observation(
    code="2345-7",
    quantity=pb.Quantity(value="85", unit="mg/dL"),
    reference_range=pb.ReferenceRange(low="x"),
)
MALFORMED = {
    "order-id": ({"order_id": "o-1"}, "order_id"),
    "request-id": ({"request_id": ""}, "request_id"),
    "no-observations": ({"observations": []}, "observations"),
    "no-value": ({"observations": [pb.Observation(code="2345-7")]}, "observations[0].value"),
    "not-decimal": (
        {"observations": [quantity("2345-7", "high", "mg/dL")]},
        "observations[0].quantity.value",
    ),
    "wrong-unit": (
        {"observations": [quantity("2345-7", "4.7", "mmol/L")]},
        "observations[0].quantity.unit",
    ),
    "check-digit": ({"observations": [quantity("2345-6", "85", "mg/dL")]}, "observations[0].code"),
    "not-catalogued": ({"observations": [quantity("1-8", "85", "mg/dL")]}, "observations[0].code"),
    "range-not-decimal": ({"observations": [BAD_RANGE]}, "observations[0].reference_range.low"),
}


@pytest.mark.parametrize(("fields", "violated"), MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_results_are_invalid_arguments_naming_each_field(
    post_result: PostResult, violated_fields: Fields, fields: dict[str, Any], violated: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await post_result(**fields)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(refused.value) == [violated]
