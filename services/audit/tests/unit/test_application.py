"""AuditApp with in-memory ports: what is verified, and what the export renders."""

import json
import uuid

import pytest

from audit.application import AuditApp
from audit.domain.errors import NotAnEventTopic, PartitionOutOfRange, UnknownTopic
from audit.domain.queries import (
    AccessQuery,
    ExportQuery,
    HistoryQuery,
    Page,
    Position,
)
from audit.entrypoints.fhir import audit_event_json
from audit.settings import EVENT_TOPIC_PATTERN
from clinical.audit.v1 import access_pb2
from clinical.audit.v1.audit_pb2 import Change
from clinical_platform.security.chain import Finding, VerificationReport

pytestmark = pytest.mark.unit

TOPIC = "clinical.orders.events.v1"


class Trail:
    def __init__(self, items: list[Change | access_pb2.AccessRecord]) -> None:
        self.items = items

    async def changes(self, query: HistoryQuery) -> Page[Change]:
        return Page([i for i in self.items if isinstance(i, Change)])

    async def accesses(self, query: AccessQuery) -> Page[access_pb2.AccessRecord]:
        return Page([i for i in self.items if isinstance(i, access_pb2.AccessRecord)])

    async def patient_trail(self, query: ExportQuery) -> Page[Change | access_pb2.AccessRecord]:
        return Page(self.items, Position(9, 0, "last"))


class Log:
    def __init__(self, partitions: dict[str, int], bad: dict[int, int]) -> None:
        self._partitions = partitions
        self._bad = bad
        self.verified: list[int] = []

    async def partitions(self, topic: str) -> int | None:
        return self._partitions.get(topic)

    async def verify(self, topic: str, partition: int) -> VerificationReport:
        self.verified.append(partition)
        if partition in self._bad:
            return VerificationReport((Finding(self._bad[partition], "changed"),), None, 5, 5)
        return VerificationReport((), 4, 5, 0)


def _app(log: Log, trail: Trail | None = None) -> AuditApp:
    return AuditApp(trail or Trail([]), log, event_topic_pattern=EVENT_TOPIC_PATTERN)


async def test_verify_checks_every_partition_when_none_is_named() -> None:
    log = Log({TOPIC: 3}, bad={1: 17})

    results = await _app(log).verify(TOPIC, [])

    assert sorted(log.verified) == [0, 1, 2]
    assert [(r.partition, r.report.ok) for r in results] == [(0, True), (1, False), (2, True)]
    assert results[1].report.first_bad_offset == 17


@pytest.mark.parametrize(
    ("topic", "partitions", "error"),
    [
        ("clinical.audit.access.v1", [], NotAnEventTopic),
        ("clinical.orders.events.v1.dlq", [], NotAnEventTopic),
        ("clinical.ghost.events.v1", [], UnknownTopic),
        (TOPIC, [0, 3], PartitionOutOfRange),
    ],
)
async def test_verify_refuses_what_is_not_an_existing_event_partition(
    topic: str, partitions: list[int], error: type[Exception]
) -> None:
    log = Log({TOPIC: 3, "clinical.audit.access.v1": 1}, bad={})

    with pytest.raises(error):
        await _app(log).verify(topic, partitions)

    assert log.verified == []


async def test_the_export_renders_each_item_of_the_trail_as_audit_event_json() -> None:
    change = Change(event_id=str(uuid.uuid4()), aggregate_version=1, source="//clinical/orders")
    change.actor.subject = "dr-house"
    access = access_pb2.AccessRecord(record_id=str(uuid.uuid4()),
                                     action=access_pb2.ACCESS_ACTION_READ,
                                     outcome=access_pb2.ACCESS_OUTCOME_SUCCESS)  # fmt: skip
    access.actor.subject = "dr-house"

    page = await _app(Log({}, {}), Trail([change, access])).patient_trail(
        ExportQuery(str(uuid.uuid4()))
    )
    rendered = [audit_event_json(item) for item in page.items]

    assert [json.loads(text)["id"] for text in rendered] == [change.event_id, access.record_id]
    assert page.next == Position(9, 0, "last")
