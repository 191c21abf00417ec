"""The local broker speaks only SASL_SSL, and each service's principal has only the access
infra/kafka/acls.toml grants it (on a broker of its own: the session's is left alone)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import NewTopic
from aiokafka.errors import (
    KafkaConnectionError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)
from clinical_testing.endpoints import parse_exports
from clinical_testing.isolated import IsolatedInfra
from pydantic import SecretStr

from clinical_platform.clients.kafka import (
    KafkaConnection,
    KafkaSecurity,
    build_admin,
    build_consumer,
    build_producer,
)

pytestmark = pytest.mark.integration

PATIENT_TOPIC = "clinical.patient.events.v1"
ORDERS_TOPIC = "clinical.orders.events.v1"
RESULTS_TOPIC = "clinical.results.events.v1"


@pytest.fixture(scope="module")
def broker(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IsolatedInfra]:
    infra = IsolatedInfra(pytestconfig.rootpath, tmp_path_factory.mktemp("kafka-access"))
    started = infra.localinfra("up", "kafka")
    assert started.returncode == 0, started.stderr
    try:
        yield infra
    finally:
        infra.localinfra("down", "kafka")


def as_principal(broker: IsolatedInfra, principal: str) -> KafkaConnection:
    exports = parse_exports(broker.localinfra("env", principal).stdout)
    return KafkaConnection(broker.kafka_bootstrap_servers, KafkaSecurity.from_env(exports))


@pytest.fixture(scope="module")
async def topics(broker: IsolatedInfra) -> None:
    admin = build_admin(broker.kafka)
    await admin.start()
    try:
        topics = (PATIENT_TOPIC, ORDERS_TOPIC, RESULTS_TOPIC)
        await admin.create_topics([NewTopic(t, 1, 1) for t in topics])
    finally:
        await admin.close()


async def _produce(kafka: KafkaConnection, topic: str, **options: object) -> None:
    producer = build_producer(kafka, **options)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"an event", key=b"k")
    finally:
        await producer.stop()


async def _read_one(kafka: KafkaConnection, topic: str, group: str) -> None:
    consumer = build_consumer(kafka, topic, group_id=group)
    try:
        await consumer.start()
        await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()


@pytest.mark.usefixtures("topics")
async def test_a_service_produces_to_its_own_topic_and_never_to_another_services(
    broker: IsolatedInfra,
) -> None:
    orders = as_principal(broker, "orders")

    await _produce(orders, ORDERS_TOPIC)
    with pytest.raises(TopicAuthorizationFailedError):
        await _produce(orders, PATIENT_TOPIC)


@pytest.mark.usefixtures("topics")
async def test_a_service_cannot_use_another_services_transactional_id(
    broker: IsolatedInfra,
) -> None:
    orders = as_principal(broker, "orders")

    with pytest.raises(TransactionalIdAuthorizationFailed):
        await _produce(orders, ORDERS_TOPIC, transactional_id=f"{PATIENT_TOPIC}.p0")


@pytest.mark.usefixtures("topics")
async def test_a_service_reads_only_what_it_consumes(broker: IsolatedInfra) -> None:
    patient = as_principal(broker, "patient")

    # Orders it reads (an order's orderer is in its patient's care), results it does not.
    with pytest.raises(TopicAuthorizationFailedError):
        await _read_one(patient, RESULTS_TOPIC, group="patient.reader")


async def test_there_is_no_plaintext_listener(broker: IsolatedInfra) -> None:
    plaintext = KafkaConnection(broker.kafka_bootstrap_servers, KafkaSecurity("PLAINTEXT"))
    admin = build_admin(plaintext, request_timeout_ms=5000)

    with pytest.raises(KafkaConnectionError):
        await admin.start()
    await admin.close()


async def test_a_wrong_password_is_refused(broker: IsolatedInfra) -> None:
    ca_file = as_principal(broker, "orders").security.ca_file
    forged = KafkaSecurity(username="orders", password=SecretStr("not-it"), ca_file=ca_file)
    admin = build_admin(KafkaConnection(broker.kafka_bootstrap_servers, forged))

    with pytest.raises(KafkaConnectionError):
        await admin.start()
    await admin.close()


def test_infra_env_names_a_properties_file_for_kafkas_own_tools(broker: IsolatedInfra) -> None:
    output = broker.localinfra("env").stdout
    path = Path(output.split("--command-config ", 1)[1].split()[0])

    properties = path.read_text()
    assert "security.protocol=SASL_SSL" in properties
    assert "ssl.truststore.location=" in properties
    assert path.stat().st_mode & 0o077 == 0
