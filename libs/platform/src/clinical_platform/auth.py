"""Principals: signed internal JWTs in `authorization` metadata, verified with keys from settings.

Tokens are EdDSA (Ed25519) JWTs issued by the platform's token service (the gateway at the edge;
`mint_token` in tests and `make run`). Claims beyond the registered ones:

    roles       list of Role values
    privileges  list of fine-grained rights, e.g. "orders:sign"
    amr         authentication methods (RFC 8176); "mfa" asserts multi-factor authentication
    patient_id  for a patient principal: the patient record it may read
    client_id   the application acting for the subject
    act         RFC 8693 actor claim: {"sub": ...} when acting on behalf of someone
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NoReturn, Protocol

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from clinical_platform.access.records import AccessAction
from clinical_platform.eventlog.context import Actor

logger = logging.getLogger(__name__)

ALGORITHM = "EdDSA"
DEFAULT_ISSUER = "clinical-platform"
DEFAULT_AUDIENCE = "clinical-services"


class Role(StrEnum):
    CLINICIAN = "clinician"
    LAB = "lab"
    REGISTRAR = "registrar"
    PATIENT = "patient"
    AUDITOR = "auditor"
    SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    """The verified caller of an RPC."""

    subject: str
    roles: frozenset[Role] = frozenset()
    privileges: frozenset[str] = frozenset()
    mfa: bool = False
    patient_id: str = ""
    client_id: str = ""
    on_behalf_of: str = ""

    def has(self, *roles: Role) -> bool:
        """True when the principal holds any of ``roles``."""
        return not self.roles.isdisjoint(roles)

    @property
    def actor(self) -> Actor:
        """The principal as recorded in event envelopes."""
        return Actor(
            subject=self.subject,
            roles=tuple(sorted(self.roles)),
            client_id=self.client_id,
            on_behalf_of=self.on_behalf_of,
        )


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


def mint_token(
    private_key: Ed25519PrivateKey,
    *,
    subject: str,
    roles: Iterable[Role | str] = (),
    privileges: Iterable[str] = (),
    mfa: bool = False,
    patient_id: str = "",
    client_id: str = "",
    on_behalf_of: str = "",
    issuer: str = DEFAULT_ISSUER,
    audience: str = DEFAULT_AUDIENCE,
    ttl_s: int = 900,
) -> str:
    """Sign a token for tests, local runs and the gateway's token exchange."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer, "aud": audience, "sub": subject, "iat": now, "exp": now + ttl_s,
        "roles": [str(Role(r)) for r in roles], "privileges": sorted(privileges),
        "amr": ["pwd", "mfa"] if mfa else ["pwd"],
    }  # fmt: skip
    if patient_id:
        claims["patient_id"] = patient_id
    if client_id:
        claims["client_id"] = client_id
    if on_behalf_of:
        claims["act"] = {"sub": on_behalf_of}
    return jwt.encode(claims, private_key, algorithm=ALGORITHM)


async def authenticate(context: grpc.aio.ServicerContext, verifier: TokenVerifier) -> Principal:
    """The caller's principal, or abort the RPC with UNAUTHENTICATED."""
    metadata = dict(context.invocation_metadata() or ())
    scheme, _, token = str(metadata.get("authorization", "")).partition(" ")
    if scheme.lower() != "bearer" or not token:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "a bearer token is required")
    try:
        return verifier.verify(token)
    except AuthenticationError:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "the bearer token is not valid")
    raise AssertionError("unreachable: abort raises")


class DenialRecorder(Protocol):
    """Records refused requests as access records (`access.log.AccessAuditLog` does)."""

    async def record_denial(
        self,
        context: grpc.aio.ServicerContext,
        principal: Principal,
        *,
        reason: str,
        patient_id: str = "",
        record_type: str = "",
        record_ids: Sequence[str] = (),
        category: str = "",
        action: AccessAction = AccessAction.READ,
        operation: str = "",
    ) -> None: ...


async def deny(
    context: grpc.aio.ServicerContext,
    principal: Principal,
    reason: str,
    *,
    access_log: DenialRecorder | None = None,
    patient_id: str = "",
    record_type: str = "",
    record_ids: Sequence[str] = (),
    category: str = "",
    action: AccessAction = AccessAction.READ,
    operation: str = "",
) -> NoReturn:
    """Refuse the RPC with PERMISSION_DENIED, and record who was refused and why (no PHI).

    With ``access_log``, the refusal also becomes an access record (outcome DENIED) naming what
    was asked for: the patient, the kind and ids of the records, the action attempted. It is on
    the local disk before the caller hears the refusal. ``reason`` is sent to the caller and
    recorded, so it must be the service's own words, never request values.
    """
    logger.warning(
        "permission denied",
        extra={"subject": principal.subject, "roles": sorted(principal.roles), "reason": reason},
    )
    if access_log is not None:
        await access_log.record_denial(
            context, principal, reason=reason, patient_id=patient_id, record_type=record_type,
            record_ids=record_ids, category=category, action=action, operation=operation,
        )  # fmt: skip
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, reason)
    raise AssertionError("unreachable: abort raises")
