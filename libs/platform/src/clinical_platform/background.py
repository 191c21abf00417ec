"""A service's background tasks (projections, publishers): kept running, and stopped for sure."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

logger = logging.getLogger(__name__)


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    first_delay_s: float = 1.0,
    max_delay_s: float = 30.0,
) -> None:
    """Run ``run()`` until cancelled, starting it again after every failure.

    The delay doubles after each quick failure, up to ``max_delay_s``; a run that lasted longer
    than that starts the count again. Kafka or MongoDB being away at start-up or later is then
    a delay, never a projection that silently stopped for good.
    """
    delay = first_delay_s
    while True:
        started = time.monotonic()
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if time.monotonic() - started > max_delay_s:
                delay = first_delay_s
            logger.warning("background task failed; restarting",
                           extra={"task": name, "error": type(error).__name__,
                                  "retry_in_s": delay})  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)
        else:
            return


async def stop_tasks(
    tasks: Iterable[asyncio.Task[Any]], *, attempts: int = 5, wait_s: float = 2.0
) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again while any keeps running.

    Again, because aiokafka's consumer can swallow a cancellation (aio-libs/aiokafka#983),
    which would leave a consumer running after shutdown.
    """
    pending = set(tasks)
    for _attempt in range(attempts):
        for task in pending:
            task.cancel()
        if not pending:
            return
        done, pending = await asyncio.wait(pending, timeout=wait_s)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                logger.warning("background task ended with an error",
                               extra={"task": task.get_name(),
                                      "error": type(task.exception()).__name__})  # fmt: skip
    if pending:
        logger.error("background tasks did not stop",
                     extra={"tasks": sorted(t.get_name() for t in pending)})  # fmt: skip
