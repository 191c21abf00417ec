"""GatewayApp: authenticate the caller, check their scopes and rate, exchange the token, call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.domain.identity import Caller, IdentityMapping, UnusableIdentityError
from gateway.policy import Operation, scope_refusal
from gateway.ports import (
    AccessTokenVerifier,
    Downstream,
    DownstreamAnswer,
    DownstreamCall,
    DownstreamStreams,
    InternalTokens,
    RateLimiter,
    Refusal,
    RefusalAudit,
    StreamEndedError,
    TokenRejectedError,
)


class NotAuthenticatedError(Exception):
    """No usable access token. ``error`` is the RFC 6750 code ("" when none was sent)."""

    def __init__(self, reason: str, error: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


class InsufficientScopeError(Exception):
    """The token's scopes do not cover the operation; ``scope`` is one that would."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"needs scope {scope}")
        self.scope = scope


class RateLimitedError(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"rate limited, retry after {retry_after_s}s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Route:
    """An operation and the RPC that performs it."""

    operation: Operation
    service: str


@dataclass
class GatewayApp:
    verifier: AccessTokenVerifier
    mapping: IdentityMapping
    rate_limiter: RateLimiter
    tokens: InternalTokens
    downstream: Downstream
    audit: RefusalAudit
    audiences: Mapping[str, str]
    # Server streams (the FHIR websocket channel's Subscribe); none: nothing streams.
    streams: DownstreamStreams | None = None

    async def authenticate(self, bearer: str | None, *, request_id: str = "") -> Caller:
        """The caller an external access token names; NotAuthenticatedError (audited) if none."""
        if not bearer:
            await self.audit.refused(Refusal("no access token", request_id=request_id))
            raise NotAuthenticatedError("no access token", error="")
        try:
            claims = await self.verifier.verify(bearer)
            return self.mapping.caller(claims)
        except (TokenRejectedError, UnusableIdentityError) as rejected:
            await self.audit.refused(Refusal(str(rejected), request_id=request_id))
            raise NotAuthenticatedError(str(rejected), error="invalid_token") from None

    async def admit(self, caller: Caller) -> None:
        """Count the request against its client's and its user's windows."""
        decisions = [await self.rate_limiter.hit(key) for key in caller.rate_keys]
        refused = [d for d in decisions if not d.allowed]
        if refused:
            raise RateLimitedError(max(d.retry_after_s for d in refused))

    async def perform(
        self, caller: Caller, route: Route, values: Mapping[str, object], *, request_id: str = ""
    ) -> DownstreamAnswer:
        """Check scopes, exchange the token for the service's audience, call the service."""
        token = await self._exchanged_token(caller, route, request_id)
        call = DownstreamCall(route.service, route.operation.name, values, request_id)
        return await self.downstream.call(call, token)

    async def stream(
        self, caller: Caller, route: Route, values: Mapping[str, object], *, request_id: str = ""
    ) -> AsyncIterator[Mapping[str, Any]]:
        """`perform` for a server-streaming RPC: its messages while it runs."""
        if self.streams is None:
            raise StreamEndedError("UNAVAILABLE")
        token = await self._exchanged_token(caller, route, request_id)
        call = DownstreamCall(route.service, route.operation.name, values, request_id)
        async for message in self.streams.stream(call, token):
            yield message

    async def _exchanged_token(self, caller: Caller, route: Route, request_id: str) -> str:
        """The service's token for ``caller``; InsufficientScopeError (audited) if the scopes
        do not allow the route."""
        needed = scope_refusal(caller, route.operation)
        if needed is not None:
            await self.audit.refused(
                Refusal("insufficient scope", caller.principal.subject,
                        caller.principal.client_id, route.operation.name, request_id)
            )  # fmt: skip
            raise InsufficientScopeError(needed)
        return self.tokens.mint(caller.principal, audience=self.audiences[route.service])
