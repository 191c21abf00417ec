"""The matcher sets poison aside and goes on: an undecodable record, a forged patient event in
clear, a malformed subscription id. Before, each escaped and the supervisor restarted the
matcher at the same offset, stopping every notification."""

from __future__ import annotations

import uuid
from typing import Any, cast

import pytest
from aiokafka import ConsumerRecord

from clinical.events.v1.envelope_pb2 import Envelope
from clinical_platform.security.errors import UnsealedPatientEventError
from notify.entrypoints.matcher import Matcher, MatcherParts

pytestmark = pytest.mark.unit

NOTIFY_TOPIC = "clinical.notify.events.v1"
ORDERS_TOPIC = "clinical.orders.events.v1"


class Subscriptions:
    """Our Subscriptions port: none stored."""

    async def get(self, subscription_id: uuid.UUID) -> None:
        return None


def record(topic: str, value: bytes, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic, partition=0, offset=offset, timestamp=offset, timestamp_type=0,
        key=None, value=value, checksum=None, serialized_key_size=0,
        serialized_value_size=len(value), headers=(),
    )  # fmt: skip


def matcher(set_aside: list[tuple[int, str]]) -> Matcher:
    async def aside(poison: ConsumerRecord[bytes, bytes], error: BaseException) -> None:
        set_aside.append((poison.offset, type(error).__name__))

    unused = cast(Any, None)  # parts these records never reach
    parts = MatcherParts(
        cast(Any, Subscriptions()), unused, unused, unused, unused, unused, unused, unused,
        aside,
    )  # fmt: skip
    return Matcher(
        parts, notify_topic=NOTIFY_TOPIC, owns=lambda _: True,
        on_subscription=lambda _: None, on_deleted=lambda _: None,
    )  # fmt: skip


async def test_poison_is_set_aside_with_its_reason_and_the_next_record_is_handled() -> None:
    set_aside: list[tuple[int, str]] = []
    forged = Envelope(
        event_id=str(uuid.uuid4()), event_type="OrderCancelled", aggregate_type="Order",
        aggregate_id=str(uuid.uuid4()), aggregate_version=3, patient_id=str(uuid.uuid4()),
    )  # fmt: skip
    malformed = Envelope(event_type="SubscriptionCreated", aggregate_id="not-a-uuid")
    genuine = Envelope(event_type="SubscriptionCreated", aggregate_id=str(uuid.uuid4()))
    handler = matcher(set_aside)

    await handler.handle(record(ORDERS_TOPIC, b"\xff not an envelope", 1))
    await handler.handle(record(ORDERS_TOPIC, forged.SerializeToString(), 2))
    await handler.handle(record(NOTIFY_TOPIC, malformed.SerializeToString(), 3))
    await handler.handle(record(NOTIFY_TOPIC, genuine.SerializeToString(), 4))

    assert set_aside == [
        (1, "DecodeError"),
        (2, UnsealedPatientEventError.__name__),
        (3, "ValueError"),
    ]
