"""A service's background tasks (projections, publishers): kept running, and stopped for sure."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


class CrashLoop:
    """Whether one supervised task keeps failing, for health: ``failures`` quick failures in a
    row, and no run since then has lasted ``steady_s`` (a run that lasts that long recovered)."""

    def __init__(
        self, name: str, *, failures: int, steady_s: float, clock: Clock = time.monotonic
    ) -> None:
        self.name = name
        self._failures = failures
        self._steady_s = steady_s
        self._clock = clock
        self._in_a_row = 0
        self._running_since: float | None = None

    @property
    def looping(self) -> bool:
        if self._in_a_row < self._failures:
            return False
        running_since = self._running_since
        return running_since is None or self._clock() - running_since < self._steady_s

    def started(self) -> None:
        self._running_since = self._clock()

    def failed(self) -> None:
        running_since, self._running_since = self._running_since, None
        if running_since is not None and self._clock() - running_since >= self._steady_s:
            self._in_a_row = 0
        self._in_a_row += 1


class CrashLoops:
    """The crash loops of a service's supervised tasks: one `CrashLoop` per task, and why the
    service is unhealthy while any of them loops (a health check)."""

    def __init__(self, *, failures: int = 3, steady_s: float = 30.0) -> None:
        self._failures = failures
        self._steady_s = steady_s
        self._loops: list[CrashLoop] = []

    def watch(self, name: str) -> CrashLoop:
        loop = CrashLoop(name, failures=self._failures, steady_s=self._steady_s)
        self._loops.append(loop)
        return loop

    async def failing(self) -> str | None:
        """Names the looping tasks (names of our code's parts, never data), or None."""
        looping = sorted(loop.name for loop in self._loops if loop.looping)
        return f"crash-looping: {', '.join(looping)}" if looping else None


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    first_delay_s: float = 1.0,
    max_delay_s: float = 30.0,
    crash_loop: CrashLoop | None = None,
) -> None:
    """Run ``run()`` until cancelled, starting it again after every failure.

    The delay doubles after each quick failure, up to ``max_delay_s``; a run that lasted longer
    than that starts the count again. Kafka or MongoDB being away at start-up or later is then
    a delay, never a projection that silently stopped for good. ``crash_loop`` is told of each
    start and failure (so health can say when the task keeps failing).
    """
    delay = first_delay_s
    while True:
        started = time.monotonic()
        if crash_loop is not None:
            crash_loop.started()
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if crash_loop is not None:
                crash_loop.failed()
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
