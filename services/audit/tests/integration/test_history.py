"""History over gRPC: a patient's complete, ordered, attributed change list, from the clear
envelope metadata of the event topics, never the payloads."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from clinical_testing.eventlog import EventStoreFactory
from clinical_testing.security import patient_envelope
from pymongo.asynchronous.database import AsyncDatabase

from audit.adapters.documents import HISTORY_COLLECTION
from clinical.audit.v1 import audit_pb2 as pb
from clinical.events.v1.provenance_pb2 import PURPOSE_OF_USE_TREAT

pytestmark = pytest.mark.integration

Metadata = tuple[tuple[str, str], ...]
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_history_of_a_patient_is_every_change_to_their_aggregates_in_order(
    event_store: EventStoreFactory, audit_service: Any, append_event: Any,
    auditor: Metadata, phi_canary: str,
) -> None:  # fmt: skip
    store = await event_store(partitions=3)
    patient, stranger = str(uuid.uuid4()), str(uuid.uuid4())
    order, result, other = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    plan = [(order, patient, 1), (result, patient, 1), (other, stranger, 1), (order, patient, 2),
            (result, patient, 2), (other, stranger, 2), (order, patient, 3)]  # fmt: skip
    written = [await append_event(store, who, aggregate, v) for aggregate, who, v in plan]
    audit = await audit_service(store.topic)
    expected = [e for e in written if e.patient_id == patient]

    answer = await audit.eventually(
        lambda: audit.stub.History(pb.HistoryRequest(patient_id=patient), metadata=auditor),
        lambda response: len(response.changes) >= len(expected),
    )

    assert [c.event_id for c in answer.changes] == [e.event_id for e in expected]
    assert [(c.aggregate_id, c.aggregate_version) for c in answer.changes] == [
        (order, 1), (result, 1), (order, 2), (result, 2), (order, 3)
    ]  # fmt: skip
    recorded = [c.recorded_at.ToNanoseconds() for c in answer.changes]
    assert recorded == sorted(recorded)
    first = answer.changes[0]
    assert (first.actor.subject, list(first.actor.roles)) == ("test-clinician", ["clinician"])
    assert (first.source_ip, first.user_agent) == ("10.20.30.40", "ward-tablet/2.1")
    assert first.trace_context.traceparent == TRACEPARENT
    assert (first.event_type, first.aggregate_type) == ("NoteRecorded", "Note")
    assert first.purpose_of_use == PURPOSE_OF_USE_TREAT
    assert first.request_id == expected[0].request_id
    assert first.patient_id == patient
    assert len(first.hash) == 32
    assert answer.changes[2].prev_hash == first.hash
    assert answer.next_page_token == ""
    # Metadata only: the payload (here plaintext patient data) is never in the trail.
    assert b"Jane Q. Doe" not in answer.SerializeToString()
    assert phi_canary.encode() not in answer.SerializeToString()


async def test_history_of_an_aggregate_pages_through_its_changes(
    event_store: EventStoreFactory, audit_service: Any, append_event: Any,
    auditor: Metadata,
) -> None:  # fmt: skip
    store = await event_store(partitions=1)
    patient, order = str(uuid.uuid4()), str(uuid.uuid4())
    for version in range(1, 6):
        await append_event(store, patient, order, version)
    audit = await audit_service(store.topic)
    await audit.eventually(
        lambda: audit.stub.History(pb.HistoryRequest(aggregate_id=order), metadata=auditor),
        lambda response: len(response.changes) == 5,
    )

    versions: list[int] = []
    token = ""
    for _ in range(5):
        page = await audit.stub.History(
            pb.HistoryRequest(aggregate_id=order, page_size=2, page_token=token), metadata=auditor
        )
        versions += [change.aggregate_version for change in page.changes]
        token = page.next_page_token
        if not token:
            break

    assert versions == [1, 2, 3, 4, 5]


async def test_history_within_a_time_window_leaves_out_changes_outside_it(
    event_store: EventStoreFactory, audit_service: Any, append_event: Any,
    auditor: Metadata,
) -> None:  # fmt: skip
    store = await event_store(partitions=1)
    patient, order = str(uuid.uuid4()), str(uuid.uuid4())
    events = [await append_event(store, patient, order, v) for v in (1, 2, 3)]
    audit = await audit_service(store.topic)
    everything = await audit.eventually(
        lambda: audit.stub.History(pb.HistoryRequest(patient_id=patient), metadata=auditor),
        lambda response: len(response.changes) == 3,
    )
    window = pb.TimeRange()
    window.since.CopyFrom(everything.changes[1].recorded_at)
    window.until.CopyFrom(everything.changes[2].recorded_at)

    answer = await audit.stub.History(
        pb.HistoryRequest(patient_id=patient, recorded=window), metadata=auditor
    )

    assert [c.event_id for c in answer.changes] == [events[1].event_id]
    since = pb.TimeRange()
    since.since.CopyFrom(everything.changes[1].recorded_at)
    of_the_type = await audit.stub.History(
        pb.HistoryRequest(aggregate_type="Note", recorded=since, newest_first=True),
        metadata=auditor,
    )
    assert [c.event_id for c in of_the_type.changes] == [events[2].event_id, events[1].event_id]


async def test_history_of_a_type_pages_newest_first_through_every_aggregate_of_it(
    event_store: EventStoreFactory, audit_service: Any, append_event: Any,
    auditor: Metadata, mongo_database: AsyncDatabase[Any],
) -> None:  # fmt: skip
    store = await event_store(partitions=2)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    notes = [str(uuid.uuid4()), str(uuid.uuid4())]
    pairs = list(zip((first, second), notes, strict=True))
    written = [await append_event(store, who, note, v) for v in (1, 2, 3) for who, note in pairs]
    order = patient_envelope(first, str(uuid.uuid4()), 1)
    order.aggregate_type, order.event_type = "Order", "OrderPlaced"
    await store.append(order.aggregate_id, 0, [order])
    audit = await audit_service(store.topic)
    orders = await audit.eventually(
        lambda: audit.stub.History(pb.HistoryRequest(aggregate_type="Order"), metadata=auditor),
        lambda response: len(response.changes) == 1,
    )
    assert [c.event_id for c in orders.changes] == [order.event_id]
    everything = await audit.eventually(
        lambda: audit.stub.History(
            pb.HistoryRequest(aggregate_type="Note", page_size=100), metadata=auditor
        ),
        lambda response: len(response.changes) == len(written),
    )
    oldest_first = [c.event_id for c in everything.changes]
    assert sorted(oldest_first) == sorted(e.event_id for e in written)
    assert {c.aggregate_type for c in everything.changes} == {"Note"}

    pages: list[list[str]] = []
    token = ""
    while len(pages) < 5:
        page = await audit.stub.History(
            pb.HistoryRequest(aggregate_type="Note", newest_first=True, page_size=4,
                              page_token=token),
            metadata=auditor,
        )  # fmt: skip
        pages.append([c.event_id for c in page.changes])
        token = page.next_page_token
        if not token:
            break

    assert [len(p) for p in pages] == [4, 2]
    assert [e for p in pages for e in p] == oldest_first[::-1]
    recorded = [c.recorded_at.ToNanoseconds() for c in everything.changes]
    assert recorded == sorted(recorded)
    # One indexed range: equality on the type, then the trail's order (read backwards).
    indexes = await mongo_database[HISTORY_COLLECTION].index_information()
    assert any(spec["key"][0] == ("aggregate_type", 1) for spec in indexes.values())
    explained = await mongo_database.command(
        "explain", {"find": HISTORY_COLLECTION, "filter": {"aggregate_type": "Note"}}
    )
    assert explained["filterPushdown"]
