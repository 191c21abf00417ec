"""Group commit's gathering: what a writer takes from its queue, and when it waits for more."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from clinical_platform.eventlog.appends import PendingAppend
from clinical_platform.eventlog.batching import AppendQueue

pytestmark = pytest.mark.unit

# Far longer than any test: a batch that comes back did not wait for the linger to run out.
LONG_LINGER_S = 600.0


def _pending() -> PendingAppend:
    return PendingAppend(str(uuid.uuid4()), 0, str(uuid.uuid4()), [])


async def _next_batch_once_ready(queue: AppendQueue) -> list[PendingAppend]:
    return await asyncio.wait_for(queue.next_batch(), 30)


async def test_a_lone_caller_is_answered_without_waiting_for_company() -> None:
    queue = AppendQueue(max_batch=500, linger_s=LONG_LINGER_S)

    for _ in range(3):
        pending = _pending()
        queue.put(pending)
        assert await _next_batch_once_ready(queue) == [pending]


async def test_after_concurrent_callers_the_writer_waits_until_as_many_are_back() -> None:
    queue = AppendQueue(max_batch=500, linger_s=LONG_LINGER_S)
    first = [_pending() for _ in range(3)]
    for pending in first:
        queue.put(pending)
    assert await _next_batch_once_ready(queue) == first

    second = [_pending() for _ in range(3)]
    queue.put(second[0])
    gathering = asyncio.create_task(queue.next_batch())
    await asyncio.sleep(0)
    waited_for_company = not gathering.done()
    queue.put(second[1])
    queue.put(second[2])

    assert waited_for_company
    assert await asyncio.wait_for(gathering, 30) == second


async def test_a_batch_never_exceeds_max_batch_and_the_rest_waits_its_turn() -> None:
    queue = AppendQueue(max_batch=2, linger_s=LONG_LINGER_S)
    appends = [_pending() for _ in range(6)]
    for pending in appends:
        queue.put(pending)

    batches = [await _next_batch_once_ready(queue) for _ in range(3)]

    assert batches == [appends[0:2], appends[2:4], appends[4:6]]


async def test_a_stopping_writer_gets_everything_still_queued() -> None:
    queue = AppendQueue(max_batch=500, linger_s=LONG_LINGER_S)
    appends = [_pending() for _ in range(4)]
    for pending in appends:
        queue.put(pending)

    assert queue.drain() == appends
    assert queue.drain() == []


async def test_a_full_queue_refuses_the_next_append_and_keeps_what_it_holds() -> None:
    queue = AppendQueue(max_batch=500, linger_s=LONG_LINGER_S, max_depth=2)
    held = [_pending(), _pending()]
    for pending in held:
        queue.put(pending)

    with pytest.raises(asyncio.QueueFull):
        queue.put(_pending())

    assert queue.drain() == held
