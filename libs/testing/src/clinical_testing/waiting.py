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
