"""The console's login: OAuth 2.0 authorization code with PKCE (S256) at the OIDC provider.

The console is a public client (no secret): the code is bound to this login by the PKCE
verifier, which never leaves the server, and to this browser by the signed state cookie.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from clinical_platform.jwks import KeySetUnavailableError, get_json

SCOPE = "openid user/*.rs"


class LoginFailedError(Exception):
    """The provider refused the code or could not be reached; the message has no token."""


def new_verifier() -> str:
    """A PKCE code verifier: 43 characters of 256 random bits (RFC 7636 section 4.1)."""
    return secrets.token_urlsafe(32)


def challenge_of(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class OidcLogin:
    """The provider's endpoints (from its discovery document, read once) and this client."""

    issuer: str
    client_id: str
    redirect_uri: str
    http: httpx.AsyncClient
    _endpoints: dict[str, Any] | None = None

    async def authorization_url(self, state: str, verifier: str) -> str:
        endpoints = await self._discovery()
        query = {
            "response_type": "code", "client_id": self.client_id,
            "redirect_uri": self.redirect_uri, "scope": SCOPE, "state": state,
            "code_challenge": challenge_of(verifier), "code_challenge_method": "S256",
        }  # fmt: skip
        return f"{endpoints['authorization_endpoint']}?{urlencode(query)}"

    async def exchange(self, code: str, verifier: str) -> tuple[str, float]:
        """The access token the code is worth, and its lifetime in seconds."""
        endpoints = await self._discovery()
        form = {"grant_type": "authorization_code", "code": code, "client_id": self.client_id,
                "redirect_uri": self.redirect_uri, "code_verifier": verifier}  # fmt: skip
        try:
            answer = await self.http.post(endpoints["token_endpoint"], data=form, timeout=15)
        except httpx.HTTPError:
            raise LoginFailedError("the identity provider cannot be reached") from None
        if answer.status_code != 200:
            raise LoginFailedError("the identity provider refused the login")
        tokens = answer.json()
        return str(tokens["access_token"]), float(tokens.get("expires_in", 300))

    async def _discovery(self) -> dict[str, Any]:
        if self._endpoints is None:
            url = f"{self.issuer}/.well-known/openid-configuration"
            try:
                self._endpoints = dict(await get_json(url, self.http))
            except KeySetUnavailableError:
                raise LoginFailedError("the identity provider cannot be reached") from None
        return self._endpoints
