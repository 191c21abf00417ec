"""Console sessions: kept in this process, named to the browser by a signed, HttpOnly cookie.

The cookie carries a random session id, never a token: the auditor's Keycloak access token
stays on the server. Sessions live in memory, so a restart (or another replica) logs the
auditor out; the access token's own expiry ends them too.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "console_session"
LOGIN_COOKIE = "console_login"
COOKIE_PATH = "/console/"
LOGIN_TTL_S = 600
MAX_SESSIONS = 10_000
MAX_PENDING_LOGINS = 10_000


@dataclass(frozen=True)
class PendingLogin:
    """An authorization request on its way through Keycloak: its PKCE verifier and nonce."""

    verifier: str
    started_at: float


@dataclass(frozen=True)
class ConsoleSession:
    access_token: str
    expires_at: float


class ConsoleSessions:
    """Pending logins by state, sessions by id; both named in cookies signed with ``key``."""

    def __init__(self, key: str) -> None:
        self._signer = URLSafeTimedSerializer(key, salt="clinical-console")
        self._pending: dict[str, PendingLogin] = {}
        self._sessions: dict[str, ConsoleSession] = {}

    def begin_login(self, verifier: str) -> tuple[str, str]:
        """A new login's state and the signed cookie value that binds it to this browser."""
        self._expire()
        # Anyone may start a login: the oldest pending one goes first, memory stays bounded.
        if len(self._pending) >= MAX_PENDING_LOGINS:
            self._pending.pop(next(iter(self._pending)))
        state = secrets.token_urlsafe(24)
        self._pending[state] = PendingLogin(verifier, time.monotonic())
        return state, self._signer.dumps(state)

    def finish_login(self, cookie: str | None, state: str) -> PendingLogin | None:
        """The pending login if ``state`` is the one this browser started, once."""
        signed_state = self._unsign(cookie, LOGIN_TTL_S)
        if not signed_state or not secrets.compare_digest(signed_state, state):
            return None
        pending = self._pending.pop(state, None)
        if pending is None or time.monotonic() - pending.started_at > LOGIN_TTL_S:
            return None
        return pending

    def open(self, access_token: str, expires_in_s: float) -> str:
        """A new session for a verified auditor; the signed cookie value naming it."""
        self._expire()
        if len(self._sessions) >= MAX_SESSIONS:
            self._sessions.pop(next(iter(self._sessions)))
        session_id = secrets.token_urlsafe(32)
        self._sessions[session_id] = ConsoleSession(access_token, time.time() + expires_in_s)
        return self._signer.dumps(session_id)

    def find(self, cookie: str | None) -> ConsoleSession | None:
        session_id = self._unsign(cookie, None)
        session = self._sessions.get(session_id or "")
        if session is None or session.expires_at <= time.time():
            return None
        return session

    def close(self, cookie: str | None) -> None:
        self._sessions.pop(self._unsign(cookie, None) or "", None)

    def _unsign(self, cookie: str | None, max_age_s: int | None) -> str | None:
        if not cookie:
            return None
        try:
            value = self._signer.loads(cookie, max_age=max_age_s)
        except BadSignature:
            return None
        return value if isinstance(value, str) else None

    def _expire(self) -> None:
        now, wall = time.monotonic(), time.time()
        for state in [s for s, p in self._pending.items() if now - p.started_at > LOGIN_TTL_S]:
            del self._pending[state]
        for sid in [s for s, v in self._sessions.items() if v.expires_at <= wall]:
            del self._sessions[sid]
