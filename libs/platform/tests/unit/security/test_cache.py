"""The data-key cache: bounded, least recently used out first, entries expiring after a TTL."""

from __future__ import annotations

import pytest

from clinical_platform.security.cache import TtlLruCache

pytestmark = pytest.mark.unit


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_ttl_after_they_were_put_even_when_used() -> None:
    clock = Clock()
    cache: TtlLruCache[str, int] = TtlLruCache(10, 5.0, clock)
    cache.put("a", 1)

    clock.now = 4.9
    assert cache.get("a") == 1
    clock.now = 5.0
    assert cache.get("a") is None
    assert len(cache) == 0


def test_least_recently_used_entry_leaves_first() -> None:
    cache: TtlLruCache[str, int] = TtlLruCache(2, 60.0, Clock())
    cache.put("a", 1)
    cache.put("b", 2)
    cache.get("a")
    cache.put("c", 3)

    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)


def test_a_cache_without_room_or_time_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one entry"):
        TtlLruCache(0, 1.0)
