"""The partition writers' producer: transactional on top of the builder's guarantees."""

from __future__ import annotations

import pytest
from aiokafka.producer import sender as aiokafka_sender

from clinical_platform.clients.kafka import (
    CONCURRENT_TRANSACTIONS_BACKOFF_S,
    KafkaConnection,
    KafkaSecurity,
)
from clinical_platform.eventlog.writer import WriterConfig, transactional_producer

pytestmark = pytest.mark.unit


async def test_a_transaction_right_after_a_commit_retries_after_about_a_round_trip() -> None:
    config = WriterConfig(
        # Port 9 (discard) on loopback: building connects to nothing.
        kafka=KafkaConnection("127.0.0.1:9", KafkaSecurity("PLAINTEXT")),
        topic="clinical.notes.events.v1",
        partition=0,
        transactional_id="clinical.notes.events.v1.p0",
    )

    transactional_producer(config)

    # aiokafka's fixed 20 ms sleep after CONCURRENT_TRANSACTIONS, shortened for the process;
    # if an aiokafka upgrade renames the constant, this test says so.
    assert aiokafka_sender.BACKOFF_OVERRIDE == CONCURRENT_TRANSACTIONS_BACKOFF_S
    assert CONCURRENT_TRANSACTIONS_BACKOFF_S < 0.02
