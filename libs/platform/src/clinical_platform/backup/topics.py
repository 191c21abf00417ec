"""Which topics are the system of record, and how a restore recreates them.

Per event log: ``clinical.<log>.events.v1``, its ``.layout`` (partition count and writer
replicas) and its ``.dlq`` (poison records set aside, which a replay may still want); the access
trail and its ``.dlq``; and the checkpoints topic, shared by every log, of which only the
checkpoints of copied topics are kept (one of another topic attests nothing restored).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from clinical_platform.eventlog.layout import layout_topic
from clinical_platform.eventlog.topics import TopicSpec, event_topic_spec, events_topic
from clinical_platform.projections.applier import dead_letter_topic
from clinical_platform.security.checkpoints import CHECKPOINTS_TOPIC

EVENT_LOGS = ("patient", "orders", "results", "notify")
ACCESS_TOPICS = ("clinical.audit.access.v1",)


def record_topics(event_logs: Sequence[str], access_topics: Sequence[str]) -> list[str]:
    """Every system-of-record topic of these logs and trails, checkpoints last."""
    names: list[str] = []
    for log in event_logs:
        topic = events_topic(log)
        names += [topic, layout_topic(topic), dead_letter_topic(topic)]
    for topic in access_topics:
        names += [topic, dead_letter_topic(topic)]
    return [*names, CHECKPOINTS_TOPIC]


def checkpoint_keys(topics: Iterable[str], partitions: dict[str, int]) -> set[bytes]:
    """The checkpoint keys (``<topic>/<partition>``) of the copied topics' partitions."""
    return {f"{t}/{p}".encode() for t in topics for p in range(partitions.get(t, 0))}


def restored_topic_spec(
    name: str, partitions: int, *, replication_factor: int, min_insync_replicas: int
) -> TopicSpec:
    """Every copied topic is kept forever, as the event topics are; the event topic's configs
    (retention off, no unclean election) are what each of them was created with."""
    durable = event_topic_spec(
        "-", partitions=partitions, replication_factor=replication_factor,
        min_insync_replicas=min_insync_replicas,
    )  # fmt: skip
    return TopicSpec(name, partitions, replication_factor, dict(durable.configs))
