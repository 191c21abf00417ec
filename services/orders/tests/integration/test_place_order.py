"""PlaceOrder on the real servers: drafts, idempotent retries, who may place, what is refused."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import hvac
import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.eventlog import read_topic
from clinical_testing.patients import PatientRegistry
from clinical_testing.tokens import TokenMint
from hvac import exceptions as vault_errors

from clinical.orders.v1 import orders_pb2 as pb
from clinical.orders.v1.orders_pb2_grpc import OrderServiceStub
from clinical_platform.eventlog.topics import events_topic
from clinical_platform.principals import Role
from orders.settings import OrdersSettings

pytestmark = pytest.mark.integration

PlaceOrder = Callable[..., Awaitable[pb.PlaceOrderResponse]]
Fields = Callable[[grpc.aio.AioRpcError], list[str]]
Metadata = tuple[tuple[str, str], ...]


async def test_a_placed_order_reads_back_as_a_draft_ordered_by_the_caller(
    place_order: PlaceOrder, order_stub: OrderServiceStub, clinician: Metadata,
    registered_patients: PatientRegistry,
) -> None:  # fmt: skip
    patient_id = await registered_patients.register()
    placed = await place_order(
        patient_id=patient_id, priority=pb.PRIORITY_STAT,
        reason_codes=[
            pb.ReasonCode(system=pb.CODE_SYSTEM_ICD10, code="E11.9"),
            pb.ReasonCode(system=pb.CODE_SYSTEM_SNOMED_CT, code="44054006"),
        ],
    )  # fmt: skip

    got = await order_stub.GetOrder(
        pb.GetOrderRequest(order_id=placed.order_id, min_version=placed.version),
        metadata=clinician, timeout=10,
    )  # fmt: skip

    order = got.order
    assert placed.version == 1
    assert (order.order_id, order.version, order.patient_id) == (placed.order_id, 1, patient_id)
    assert (order.status, order.priority, order.orderer) == (
        pb.ORDER_STATUS_DRAFT, pb.PRIORITY_STAT, "dr-ordering",
    )  # fmt: skip
    assert (order.test_code, order.test_display) == (
        "2345-7", "Glucose [Mass/volume] in Serum or Plasma",
    )  # fmt: skip
    assert [(r.system, r.code) for r in order.reason_codes] == [
        (pb.CODE_SYSTEM_ICD10, "E11.9"), (pb.CODE_SYSTEM_SNOMED_CT, "44054006"),
    ]  # fmt: skip
    assert not order.HasField("signature")
    assert not order.HasField("cancellation")


async def test_a_retried_request_returns_the_first_order_and_records_one_event(
    place_order: PlaceOrder, servers: ServerEndpoints, orders_settings: OrdersSettings,
    registered_patients: PatientRegistry,
) -> None:  # fmt: skip
    patient_id = await registered_patients.register()
    first = await place_order(request_id="place-1", patient_id=patient_id)
    retried = await place_order(request_id="place-1", patient_id=patient_id)

    assert (retried.order_id, retried.version) == (first.order_id, first.version)
    recorded = await read_topic(
        servers.kafka_bootstrap_servers, events_topic(orders_settings.event_log_name)
    )
    assert [(e.event_type, e.aggregate_id, e.request_id) for e in recorded] == [
        ("OrderPlaced", first.order_id, "place-1")
    ]
    assert recorded[0].actor.subject == "dr-ordering"


async def test_without_a_valid_token_the_call_is_unauthenticated(
    place_order: PlaceOrder,
) -> None:
    for metadata in [(), (("authorization", "Bearer not-a-jwt"),)]:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await place_order(metadata=metadata)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("role", [Role.LAB, Role.PATIENT, Role.AUDITOR, Role.REGISTRAR])
async def test_only_clinicians_place_orders(
    place_order: PlaceOrder, token_mint: TokenMint, role: Role
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await place_order(metadata=token_mint.metadata("someone", role))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("fields", "violated"),
    [
        ({"request_id": ""}, ["request_id"]),
        ({"patient_id": "patient-7"}, ["patient_id"]),
        ({"priority": pb.PRIORITY_UNSPECIFIED}, ["priority"]),
        ({"test_code": "GLU"}, ["test_code"]),
        ({"test_code": "2345-6"}, ["test_code"]),
        ({"test_code": "1-8"}, ["test_code"]),
        ({"reason_codes": []}, ["reason_codes"]),
        (
            {"reason_codes": [pb.ReasonCode(system=pb.CODE_SYSTEM_UNSPECIFIED, code="E11.9")]},
            ["reason_codes[0].system"],
        ),
        (
            {"reason_codes": [pb.ReasonCode(system=pb.CODE_SYSTEM_SNOMED_CT, code="44054007")]},
            ["reason_codes[0].code"],
        ),
        (
            {"patient_id": "x", "priority": pb.PRIORITY_UNSPECIFIED, "request_id": ""},
            ["request_id", "patient_id", "priority"],
        ),
    ],
    ids=[
        "no-request-id", "patient-not-uuid", "no-priority", "not-loinc", "check-digit",
        "not-catalogued", "no-reason", "reason-system", "reason-verhoeff", "all-at-once",
    ],
)  # fmt: skip
async def test_malformed_orders_are_invalid_arguments_naming_each_field(
    place_order: PlaceOrder, violated_fields: Fields, fields: dict[str, Any], violated: list[str]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await place_order(**fields)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(refused.value) == violated
    assert "2345" not in (refused.value.details() or "")


async def test_an_order_for_a_patient_never_registered_is_refused_and_leaves_no_trace(
    place_order: PlaceOrder, servers: ServerEndpoints, orders_settings: OrdersSettings,
    vault: hvac.Client, violated_fields: Fields,
) -> None:  # fmt: skip
    made_up = str(uuid.uuid4())

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await place_order(patient_id=made_up)

    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert violated_fields(refused.value) == ["patient_id"]
    assert made_up not in (refused.value.details() or "")
    with pytest.raises(vault_errors.InvalidPath):  # no data key was made for the made-up id
        vault.secrets.kv.v2.read_secret_version(
            path=f"patients/{made_up}", mount_point=orders_settings.vault_key_store_mount,
            raise_on_deleted_version=True,
        )  # fmt: skip
    topic = events_topic(orders_settings.event_log_name)
    assert await read_topic(servers.kafka_bootstrap_servers, topic) == []
