"""Verifies the platform's internal access tokens: EdDSA (Ed25519) JWTs.

Tokens are issued by the platform's token service (the gateway at the edge; the development
minter in `clinical_platform.devtokens` for tests and `make run`). Claims beyond the registered
ones:

    roles       list of Role values
    privileges  list of fine-grained rights, e.g. "orders:sign"
    amr         authentication methods (RFC 8176); "mfa" asserts multi-factor authentication
    patient_id  for a patient principal: the patient record it may read
    client_id   the application acting for the subject
    act         RFC 8693 actor claim: {"sub": ...} when acting on behalf of someone
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from clinical_platform.principals import Principal, Role

ALGORITHM = "EdDSA"
DEFAULT_ISSUER = "clinical-platform"
DEFAULT_AUDIENCE = "clinical-services"


class AuthenticationError(Exception):
    """The credentials are missing, malformed, expired, or not signed by a trusted key."""


@dataclass(frozen=True)
class TokenVerifier:
    """Verifies tokens against one or more trusted public keys (several while keys rotate)."""

    public_keys: Sequence[Ed25519PublicKey]
    issuer: str = DEFAULT_ISSUER
    audience: str = DEFAULT_AUDIENCE
    leeway_s: int = 30

    @classmethod
    def from_pem(cls, pem: str, *, issuer: str, audience: str) -> TokenVerifier:
        """Trust every public key in a PEM bundle."""
        blocks = [f"{b.strip()}\n" for b in pem.split("-----END PUBLIC KEY-----") if b.strip()]
        keys = []
        for block in blocks:
            key = load_pem_public_key(f"{block}-----END PUBLIC KEY-----\n".encode())
            if not isinstance(key, Ed25519PublicKey):
                msg = "JWT_PUBLIC_KEYS must hold Ed25519 public keys"
                raise ValueError(msg)
            keys.append(key)
        return cls(tuple(keys), issuer=issuer, audience=audience)

    def verify(self, token: str) -> Principal:
        """The principal a valid token names; AuthenticationError otherwise (no detail leaked)."""
        for key in self.public_keys:
            try:
                claims = jwt.decode(
                    token, key, algorithms=[ALGORITHM], issuer=self.issuer,
                    audience=self.audience, leeway=self.leeway_s,
                    options={"require": ["exp", "iat", "sub", "iss", "aud"]},
                )  # fmt: skip
            except jwt.InvalidSignatureError:
                continue
            except jwt.InvalidTokenError as invalid:
                raise AuthenticationError(type(invalid).__name__) from None
            return _principal(claims)
        raise AuthenticationError("no trusted key signed this token")


def _principal(claims: dict[str, Any]) -> Principal:
    try:
        roles = frozenset(Role(r) for r in claims.get("roles", ()))
    except ValueError:
        raise AuthenticationError("unknown role") from None
    acting = claims.get("act") or {}
    return Principal(
        subject=str(claims["sub"]),
        roles=roles,
        privileges=frozenset(str(p) for p in claims.get("privileges", ())),
        mfa="mfa" in claims.get("amr", ()),
        patient_id=str(claims.get("patient_id", "")),
        client_id=str(claims.get("client_id", "")),
        on_behalf_of=str(acting.get("sub", "")) if isinstance(acting, dict) else "",
    )
