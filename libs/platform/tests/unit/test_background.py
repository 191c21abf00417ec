"""Background tasks: restarted after failures, stopped for sure."""

import asyncio
import contextlib

import pytest

from clinical_platform.background import stop_tasks, supervise

pytestmark = pytest.mark.unit


async def test_a_failing_task_is_started_again_until_it_succeeds() -> None:
    attempts: list[int] = []

    async def flaky() -> None:
        attempts.append(len(attempts))
        if len(attempts) < 3:
            raise ConnectionError("Kafka is away")

    await asyncio.wait_for(supervise("flaky", flaky, first_delay_s=0.01), timeout=5)

    assert len(attempts) == 3


async def test_stop_tasks_cancels_again_a_task_that_swallows_one_cancellation() -> None:
    async def stubborn() -> None:
        # Swallows the first cancellation, as aiokafka's consumer sometimes does.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)
        await asyncio.sleep(3600)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)

    await stop_tasks([task], wait_s=0.05)

    assert task.cancelled()
