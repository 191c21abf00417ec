"""Verifies the platform's internal access tokens: EdDSA (Ed25519) JWTs.

Tokens are issued by the platform's token service (the gateway at the edge; the development
minter in `clinical_platform.devtokens` for tests and `make run`). Every token must carry
``iss``, ``sub``, ``aud`` naming the service that reads it, ``iat``, ``exp`` at most
``max_lifetime_s`` after ``iat``, and a ``jti``. Claims beyond the registered ones:

    single_use  true: the token serves one call (the gateway's per-call tokens); its ``jti``
                is refused a second time until the token expires (`seen_tokens`)

    roles       list of Role values
    privileges  list of fine-grained rights, e.g. "orders:sign"
    amr         authentication methods (RFC 8176), a list; "mfa" asserts multi-factor
    auth_time   when the user last authenticated (seconds since the epoch), for recent-MFA rules
    patient_id  for a patient principal: the patient record it may read
    client_id   the application acting for the subject
    act         RFC 8693 actor claim: {"sub": ...} when acting on behalf of someone
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from clinical_platform.audiences import DEFAULT_MAX_LIFETIME_S
from clinical_platform.jwks import RemoteKeySet
from clinical_platform.principals import Principal, Role
from clinical_platform.seen_tokens import SeenTokenIds

ALGORITHM = "EdDSA"
DEFAULT_ISSUER = "clinical-platform"
REQUIRED_CLAIMS = ["iss", "sub", "aud", "iat", "exp", "jti"]

# PyJWT's refusals in our own words: they reach the caller, so never the token's values.
_REASONS: dict[type[jwt.InvalidTokenError], str] = {
    jwt.ExpiredSignatureError: "expired",
    jwt.ImmatureSignatureError: "not yet valid",
    jwt.InvalidAudienceError: "not issued for this service (aud)",
    jwt.InvalidIssuerError: "not from a trusted issuer (iss)",
    jwt.InvalidIssuedAtError: "issued in the future (iat)",
    jwt.InvalidAlgorithmError: "signed with an algorithm not allowed",
    jwt.DecodeError: "malformed",
}


class AuthenticationError(Exception):
    """The credentials are missing, malformed, expired, or not signed by a trusted key.

    The message is the reason in the platform's words (safe to send to the caller).
    """


@dataclass(frozen=True)
class TokenVerifier:
    """Verifies tokens against trusted public keys (several while keys rotate): those given,
    and those the token service publishes as a key set (``key_set``), read when needed. A
    single-use token's ``jti`` is remembered (``seen``) and refused if it comes again."""

    public_keys: Sequence[Ed25519PublicKey]
    audience: str
    issuer: str = DEFAULT_ISSUER
    max_lifetime_s: int = DEFAULT_MAX_LIFETIME_S
    leeway_s: int = 30
    key_set: RemoteKeySet | None = None
    seen: SeenTokenIds = field(default_factory=SeenTokenIds, compare=False)

    @classmethod
    def from_pem(
        cls, pem: str, *, issuer: str, audience: str, max_lifetime_s: int = DEFAULT_MAX_LIFETIME_S
    ) -> TokenVerifier:
        """Trust every public key in a PEM bundle."""
        keys = tuple(public_keys_in(pem))
        return cls(keys, audience=audience, issuer=issuer, max_lifetime_s=max_lifetime_s)

    async def verify_current(self, token: str) -> Principal:
        """`verify`, after reading the key set when the token names a key not yet known (or
        the set is old). KeySetUnavailableError when the set was never readable."""
        if self.key_set is not None:
            try:
                kid = jwt.get_unverified_header(token).get("kid")
            except jwt.InvalidTokenError:
                raise AuthenticationError("malformed") from None
            if isinstance(kid, str) and kid:
                await self.key_set.key(kid)
        return self.verify(token)

    def verify(self, token: str) -> Principal:
        """The principal a valid token names; AuthenticationError (with a reason) otherwise."""
        published = [] if self.key_set is None else [k.key for k in self.key_set.published()]
        for key in [*self.public_keys, *published]:
            try:
                claims = jwt.decode(
                    token, key, algorithms=[ALGORITHM], issuer=self.issuer,
                    audience=self.audience, leeway=self.leeway_s,
                    options={"require": REQUIRED_CLAIMS},
                )  # fmt: skip
            except jwt.InvalidSignatureError:
                continue
            except jwt.MissingRequiredClaimError as missing:
                raise AuthenticationError(f"missing the {missing.claim} claim") from None
            except jwt.InvalidTokenError as invalid:
                raise AuthenticationError(_reason(invalid)) from None
            self._check_lifetime(claims)
            principal = _principal(claims, now=time.time() + self.leeway_s)
            self._check_single_use(claims)
            return principal
        raise AuthenticationError("not signed by a trusted key")

    def _check_lifetime(self, claims: dict[str, Any]) -> None:
        if claims["exp"] - claims["iat"] > self.max_lifetime_s:
            msg = f"lives longer than {self.max_lifetime_s} s (exp - iat)"
            raise AuthenticationError(msg)
        if not isinstance(claims["jti"], str) or not claims["jti"]:
            raise AuthenticationError("jti must be a non-empty string")

    def _check_single_use(self, claims: dict[str, Any]) -> None:
        # Last: only a token valid in every other respect may take a place in the set.
        single_use = claims.get("single_use", False)
        if not isinstance(single_use, bool):
            raise AuthenticationError("single_use must be true or false")
        # Kept while the token could still be accepted: until its expiry, with the leeway.
        until = claims["exp"] + self.leeway_s
        if single_use and not self.seen.first_use(claims["jti"], until=until):
            raise AuthenticationError("already used (jti); a single-use token serves one call")


