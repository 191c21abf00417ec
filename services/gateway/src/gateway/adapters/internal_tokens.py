"""The gateway's internal tokens: short-lived EdDSA JWTs, one audience per downstream service.

RFC 8693 token-exchange semantics: the external token is exchanged for one the service trusts,
naming the same subject, the application (``client_id``) and, for a delegated call, the party
acted for (``act``). The signing keys are Ed25519; the first key signs, every key is published
in the JWKS (``/.well-known/jwks.json``) so services keep verifying tokens of a key being
rotated out. Each key's ``kid`` is its RFC 7638 thumbprint. Every call gets a token of its own,
marked single-use: a service refuses its ``jti`` a second time, so a token copied off one call
cannot make another (`clinical_platform.seen_tokens`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from jwt.algorithms import OKPAlgorithm

from clinical_platform.principals import Principal
from clinical_platform.tokens import token_claims


class InternalTokenIssuer:
    """Mints internal tokens with the current key; publishes every key's public half."""

    def __init__(self, keys: Sequence[Ed25519PrivateKey], *, issuer: str, ttl_s: int = 120) -> None:
        if not keys:
            msg = "the gateway needs at least one signing key"
            raise ValueError(msg)
        self._keys = list(keys)
        self._issuer = issuer
        self._ttl_s = ttl_s

    @classmethod
    def from_pem_file(cls, path: Path, *, issuer: str, ttl_s: int) -> InternalTokenIssuer:
        """Load the PEM private keys of ``path`` (first signs), as `rotate_key_file` writes."""
        blocks = path.read_text().split("-----END PRIVATE KEY-----")
        keys = []
        for block in (b.strip() for b in blocks):
            if not block:
                continue
            key = load_pem_private_key(f"{block}\n-----END PRIVATE KEY-----\n".encode(), None)
            if not isinstance(key, Ed25519PrivateKey):
                msg = f"{path} must hold Ed25519 private keys"
                raise ValueError(msg)
            keys.append(key)
        return cls(keys, issuer=issuer, ttl_s=ttl_s)

    def rotate(self, new_key: Ed25519PrivateKey, *, keep: int = 1) -> None:
        """Sign with ``new_key`` from now on; keep ``keep`` older keys published."""
        self._keys = [new_key, *self._keys[:keep]]

    def mint(self, principal: Principal, *, audience: str) -> str:
        """A single-use token for one call by ``principal``, that only ``audience`` accepts."""
        claims = token_claims(
            principal, issuer=self._issuer, audience=audience, ttl_s=self._ttl_s,
            now=int(time.time()), single_use=True,
        )  # fmt: skip
        key = self._keys[0]
        return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": key_id(key)})

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWK set."""
        return {"keys": [public_jwk(k) for k in self._keys]}

    def public_pem(self) -> str:
        """The public keys as a PEM bundle (the services' JWT_PUBLIC_KEYS)."""
        return "".join(
            k.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
            for k in self._keys
        )


def public_jwk(key: Ed25519PrivateKey) -> dict[str, Any]:
    jwk: dict[str, Any] = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": key_id(key), "use": "sig", "alg": "EdDSA"}


def key_id(key: Ed25519PrivateKey) -> str:
    """RFC 7638 thumbprint of the public key."""
    jwk = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    canonical = json.dumps({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]},
                           separators=(",", ":"), sort_keys=True)  # fmt: skip
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def rotate_key_file(path: Path, *, keep: int = 1) -> None:
    """Put a new key first in ``path`` (created, mode 0600), keeping ``keep`` older ones."""
    old = path.read_text().split("-----END PRIVATE KEY-----") if path.exists() else []
    kept = [f"{b.strip()}\n-----END PRIVATE KEY-----\n" for b in old if b.strip()][:keep]
    new = Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(new.decode() + "".join(kept))
