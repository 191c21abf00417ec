"""An identity provider in memory: RSA keys, a JWKS over httpx.MockTransport, signed tokens."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, generate_private_key
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import RSAAlgorithm

ISSUER = "http://idp.test/realms/clinical"
AUDIENCE = "clinical-gateway"


class FakeIdentityProvider:
    """Signs tokens like the realm does; `client()` reads its discovery document and JWKS."""

    def __init__(self) -> None:
        self.keys: dict[str, RSAPrivateKey] = {"k1": generate_private_key(65537, 2048)}
        self.jwks_fetches = 0

    def rotate(self, kid: str) -> None:
        self.keys[kid] = generate_private_key(65537, 2048)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "iat": now, "exp": now + 300,
            "azp": "clinical-cli", "realm_access": {"roles": ["clinician"]},
            "scope": "user/*.rs", "amr": ["pwd"], "auth_time": now,
        }  # fmt: skip
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, kid: str = "k1", **overrides: Any) -> str:
        return jwt.encode(self.claims(**overrides), self.keys[kid], "RS256", headers={"kid": kid})

    def public_pem(self, kid: str = "k1") -> bytes:
        return (
            self.keys[kid]
            .public_key()
            .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        )

    def _jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.keys.items():
            jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
        # An encryption key, as Keycloak publishes one: never used to verify.
        keys.append(
            {"kid": "enc", "kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "n": "x", "e": "AQAB"}
        )
        return {"keys": keys}

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/certs"})
        if request.url.path.endswith("/certs"):
            self.jwks_fetches += 1
            return httpx.Response(200, json=self._jwks())
        return httpx.Response(404)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))
