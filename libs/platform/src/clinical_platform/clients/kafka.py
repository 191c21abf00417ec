"""The one place that builds Kafka clients, so every client connects the same way.

A `KafkaConnection` holds what every client needs to reach the brokers (today the bootstrap
servers; transport security and credentials plug in here, once, for every client). The builders
add the guarantees clinical events need and take per-use options on top.

aiokafka binds a client to the running event loop, so build clients from async code. Building a
client does not connect; ``await client.start()`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.producer import sender as aiokafka_sender

# Right after a commit the transaction coordinator refuses the next AddPartitionsToTxn with
# CONCURRENT_TRANSACTIONS until it has written the commit markers (KAFKA-5477), which takes
# about one broker round trip. aiokafka then sleeps a fixed 20 ms (its sender's
# BACKOFF_OVERRIDE, whatever retry_backoff_ms says), so back-to-back transactions of one
# producer cost ~20 ms each instead of a few round trips. Retry after about one round trip.
CONCURRENT_TRANSACTIONS_BACKOFF_S = 0.002


class _HasKafkaSettings(Protocol):
    @property
    def kafka_bootstrap_servers(self) -> str: ...


@dataclass(frozen=True)
class KafkaConnection:
    """How to reach the brokers: the options every Kafka client of the platform shares."""

    bootstrap_servers: str

    @classmethod
    def from_settings(cls, settings: _HasKafkaSettings) -> KafkaConnection:
        return cls(bootstrap_servers=settings.kafka_bootstrap_servers)

    def client_options(self) -> dict[str, Any]:
        return {"bootstrap_servers": self.bootstrap_servers}


def build_producer(connection: KafkaConnection, **options: Any) -> AIOKafkaProducer:
    """An unstarted producer that waits for all in-sync replicas and never duplicates."""
    defaults: dict[str, Any] = {
        # acks=all + idempotence: a retried send must not duplicate or lose a clinical event.
        "acks": "all",
        "enable_idempotence": True,
    }
    if options.get("transactional_id") is not None:
        _shorten_concurrent_transactions_backoff()
    return AIOKafkaProducer(**(connection.client_options() | defaults | options))


def _shorten_concurrent_transactions_backoff() -> None:
    # A module constant read on every retry, so setting it covers every producer of the
    # process (tests/unit/eventlog/test_transactional_producer.py notices if aiokafka drops it).
    aiokafka_sender.BACKOFF_OVERRIDE = CONCURRENT_TRANSACTIONS_BACKOFF_S


def build_consumer(connection: KafkaConnection, *topics: str, **options: Any) -> AIOKafkaConsumer:
    """An unstarted consumer that commits explicitly and sees only committed events."""
    defaults: dict[str, Any] = {
        # Commit after the effect is written, so a crash re-delivers instead of skipping.
        "enable_auto_commit": False,
        # Events from aborted transactions never happened; nobody may act on them.
        "isolation_level": "read_committed",
        "auto_offset_reset": "earliest",
    }
    return AIOKafkaConsumer(*topics, **(connection.client_options() | defaults | options))


def build_admin(connection: KafkaConnection, **options: Any) -> AIOKafkaAdminClient:
    """An unstarted admin client (topic creation and inspection)."""
    return AIOKafkaAdminClient(**(connection.client_options() | options))
