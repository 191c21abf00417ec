"""Rate limits per key: a fixed window, and an unreachable shared store lets requests through."""

from __future__ import annotations

import pytest

from gateway.adapters.rate_limits import WindowRateLimiter

pytestmark = pytest.mark.unit


async def test_the_window_refuses_past_its_limit_with_a_retry_after() -> None:
    limiter = WindowRateLimiter("3/minute")
    decisions = [await limiter.hit("client:a") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert 1 <= decisions[-1].retry_after_s <= 60
    assert (await limiter.hit("client:b")).allowed


async def test_an_unreachable_redis_store_lets_requests_through() -> None:
    limiter = WindowRateLimiter("1/minute", "async+redis://127.0.0.1:1")
    assert all([(await limiter.hit("client:a")).allowed for _ in range(3)])
