"""Appending with an expected version on the real broker: races, replays, refusals."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from clinical_testing.endpoints import ServerEndpoints
from clinical_testing.eventlog import EventStoreFactory, make_envelope, read_topic

from clinical_platform.eventlog.errors import ConcurrencyError, EventRejectedError
from clinical_platform.eventlog.store import EventStore
from clinical_platform.security.chain import verify_chain

pytestmark = pytest.mark.integration


async def _race(store: EventStore, aggregate_id: str, version: int) -> list[bool]:
    attempts = [
        store.append(
            aggregate_id, version, [make_envelope(aggregate_id, version + 1, str(uuid.uuid4()))]
        )
        for _writer in range(2)
    ]
    outcomes = await asyncio.gather(*attempts, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, ConcurrencyError):
            raise outcome
    return [not isinstance(outcome, BaseException) for outcome in outcomes]


async def test_of_two_writers_racing_for_a_version_exactly_one_wins(
    servers: ServerEndpoints, event_store: EventStoreFactory
) -> None:
    store = await event_store()
    aggregate_id = str(uuid.uuid4())

    winners = [sum(await _race(store, aggregate_id, version)) for version in range(100)]

    assert winners == [1] * 100
    on_topic = [
        e
        for e in await read_topic(servers.kafka_bootstrap_servers, store.topic)
        if e.aggregate_id == aggregate_id
    ]
    assert [e.aggregate_version for e in on_topic] == list(range(1, 101))
    assert verify_chain(on_topic).ok, "every event is chained onto the one before it"


async def test_a_retried_request_id_returns_the_first_outcome_without_a_second_event(
    servers: ServerEndpoints, event_store: EventStoreFactory
) -> None:
    store = await event_store()
    aggregate_id = str(uuid.uuid4())
    first = await store.append(aggregate_id, 0, [make_envelope(aggregate_id, 1, "req-1")])

    retried = await store.append(aggregate_id, 0, [make_envelope(aggregate_id, 1, "req-1")])
    concurrent = await asyncio.gather(
        *(
            store.append(aggregate_id, 1, [make_envelope(aggregate_id, 2, "req-2")])
            for _ in range(5)
        )
    )

    assert (first.version, first.replayed) == (1, False)
    assert (retried.version, retried.replayed) == (1, True)
    assert sorted(result.replayed for result in concurrent) == [False, True, True, True, True]
    on_topic = Counter(
        e.request_id
        for e in await read_topic(servers.kafka_bootstrap_servers, store.topic)
        if e.aggregate_id == aggregate_id
    )
    assert on_topic == {"req-1": 1, "req-2": 1}


async def test_malformed_and_oversized_events_are_refused_before_anything_is_appended(
    servers: ServerEndpoints, event_store: EventStoreFactory
) -> None:
    store = await event_store()
    aggregate_id = str(uuid.uuid4())
    malformed = make_envelope(aggregate_id, 1, "req-bad")
    malformed.event_type = "not a type"
    malformed.actor.subject = ""
    oversized = make_envelope(aggregate_id, 1, "req-big", note="x" * (600 * 1024))
    gap = make_envelope(aggregate_id, 2, "req-gap")

    with pytest.raises(EventRejectedError) as bad:
        await store.append(aggregate_id, 0, [malformed])
    with pytest.raises(EventRejectedError) as big:
        await store.append(aggregate_id, 0, [oversized])
    with pytest.raises(EventRejectedError) as gapped:
        await store.append(aggregate_id, 0, [gap])

    assert {v.field for v in bad.value.violations} >= {
        "events[0].event_type",
        "events[0].actor.subject",
    }
    assert "x" * 20 not in str(big.value)
    assert [v.field for v in gapped.value.violations] == ["events[0].aggregate_version"]
    assert await read_topic(servers.kafka_bootstrap_servers, store.topic) == []
    assert store.current_version(aggregate_id) == 0
