"""One lifecycle for every service: start its parts in order, stop them in reverse, for sure.

A composition root reads::

    async with running_service(settings, service="orders") as parts:
        store = await parts.event_store(service="orders")
        app = OrdersApp(...)
        parts.run_projections([...])
        yield RunningOrders(...)

Everything entered through `ServiceParts` is stopped when the block ends, last started first,
also when starting a later part fails half-way.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from clinical_platform.access.log import AccessAuditLog
from clinical_platform.access.publisher import AccessAuditConfig
from clinical_platform.background import CrashLoops, stop_tasks
from clinical_platform.clients.mongo import build_mongo_client
from clinical_platform.eventlog.errors import TopicLayoutError
from clinical_platform.eventlog.store import EventStore
from clinical_platform.health import HealthCheck
from clinical_platform.projections.background import start_projections
from clinical_platform.projections.projection import Projection
from clinical_platform.runtime import event_store_config
from clinical_platform.security.readiness import keyring_health_check
from clinical_platform.security.wiring import SecurityKernel, checkpoint_runners, running_security
from clinical_platform.settings import BaseServiceSettings


@dataclass(frozen=True)
class ServiceParts:
    """The shared parts of a running service, and the stack that stops what it starts.

    ``health_checks`` grows with the parts started (Vault, the event writers, the projections):
    the composition root hands them to `runtime.serve_grpc`.
    """

    settings: BaseServiceSettings
    security: SecurityKernel
    database: AsyncDatabase[Any]
    access_log: AccessAuditLog
    stack: AsyncExitStack
    health_checks: list[HealthCheck] = field(default_factory=list)

    async def event_store(self, *, service: str) -> EventStore:
        """The service's event store, started; its partitions attested by checkpoints.

        Exits the process (status 2, one line on stderr, like invalid settings) when the event
        topic's layout drifted: restarting would not help.
        """
        store = EventStore(
            event_store_config(self.settings, service=service),
            attester_factory=checkpoint_runners(self.security.signer, self.settings),
        )
        try:
            await store.start()
        except TopicLayoutError as drifted:
            print(f"refusing to start: {drifted}", file=sys.stderr)
            raise SystemExit(2) from None
        self.stack.push_async_callback(store.stop)
        self.health_checks.append(writer_health_check(store))
        return store

    def run_projections(self, projections: Sequence[Projection]) -> None:
        """Run ``projections`` as supervised tasks until the service stops; health is
        NOT_SERVING while one of them crash-loops."""
        crash_loops = CrashLoops(failures=self.settings.projection_crash_loop_failures)
        tasks = start_projections(
            projections, self.settings, self.database, self.security.cipher, crash_loops
        )
        self.stack.push_async_callback(stop_tasks, tasks)
        self.health_checks.append(HealthCheck("projections", crash_loops.failing))

    def run_task(self, name: str, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``work`` as a task until the service stops (cancelled on the way out)."""
        task = asyncio.create_task(work(), name=name)
        self.stack.push_async_callback(stop_tasks, [task])

    def on_stop(self, stop: Callable[[], Awaitable[Any]]) -> None:
        """Call ``stop`` when the service stops (before whatever was started earlier)."""
        self.stack.push_async_callback(stop)


@asynccontextmanager
async def running_service(
    settings: BaseServiceSettings, *, service: str, database: str
) -> AsyncIterator[ServiceParts]:
    """Vault (keys, signer), MongoDB database ``database`` and the access audit log of
    ``service``, started in that order and stopped in reverse after the block."""
    async with AsyncExitStack() as stack:
        security = await stack.enter_async_context(running_security(settings))
        mongo = build_mongo_client(settings)
        stack.push_async_callback(mongo.close)
        access_log = AccessAuditLog(AccessAuditConfig.from_settings(settings, service=service))
        await access_log.start()
        stack.push_async_callback(access_log.stop)
        parts = ServiceParts(settings, security, mongo[database], access_log, stack)
        parts.health_checks.append(keyring_health_check(security.keyring))
        yield parts


def writer_health_check(store: EventStore) -> HealthCheck:
    """Failing for good once a newer writer fenced one of the store's partition writers: this
    replica is a zombie and must not take commands (a restart re-joins as the newest)."""

    async def failing() -> str | None:
        fenced = store.fenced_partitions
        return f"fenced off partitions {fenced} by a newer writer" if fenced else None

    return HealthCheck("event_writer", failing)
