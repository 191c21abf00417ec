"""Signed test tokens: a fresh Ed25519 key per session, and the verifiers that trust it."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from clinical_platform.audiences import service_audience
from clinical_platform.devtokens import DEV_AUDIENCES, mint_token
from clinical_platform.principals import Role
from clinical_platform.tokens import TokenVerifier

__all__ = ["Role", "TokenMint", "token_mint"]


class TokenMint:
    """Mints tokens the services' verifiers accept; `public_pem` goes into JWT_PUBLIC_KEYS.

    A token names every service's audience unless ``audience`` narrows it, as a local session's
    dev token does: cross-service tests call several services with one caller's token.
    """

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()
        self.public_pem = (
            self._key.public_key()
            .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def verifier_for(self, service: str) -> TokenVerifier:
        """The verifier ``service`` (e.g. "orders") builds from these keys and its settings."""
        return TokenVerifier((self._key.public_key(),), audience=service_audience(service))

    def token(
        self,
        subject: str,
        *roles: Role,
        privileges: Iterable[str] = (),
        mfa: bool = False,
        patient_id: str = "",
        audience: str | Iterable[str] = DEV_AUDIENCES,
        auth_time: int | None = None,
    ) -> str:
        return mint_token(
            self._key, subject=subject, roles=roles, privileges=privileges, mfa=mfa,
            patient_id=patient_id, auth_time=auth_time,
            audience=audience if isinstance(audience, str) else tuple(audience),
        )  # fmt: skip

    def metadata(
        self,
        subject: str,
        *roles: Role,
        privileges: Iterable[str] = (),
        mfa: bool = False,
        patient_id: str = "",
        audience: str | Iterable[str] = DEV_AUDIENCES,
        auth_time: int | None = None,
    ) -> tuple[tuple[str, str]]:
        """gRPC call metadata carrying a fresh token: ``stub.Call(req, metadata=...)``."""
        token = self.token(
            subject, *roles, privileges=privileges, mfa=mfa, patient_id=patient_id,
            audience=audience, auth_time=auth_time,
        )  # fmt: skip
        return (("authorization", f"Bearer {token}"),)


@pytest.fixture(scope="session")
def token_mint() -> TokenMint:
    """One signing key for the session; a service under test trusts `verifier_for(service)`."""
    return TokenMint()
