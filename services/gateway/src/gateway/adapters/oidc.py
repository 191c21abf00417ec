"""Verifies external access tokens: OIDC discovery, the provider's JWKS, PyJWT for the JOSE.

Checked for every token: an allowed, asymmetric algorithm (never ``none``, never HMAC: a public
key used as an HMAC secret is the classic confusion attack); a ``kid`` the provider publishes
(an unknown one refreshes the key set, at most once per ``min_refresh_interval_s``, so junk
tokens cannot make us hammer the provider); the key's own algorithm matching the header's; the
signature; ``iss``, ``aud``, ``exp``, ``nbf``, ``iat``; and ``auth_time`` not in the future.

A verified token's claims are remembered until it expires (at most ``cache_size`` tokens): an
app sends the same token many times, and checking its RSA signature again would only repeat
the answer. Like any JWKS-based check, this cannot see a token revoked before its expiry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import jwt
from jwt import PyJWK

from clinical_platform.jwks import KeySetUnavailableError, RemoteKeySet, get_json
from gateway.ports import IdentityProviderUnavailableError, TokenRejectedError

logger = logging.getLogger(__name__)

ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class OidcTokenVerifier:
    """Verifies the access tokens of one OpenID provider (issuer) for one audience."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        algorithms: Sequence[str],
        http: httpx.AsyncClient,
        min_refresh_interval_s: float = 30.0,
        leeway_s: int = 30,
        clock: Callable[[], float] = time.monotonic,
        cache_size: int = 10_000,
    ) -> None:
        unsafe = set(algorithms) - ASYMMETRIC
        if unsafe:
            msg = f"only asymmetric JWS algorithms may be allowed, not {sorted(unsafe)}"
            raise ValueError(msg)
        self._issuer = issuer.rstrip("/")
        self._audience = audience
        self._algorithms = frozenset(algorithms)
        self._http = http
        self._leeway = leeway_s
        self._key_set = RemoteKeySet(
            http=http, min_refresh_interval_s=min_refresh_interval_s, clock=clock
        )
        self._start_lock = asyncio.Lock()
        self._verified: dict[str, dict[str, Any]] = {}
        self._cache_size = cache_size

    async def start(self) -> None:
        """Read the discovery document and the first key set (else on the first token)."""
        async with self._start_lock:
            if self._key_set.loaded:
                return
            discovery = f"{self._issuer}/.well-known/openid-configuration"
            try:
                document = await get_json(discovery, self._http)
                if document.get("issuer") != self._issuer or "jwks_uri" not in document:
                    msg = "the discovery document names another issuer, or no key set"
                    raise IdentityProviderUnavailableError(msg)
                self._key_set.url = str(document["jwks_uri"])
                await self._key_set.load()
            except KeySetUnavailableError as unreachable:
                raise IdentityProviderUnavailableError(str(unreachable)) from None

    @property
    def refreshes(self) -> int:
        """How often an unknown ``kid`` made us read the key set again."""
        return self._key_set.refreshes

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid token; TokenRejectedError (reason without token data) otherwise."""
        known = self._verified.get(token)
        if known is not None:
            if known["exp"] > time.time():
                return known
            del self._verified[token]
        if not self._key_set.loaded:
            await self.start()
        claims = await self._verify(token)
        if self._cache_size:
            if len(self._verified) >= self._cache_size:
                self._verified.clear()  # rare, and simpler than an LRU: the next calls re-verify
            self._verified[token] = claims
        return claims

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise TokenRejectedError("malformed token") from None
        algorithm = header.get("alg")
        if algorithm not in self._algorithms:
            raise TokenRejectedError("algorithm not allowed")
        key = await self._key(header.get("kid"))
        if key.algorithm_name != algorithm:
            raise TokenRejectedError("algorithm does not match the key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=[algorithm], audience=self._audience,
                issuer=self._issuer, leeway=self._leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )  # fmt: skip
        except jwt.ExpiredSignatureError:
            raise TokenRejectedError("token expired") from None
        except jwt.InvalidTokenError as invalid:
            raise TokenRejectedError(_reason(invalid)) from None
        auth_time = claims.get("auth_time")
        if auth_time is not None and (
            not isinstance(auth_time, int) or auth_time > time.time() + self._leeway
        ):
            raise TokenRejectedError("auth_time invalid")
        return claims

    async def _key(self, kid: object) -> PyJWK:
        if not isinstance(kid, str) or not kid:
            raise TokenRejectedError("token names no key")
        key = await self._key_set.key(kid)
        if key is None:
            raise TokenRejectedError("unknown signing key")
        return key


def _reason(invalid: jwt.InvalidTokenError) -> str:
    reasons = {
        jwt.InvalidAudienceError: "wrong audience",
        jwt.InvalidIssuerError: "wrong issuer",
        jwt.ImmatureSignatureError: "token not yet valid",
        jwt.InvalidSignatureError: "signature invalid",
        jwt.MissingRequiredClaimError: "required claim missing",
        jwt.InvalidIssuedAtError: "iat invalid",
    }
    for kind, reason in reasons.items():
        if isinstance(invalid, kind):
            return reason
    return "token invalid"
