"""The ids (``jti``) of single-use tokens this process has accepted, until the tokens expire.

The gateway signs a fresh internal token for every call it makes and marks it single-use
(``single_use: true``): a second call with the same token is a replay, and `TokenVerifier`
refuses it. Each ``jti`` is kept only until its token could no longer be accepted anyway
(``exp`` plus the verifier's leeway), so the set holds about (calls a second) x (token life).
It is bounded: when full, the ids closest to expiry are forgotten first (a warning says so),
rather than refusing every new call. The set is per process: a token replayed to another
replica of the same service is not caught here (docs/security.md, "Tokens between services").
"""

from __future__ import annotations

import heapq
import logging
import time

logger = logging.getLogger(__name__)

# At the gateway's 120 s tokens, room for over 800 calls a second to one replica; an entry
# costs about 150 bytes, so a full set is some 15 MB.
DEFAULT_MAX_ENTRIES = 100_000
_WARN_EVERY_S = 60.0


class SeenTokenIds:
    """A bounded set of token ids, each dropped once its token has expired."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            msg = "max_entries must be at least 1"
            raise ValueError(msg)
        self._max_entries = max_entries
        self._expiry_by_id: dict[str, float] = {}
        self._by_expiry: list[tuple[float, str]] = []
        self._warned_at = float("-inf")
        self.forgotten_early = 0

    def __len__(self) -> int:
        return len(self._expiry_by_id)

    def first_use(self, token_id: str, *, until: float, now: float | None = None) -> bool:
        """Record ``token_id`` until ``until`` (seconds since the epoch); False when it is
        already recorded (the token was used before)."""
        now = time.time() if now is None else now
        self._drop_expired(now)
        if token_id in self._expiry_by_id:
            return False
        if len(self._expiry_by_id) >= self._max_entries:
            self._forget_closest_to_expiry(now)
        self._expiry_by_id[token_id] = until
        heapq.heappush(self._by_expiry, (until, token_id))
        return True

    def _drop_expired(self, now: float) -> None:
        while self._by_expiry and self._by_expiry[0][0] <= now:
            _, token_id = heapq.heappop(self._by_expiry)
            del self._expiry_by_id[token_id]

    def _forget_closest_to_expiry(self, now: float) -> None:
        _, token_id = heapq.heappop(self._by_expiry)
        del self._expiry_by_id[token_id]
        self.forgotten_early += 1
        if now - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = now
            logger.warning(
                "single-use token ids are forgotten before they expire: more calls than the "
                "set holds (replays of the oldest are no longer caught)",
                extra={"max_entries": self._max_entries, "forgotten": self.forgotten_early},
            )
