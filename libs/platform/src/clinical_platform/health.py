"""Readiness that tells the truth: gRPC health follows what a service cannot serve without.

A service's parts contribute `HealthCheck`s (Vault unsealed and reachable, no event writer
fenced, no projection crash-looping: `lifecycle.ServiceParts`). The `HealthMonitor` runs them
every few seconds and reports NOT_SERVING while any fails, SERVING once all pass again; each
transition is logged with the failing checks' reasons, and ``clinical_health_serving{check}``
is 1 while a check passes, 0 while it fails. A reason names parts and states of our own
(``"partition 3 fenced"``), never request data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from clinical_platform.observability.metrics import HEALTH_SERVING

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthCheck:
    """One thing the service cannot serve without.

    ``name`` is the metric's ``check`` label: a fixed word (``vault``, ``event_writer``,
    ``projections``). ``failing`` answers why the check fails now, or None while it passes.
    """

    name: str
    failing: Callable[[], Awaitable[str | None]]


ReportServing = Callable[[bool], Awaitable[None]]
"""Sets the health servicer's status: True for SERVING (`grpc_server.GrpcServer.set_serving`)."""


class HealthMonitor:
    """Runs ``checks`` every ``interval_s`` and reports the service SERVING only while all pass."""

    def __init__(
        self, checks: Sequence[HealthCheck], report: ReportServing, *, interval_s: float
    ) -> None:
        self._checks = tuple(checks)
        self._report = report
        self._interval_s = interval_s
        self._serving: bool | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Check once (so the first answer is already honest), then keep checking."""
        await self.check_once()
        self._task = asyncio.create_task(self._watch(), name="health-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def check_once(self) -> bool:
        """Run every check; report a change of status. True when all pass."""
        reasons: dict[str, str] = {}
        for check in self._checks:
            reason = await self._run(check)
            HEALTH_SERVING.labels(check.name).set(0 if reason else 1)
            if reason:
                reasons[check.name] = reason
        serving = not reasons
        if serving != self._serving:
            if serving and self._serving is not None:
                logger.info("health SERVING again: every check passes")
            elif not serving:
                logger.warning("health NOT_SERVING", extra={"failing_checks": reasons})
            self._serving = serving
            await self._report(serving)
        return serving

    async def _run(self, check: HealthCheck) -> str | None:
        # A check that hangs or breaks is a failing check, not a stalled or dead monitor.
        try:
            async with asyncio.timeout(self._interval_s):
                return await check.failing()
        except TimeoutError:
            return "the check did not answer in time"
        except Exception as error:
            return f"the check failed: {type(error).__name__}"

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.check_once()
