"""The FHIR API's unit tests: a gateway over fake services, called over httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fhir.resources.R4B.operationoutcome import OperationOutcome

from gateway.adapters.internal_tokens import InternalTokenIssuer
from gateway.adapters.rate_limits import WindowRateLimiter
from gateway.adapters.refusal_log import RefusalLog
from gateway.application import GatewayApp
from gateway.domain.identity import IdentityMapping
from gateway.entrypoints.http import build_http_app
from gateway.ports import DownstreamAnswer, DownstreamCall, TokenRejectedError

AUDIENCES = {"patient": "clinical-patient", "orders": "clinical-orders",
             "results": "clinical-results", "audit": "clinical-audit"}  # fmt: skip


class FakeVerifier:
    """Accepts the bearer tokens it was given, each naming its claims."""

    def __init__(self, tokens: Mapping[str, Mapping[str, Any]]) -> None:
        self._tokens = tokens

    async def verify(self, token: str) -> dict[str, Any]:
        if token not in self._tokens:
            raise TokenRejectedError("signature invalid")
        return dict(self._tokens[token])


class FakeServices:
    """Answers each RPC from ``answers`` (the last one repeats); records the calls."""

    def __init__(self, answers: dict[str, list[DownstreamAnswer]]) -> None:
        self.calls: list[DownstreamCall] = []
        self.answers = answers

    async def call(self, call: DownstreamCall, token: str) -> DownstreamAnswer:
        self.calls.append(call)
        queue = self.answers[call.method]
        return queue.pop(0) if len(queue) > 1 else queue[0]


@asynccontextmanager
async def fhir_client(
    services: FakeServices, tokens: Mapping[str, Mapping[str, Any]], *, limit: str = "20/minute"
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client of the gateway's FHIR base, over ``services``."""
    issuer = InternalTokenIssuer([Ed25519PrivateKey.generate()], issuer="clinical-platform")
    app = GatewayApp(
        verifier=FakeVerifier(tokens), mapping=IdentityMapping(),
        rate_limiter=WindowRateLimiter(limit), tokens=issuer, downstream=services,
        audit=RefusalLog(), audiences=AUDIENCES,
    )  # fmt: skip
    asgi = build_http_app(app, jwks=issuer.jwks(), max_body_bytes=4096, cors_origins=[])
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway/fhir/r4") as http:
        yield http


def outcome(answer: httpx.Response, status: int) -> OperationOutcome:
    """The OperationOutcome of an answer that must have ``status``."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/fhir+json")
    return OperationOutcome.model_validate(answer.json())
