"""Honest health: NOT_SERVING while a check fails, with its reason logged and a gauge per check."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

import grpc
import pytest
from clinical_testing.waiting import eventually
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clinical_platform.background import CrashLoop, CrashLoops, supervise
from clinical_platform.health import HealthCheck, HealthMonitor
from clinical_platform.lifecycle import writer_health_check
from clinical_platform.observability.metrics import REGISTRY
from clinical_platform.runtime import grpc_serving
from clinical_platform.settings import BaseServiceSettings

pytestmark = pytest.mark.unit


class Switch:
    """A check's state, flipped by the test: None passes, a reason fails."""

    def __init__(self) -> None:
        self.reason: str | None = None

    async def failing(self) -> str | None:
        return self.reason


class Reports:
    def __init__(self) -> None:
        self.statuses: list[bool] = []

    async def __call__(self, serving: bool) -> None:
        self.statuses.append(serving)


def _gauge(check: str) -> float | None:
    return REGISTRY.get_sample_value("clinical_health_serving", {"check": check})


async def test_a_failing_check_reports_not_serving_and_serving_again_once_it_passes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    vault, writer = Switch(), Switch()
    reports = Reports()
    monitor = HealthMonitor(
        [HealthCheck("vault", vault.failing), HealthCheck("event_writer", writer.failing)],
        reports,
        interval_s=600,
    )

    assert await monitor.check_once()
    vault.reason = "check the seal: Vault is sealed"
    with caplog.at_level(logging.INFO, logger="clinical_platform.health"):
        assert not await monitor.check_once()
        assert not await monitor.check_once()
        assert _gauge("vault") == 0
        assert _gauge("event_writer") == 1
        vault.reason = None
        assert await monitor.check_once()

    # Reported on each change only; the reason is in the log line that says NOT_SERVING.
    assert reports.statuses == [True, False, True]
    assert _gauge("vault") == 1
    not_serving = [r for r in caplog.records if r.getMessage() == "health NOT_SERVING"]
    assert [r.failing_checks for r in not_serving] == [  # type: ignore[attr-defined]
        {"vault": "check the seal: Vault is sealed"}
    ]
    assert all(r.levelno < logging.ERROR for r in caplog.records)


async def test_a_check_that_breaks_or_hangs_fails_instead_of_stopping_the_monitor() -> None:
    async def broken() -> str | None:
        raise ConnectionError("nobody home")

    async def hanging() -> str | None:
        await asyncio.Event().wait()
        return None

    reports = Reports()
    monitor = HealthMonitor(
        [HealthCheck("vault", broken), HealthCheck("projections", hanging)],
        reports,
        interval_s=0.05,
    )

    assert not await monitor.check_once()
    assert reports.statuses == [False]
    assert _gauge("vault") == 0
    assert _gauge("projections") == 0


async def test_the_monitor_keeps_checking_in_the_background() -> None:
    switch = Switch()
    reports = Reports()
    monitor = HealthMonitor([HealthCheck("vault", switch.failing)], reports, interval_s=0.01)
    await monitor.start()
    try:
        switch.reason = "check the seal: Vault is sealed"
        assert await eventually(lambda: reports.statuses[-1] is False)
        switch.reason = None
        assert await eventually(lambda: reports.statuses[-1] is True)
    finally:
        await monitor.stop()

    assert reports.statuses == [True, False, True]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def looping(loop: CrashLoop) -> bool:
    # A call, not the property: mypy would take one assertion on it as true for the rest.
    return loop.looping


def test_quick_failures_in_a_row_are_a_crash_loop_until_a_run_lasts() -> None:
    clock = FakeClock()
    loop = CrashLoop("orders.orders", failures=3, steady_s=30, clock=clock)

    for _ in range(2):
        loop.started()
        clock.now += 1
        loop.failed()
    assert not looping(loop)
    loop.started()
    clock.now += 1
    loop.failed()
    assert looping(loop)

    loop.started()  # restarted after its backoff, and still running ...
    clock.now += 29
    assert looping(loop)
    clock.now += 1  # ... long enough to count as recovered
    assert not looping(loop)
    loop.failed()  # a failure after a steady run starts the count again
    assert not looping(loop)


def test_failures_far_apart_are_no_crash_loop() -> None:
    clock = FakeClock()
    loop = CrashLoop("orders.orders", failures=3, steady_s=30, clock=clock)

    for _ in range(5):
        loop.started()
        clock.now += 60
        loop.failed()

    assert not looping(loop)


async def test_crash_loops_name_the_looping_tasks_for_health() -> None:
    loops = CrashLoops(failures=2, steady_s=600)
    runs = 0

    async def failing_projection() -> None:
        nonlocal runs
        runs += 1
        raise ConnectionError("MongoDB is away")

    crash_loop = loops.watch("orders.orders")
    supervised = asyncio.create_task(
        supervise(
            "projection orders.orders",
            failing_projection,
            first_delay_s=0.001,
            crash_loop=crash_loop,
        )
    )
    loops.watch("orders.results-listener")
    try:
        assert await eventually(lambda: runs >= 2)
    finally:
        supervised.cancel()

    assert await loops.failing() == "crash-looping: orders.orders"


class FencedStore:
    def __init__(self) -> None:
        self.fenced_partitions: list[int] = []


async def test_a_fenced_event_writer_fails_the_writer_check_for_good() -> None:
    store = FencedStore()
    check = writer_health_check(store)  # type: ignore[arg-type]

    assert check.name == "event_writer"
    assert await check.failing() is None
    store.fenced_partitions = [2, 5]
    assert await check.failing() == "fenced off partitions [2, 5] by a newer writer"


async def test_a_served_service_answers_not_serving_while_a_check_fails() -> None:
    vault = Switch()
    vault.reason = "check the seal: Vault is sealed"
    settings = BaseServiceSettings(
        grpc_port=0, grpc_grace_seconds=0, health_check_interval_seconds=0.02
    )
    checks = [HealthCheck("vault", vault.failing)]

    async with (
        grpc_serving(settings, health_checks=checks) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)

        async def status() -> int:
            response = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            return int(response.status)

        assert await status() == health_pb2.HealthCheckResponse.NOT_SERVING
        vault.reason = None
        assert await eventually(lambda: _is(status(), health_pb2.HealthCheckResponse.SERVING))


async def _is(answer: Awaitable[int], expected: int) -> bool:
    return await answer == expected
