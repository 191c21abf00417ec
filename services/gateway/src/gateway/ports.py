"""The gateway application's ports and the values they speak."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from clinical_platform.principals import Principal


class TokenRejectedError(Exception):
    """An external access token failed verification; the message is a reason code, no data."""


class IdentityProviderUnavailableError(Exception):
    """The identity provider's discovery document or key set could not be read."""


class AccessTokenVerifier(Protocol):
    async def verify(self, token: str) -> dict[str, Any]:
        """The verified claims, or TokenRejectedError."""
        ...


class InternalTokens(Protocol):
    def mint(self, principal: Principal, *, audience: str) -> str:
        """A short-lived internal token for ``principal``, for one downstream audience."""
        ...


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_s: int = 0


class RateLimiter(Protocol):
    async def hit(self, key: str) -> RateDecision:
        """Count one request against ``key``'s window."""
        ...


@dataclass(frozen=True)
class DownstreamCall:
    """One RPC of an internal service, its request as JSON-shaped values."""

    service: str
    method: str
    request: Mapping[str, Any]
    request_id: str = ""


@dataclass(frozen=True)
class DownstreamAnswer:
    """What the service answered: gRPC status name, message, field violations, body."""

    status: str
    message: str = ""
    body: Mapping[str, Any] = field(default_factory=dict)
    violations: tuple[Mapping[str, str], ...] = ()


class Downstream(Protocol):
    async def call(self, call: DownstreamCall, token: str) -> DownstreamAnswer:
        """Call the replica that owns the request (retrying once on an ownership miss)."""
        ...


class StreamEndedError(Exception):
    """A server stream ended with a gRPC status other than OK (its name in ``status``)."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class DownstreamStreams(Protocol):
    def stream(self, call: DownstreamCall, token: str) -> AsyncIterator[Mapping[str, Any]]:
        """A server-streaming RPC's messages (protobuf JSON, proto field names) while it
        runs; StreamEndedError when the service ends it with an error."""
        ...


@dataclass(frozen=True)
class Refusal:
    """Why the gateway refused a request, for the audit trail (reason codes, no data)."""

    reason: str
    subject: str = ""
    client_id: str = ""
    operation: str = ""
    request_id: str = ""


class RefusalAudit(Protocol):
    async def refused(self, refusal: Refusal) -> None:
        """Record a refusal; never raises."""
        ...