def token_claims(
    principal: Principal,
    *,
    issuer: str,
    audience: str | Sequence[str],
    ttl_s: int,
    now: int,
    single_use: bool = False,
) -> dict[str, Any]:
    """The claims of a token naming ``principal``: what `TokenVerifier.verify` reads back.
    ``single_use``: the token serves one call (`TokenVerifier` refuses its ``jti`` again)."""
    claims: dict[str, Any] = {
        "iss": issuer, "aud": audience if isinstance(audience, str) else list(audience),
        "sub": principal.subject, "iat": now, "nbf": now, "exp": now + ttl_s,
        "jti": uuid.uuid4().hex, "roles": sorted(principal.roles),
        "privileges": sorted(principal.privileges),
        "amr": ["pwd", "mfa"] if principal.mfa else ["pwd"],
    }  # fmt: skip
    if single_use:
        claims["single_use"] = True
    if principal.auth_time:
        claims["auth_time"] = principal.auth_time
    if principal.patient_id:
        claims["patient_id"] = principal.patient_id
    if principal.client_id:
        claims["client_id"] = principal.client_id
    if principal.on_behalf_of:
        claims["act"] = {"sub": principal.on_behalf_of}
    return claims


def public_keys_in(pem: str) -> list[Ed25519PublicKey]:
    """Every Ed25519 public key of a PEM bundle (ValueError for any other kind of key)."""
    blocks = [f"{b.strip()}\n" for b in pem.split("-----END PUBLIC KEY-----") if b.strip()]
    keys = []
    for block in blocks:
        key = load_pem_public_key(f"{block}-----END PUBLIC KEY-----\n".encode())
        if not isinstance(key, Ed25519PublicKey):
            msg = "JWT_PUBLIC_KEYS must hold Ed25519 public keys"
            raise ValueError(msg)
        keys.append(key)
    return keys


def _reason(invalid: jwt.InvalidTokenError) -> str:
    for kind, reason in _REASONS.items():
        if isinstance(invalid, kind):
            return reason
    return "invalid"


def _principal(claims: dict[str, Any], *, now: float) -> Principal:
    try:
        roles = frozenset(Role(r) for r in claims.get("roles", ()))
    except ValueError:
        raise AuthenticationError("unknown role") from None
    # A string would make `"mfa" in amr` a substring test: "nomfa" must never count as MFA.
    methods = claims.get("amr", [])
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        raise AuthenticationError("amr must be a list of strings")
    auth_time = claims.get("auth_time", 0)
    if isinstance(auth_time, bool) or not isinstance(auth_time, int) or auth_time > now:
        raise AuthenticationError("auth_time must be a past time in whole seconds")
    acting = claims.get("act") or {}
    return Principal(
        subject=str(claims["sub"]),
        roles=roles,
        privileges=frozenset(str(p) for p in claims.get("privileges", ())),
        mfa="mfa" in methods,
        auth_time=auth_time,
        patient_id=str(claims.get("patient_id", "")),
        client_id=str(claims.get("client_id", "")),
        on_behalf_of=str(acting.get("sub", "")) if isinstance(acting, dict) else "",
    )
