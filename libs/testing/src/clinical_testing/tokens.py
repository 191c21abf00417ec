"""Signed test tokens: a fresh Ed25519 key per session, and the verifier that trusts it."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from clinical_platform.devtokens import mint_token
from clinical_platform.principals import Role
from clinical_platform.tokens import TokenVerifier

__all__ = ["Role", "TokenMint", "token_mint"]


class TokenMint:
    """Mints tokens the paired `verifier` accepts; `public_pem` goes into JWT_PUBLIC_KEYS."""

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()
        self.verifier = TokenVerifier((self._key.public_key(),))
        self.public_pem = (
            self._key.public_key()
            .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def token(
        self,
        subject: str,
        *roles: Role,
        privileges: Iterable[str] = (),
        mfa: bool = False,
        patient_id: str = "",
    ) -> str:
        return mint_token(
            self._key, subject=subject, roles=roles, privileges=privileges, mfa=mfa,
            patient_id=patient_id,
        )  # fmt: skip

    def metadata(
        self,
        subject: str,
        *roles: Role,
        privileges: Iterable[str] = (),
        mfa: bool = False,
        patient_id: str = "",
    ) -> tuple[tuple[str, str]]:
        """gRPC call metadata carrying a fresh token: ``stub.Call(req, metadata=...)``."""
        token = self.token(subject, *roles, privileges=privileges, mfa=mfa, patient_id=patient_id)
        return (("authorization", f"Bearer {token}"),)


@pytest.fixture(scope="session")
def token_mint() -> TokenMint:
    """One signing key for the session; services under test trust `token_mint.verifier`."""
    return TokenMint()
