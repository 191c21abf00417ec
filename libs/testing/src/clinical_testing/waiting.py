"""Waiting in tests for something to happen: poll a condition until a deadline, never a bare sleep.

    records = await eventually(lambda: read_access_records(bootstrap, topic), within_s=30)
    assert records  # the assertion stays the test's own

`eventually` returns the condition's first truthy value, or its last value once the deadline
has passed, so the caller's assertion says what went wrong.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

import grpc

T = TypeVar("T")


@overload
async def eventually(
    condition: Callable[[], Awaitable[T]], *, within_s: float = ..., interval_s: float = ...
) -> T: ...


@overload
async def eventually(
    condition: Callable[[], T], *, within_s: float = ..., interval_s: float = ...
) -> T: ...


async def eventually(
    condition: Callable[[], Any], *, within_s: float = 10.0, interval_s: float = 0.05
) -> Any:
    """Call ``condition`` (sync or async) until it returns something truthy or ``within_s`` pass."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        outcome = condition()
        value = await outcome if inspect.isawaitable(outcome) else outcome
        if value or asyncio.get_running_loop().time() >= deadline:
            return value
        await asyncio.sleep(interval_s)


async def once_recorded(read: Callable[[], Awaitable[T]], *, within_s: float = 30.0) -> T:
    """``read()``'s answer once it stops being OUT_OF_RANGE.

    A read "at least version N" of a version that the event log does not hold yet is refused at
    once; when another process is about to record it (orders' results listener, say), the
    client asks again. After ``within_s`` the last attempt's error is raised as it is.
    """

    async def attempt() -> T | None:
        try:
            return await read()
        except grpc.aio.AioRpcError as refused:
            if refused.code() != grpc.StatusCode.OUT_OF_RANGE:
                raise
            return None

    answer = await eventually(attempt, within_s=within_s, interval_s=0.1)
    return answer if answer is not None else await read()
