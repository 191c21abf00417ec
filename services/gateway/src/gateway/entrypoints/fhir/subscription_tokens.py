"""The websocket channel's binding tokens (``$get-ws-binding-token``): random, single-use,
valid for ``ttl_s`` seconds, bound to one subscription and the caller who asked.

They live in this gateway process: a client binds through the replica that issued its token
(a sticky route, or one replica), and a restart forgets them (ask for another).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.domain.identity import Caller

DEFAULT_TTL_S = 60.0
MAX_OUTSTANDING = 10_000


@dataclass(frozen=True)
class Binding:
    """What a token binds: the caller (whose grants the stream is read with) and the
    subscription."""

    caller: Caller
    subscription_id: str
    expires_at: float


class BindingTokens:
    """Issued tokens until used or expired; the oldest go first past ``MAX_OUTSTANDING``."""

    def __init__(self, *, ttl_s: float = DEFAULT_TTL_S,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self._ttl_s = ttl_s
        self._clock = clock
        self._issued: dict[str, Binding] = {}

    def issue(self, caller: Caller, subscription_id: str) -> tuple[str, str]:
        """A new token and its expiry (an ISO instant)."""
        now = self._clock()
        self._forget_expired(now)
        while len(self._issued) >= MAX_OUTSTANDING:
            self._issued.pop(next(iter(self._issued)))
        token = secrets.token_urlsafe(32)
        expires_at = now + self._ttl_s
        self._issued[token] = Binding(caller, subscription_id, expires_at)
        expiry = datetime.fromtimestamp(expires_at, UTC).isoformat(timespec="seconds")
        return token, expiry

    def redeem(self, token: str) -> Binding | None:
        """The token's binding, once; None for an unknown, used or expired token."""
        binding = self._issued.pop(token, None)
        if binding is None or binding.expires_at <= self._clock():
            return None
        return binding

    def _forget_expired(self, now: float) -> None:
        for token in [t for t, b in self._issued.items() if b.expires_at <= now]:
            del self._issued[token]
