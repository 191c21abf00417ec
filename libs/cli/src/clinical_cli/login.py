"""Logging in against the profile's OpenID Connect provider (Keycloak locally), with httpx.

- the password grant, for scripted local users (client ``clinical-cli``, as `make token` does);
- authorization code + PKCE (S256) with a loopback redirect, for a person at a browser
  (client ``companion-app``, whose redirect URIs allow ``http://127.0.0.1:18057/*``);
- the refresh grant, when a cached access token has expired.

The realm enables the device-authorization grant for no client, so there is no device flow.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx

from clinical_cli.errors import CommandError
from clinical_cli.profiles import Profile
from clinical_cli.tokens import CachedTokens

CALLBACK_PATH = "/callback"


class OidcClient:
    """The provider's token and authorization endpoints under ``issuer`` (Keycloak's layout)."""

    def __init__(self, profile: Profile, *, transport: httpx.BaseTransport | None = None):
        self._profile = profile
        self._http = httpx.Client(timeout=30, transport=transport)

    @property
    def token_endpoint(self) -> str:
        return f"{self._profile.issuer}/protocol/openid-connect/token"

    @property
    def authorization_endpoint(self) -> str:
        return f"{self._profile.issuer}/protocol/openid-connect/auth"

    def password_login(self, username: str, password: str, otp: str | None = None,
                       scope: str | None = None) -> CachedTokens:  # fmt: skip
        form = {"grant_type": "password", "client_id": self._profile.client_id,
                "username": username, "password": password}  # fmt: skip
        if otp:
            form["totp"] = otp
        return self._grant(form, self._profile.client_id, scope)

    def refresh(self, tokens: CachedTokens) -> CachedTokens:
        form = {"grant_type": "refresh_token", "client_id": tokens.client_id,
                "refresh_token": tokens.refresh_token}  # fmt: skip
        return self._grant(form, tokens.client_id, scope=None)

    def exchange_code(self, login: PkceLogin, code: str) -> CachedTokens:
        form = {"grant_type": "authorization_code", "client_id": login.client_id, "code": code,
                "redirect_uri": login.redirect_uri, "code_verifier": login.verifier}  # fmt: skip
        return self._grant(form, login.client_id, scope=None)

    def _grant(self, form: dict[str, str], client_id: str, scope: str | None) -> CachedTokens:
        scope = self._profile.scope if scope is None else scope
        if scope and form["grant_type"] == "password":
            form["scope"] = scope
        try:
            answer = self._http.post(self.token_endpoint, data=form)
        except httpx.TransportError:
            msg = f"cannot reach the identity provider at {self._profile.issuer}"
            raise CommandError("UNAVAILABLE", msg) from None
        body: dict[str, Any] = _json_object(answer)
        if answer.status_code != 200 or "access_token" not in body:
            # error and error_description are the provider's words, never the form's values.
            reason = body.get("error_description") or body.get("error") or answer.status_code
            status = "UNAVAILABLE" if answer.status_code >= 500 else "UNAUTHENTICATED"
            raise CommandError(status, f"the identity provider refused the login: {reason}")
        return CachedTokens.from_token_response(body, client_id)


@dataclass(frozen=True)
class PkceLogin:
    """One authorization request: its PKCE verifier, state and loopback redirect URI."""

    issuer: str
    client_id: str
    redirect_uri: str
    scope: str
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(64))
    state: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @property
    def challenge(self) -> str:
        """RFC 7636 S256: BASE64URL(SHA-256(verifier)) without padding."""
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def authorization_url(self) -> str:
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": self.client_id,
            "redirect_uri": self.redirect_uri, "scope": f"openid {self.scope}".strip(),
            "state": self.state, "code_challenge": self.challenge,
            "code_challenge_method": "S256",
        })  # fmt: skip
        return f"{self.issuer}/protocol/openid-connect/auth?{query}"


def browser_login(
    client: OidcClient, profile: Profile, open_browser: Callable[[str], Any],
    *, timeout_s: float = 300.0, scope: str | None = None,
) -> CachedTokens:  # fmt: skip
    """Serve the loopback redirect, send the person to the provider, exchange the code."""
    server = _CallbackServer(("127.0.0.1", profile.callback_port))
    login = PkceLogin(
        issuer=profile.issuer, client_id=profile.browser_client_id,
        redirect_uri=f"http://127.0.0.1:{server.server_port}{CALLBACK_PATH}",
        scope=profile.scope if scope is None else scope,
    )  # fmt: skip
    server.expected_state = login.state
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        open_browser(login.authorization_url())
        if not server.arrived.wait(timeout_s):
            raise CommandError("DEADLINE_EXCEEDED", "no login arrived at the loopback redirect")
    finally:
        server.shutdown()
        server.server_close()
    if server.code is None:
        msg = f"the login was not completed: {server.error or 'no code'}"
        raise CommandError("UNAUTHENTICATED", msg)
    return client.exchange_code(login, server.code)


class _CallbackServer(HTTPServer):
    expected_state = ""
    code: str | None = None
    error: str | None = None

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _CallbackHandler)
        self.arrived = threading.Event()


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _CallbackServer

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path != CALLBACK_PATH:
            self.send_error(404)
            return
        query = dict(urllib.parse.parse_qsl(url.query))
        # A callback without our state may come from another page: ignore it, keep waiting.
        if not secrets.compare_digest(query.get("state", ""), self.server.expected_state):
            self.send_error(400, "unexpected state")
            return
        self.server.code = query.get("code")
        self.server.error = query.get("error")
        self.send_response(200)
        self.send_header("content-type", "text/plain; charset=utf-8")
        self.end_headers()
        self.wfile.write(b"Logged in: you can close this tab and return to the terminal.\n")
        self.server.arrived.set()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the query holds the authorization code."""


def _json_object(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
