"""Which topics are event topics, and the spec a reader creates one with."""

from __future__ import annotations

import pytest

from clinical_platform.eventlog.topics import event_topic_spec, events_topic, service_of
from clinical_platform.projections.background import event_topic_specs
from clinical_platform.settings import BaseServiceSettings

pytestmark = pytest.mark.unit


def test_an_event_topic_names_its_service_and_other_topics_name_none() -> None:
    assert service_of(events_topic("orders")) == "orders"
    assert service_of("clinical.orders.events.v1.dlq") is None
    assert service_of("clinical.audit.access.v1") is None
    assert service_of("clinical.audit.checkpoints.v1") is None


def test_a_reader_creates_the_event_topics_it_reads_as_their_writer_would() -> None:
    settings = BaseServiceSettings.model_validate(
        {"grpc_port": 0, "event_partitions": 4,
         "KAFKA_REPLICATION_FACTOR": 1, "KAFKA_MIN_INSYNC_REPLICAS": 1}
    )  # fmt: skip
    topics = [events_topic("results"), "clinical.audit.access.v1"]

    specs = event_topic_specs(topics, settings)

    assert specs == [
        event_topic_spec("results", partitions=4, replication_factor=1, min_insync_replicas=1)
    ]
