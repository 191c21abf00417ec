"""The HTTP front door with in-memory fakes behind it: RFC 6750 refusals, limits, headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.adapters.internal_tokens import InternalTokenIssuer
from gateway.adapters.rate_limits import WindowRateLimiter
from gateway.adapters.refusal_log import RefusalLog
from gateway.application import GatewayApp
from gateway.domain.identity import IdentityMapping
from gateway.entrypoints.http import build_http_app
from gateway.ports import DownstreamAnswer, DownstreamCall, TokenRejectedError

pytestmark = pytest.mark.unit

ORIGIN = "http://127.0.0.1:18057"
TOKENS = {
    "clinician": {
        "sub": "u-1",
        "azp": "app-a",
        "realm_access": {"roles": ["clinician"]},
        "scope": "user/ServiceRequest.cruds user/Observation.rs",
    },
    "other-app": {
        "sub": "u-2",
        "azp": "app-b",
        "realm_access": {"roles": ["clinician"]},
        "scope": "user/*.rs",
    },
}


class FakeVerifier:
    async def verify(self, token: str) -> dict[str, Any]:
        if token not in TOKENS:
            raise TokenRejectedError("signature invalid")
        return TOKENS[token]


class FakeDownstream:
    def __init__(self) -> None:
        self.calls: list[tuple[DownstreamCall, str]] = []
        self.answer = DownstreamAnswer(status="OK", body={"version": "1"})

    async def call(self, call: DownstreamCall, token: str) -> DownstreamAnswer:
        self.calls.append((call, token))
        return self.answer


@pytest.fixture
def downstream() -> FakeDownstream:
    return FakeDownstream()


@pytest.fixture
def audit() -> RefusalLog:
    return RefusalLog()


@pytest.fixture
async def client(downstream: FakeDownstream, audit: RefusalLog) -> AsyncIterator[httpx.AsyncClient]:
    tokens = InternalTokenIssuer([Ed25519PrivateKey.generate()], issuer="clinical-platform")
    app = GatewayApp(
        verifier=FakeVerifier(),
        mapping=IdentityMapping(),
        rate_limiter=WindowRateLimiter("100/minute"),
        tokens=tokens,
        downstream=downstream,
        audit=audit,
        audiences={
            "orders": "clinical-orders",
            "results": "clinical-results",
            "patient": "clinical-patient",
        },
    )
    asgi = build_http_app(app, jwks=tokens.jwks(), max_body_bytes=2048, cors_origins=[ORIGIN])
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http


def bearer(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer {name}"}


async def test_no_token_is_a_401_challenge_without_error_code(
    client: httpx.AsyncClient, audit: RefusalLog
) -> None:
    answer = await client.get("/api/v1/orders/o-1")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="clinical"'
    assert audit.recent[-1].reason == "no access token"


async def test_a_bad_token_is_a_401_invalid_token_and_audited(
    client: httpx.AsyncClient, audit: RefusalLog
) -> None:
    answer = await client.get("/api/v1/orders/o-1", headers=bearer("forged"))
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="clinical", error="invalid_token"'
    assert "forged" not in answer.text
    assert audit.recent[-1].reason == "signature invalid"


async def test_a_missing_scope_is_a_403_naming_the_scope(client: httpx.AsyncClient) -> None:
    answer = await client.post("/api/v1/results", headers=bearer("clinician"), json={})
    assert answer.status_code == 403
    assert answer.headers["www-authenticate"] == (
        'Bearer realm="clinical", error="insufficient_scope", scope="user/Observation.c"'
    )


async def test_the_call_carries_an_internal_token_for_the_service_and_the_path_values(
    client: httpx.AsyncClient, downstream: FakeDownstream
) -> None:
    answer = await client.post(
        "/api/v1/orders/o-1/sign",
        headers=bearer("clinician"),
        json={"request_id": "r-1", "expected_version": "1"},
    )
    assert answer.status_code == 200
    assert answer.json() == {"version": "1"}
    call, token = downstream.calls[-1]
    assert (call.service, call.method) == ("orders", "SignOrder")
    assert call.request == {"request_id": "r-1", "expected_version": "1", "order_id": "o-1"}
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["aud"], claims["sub"], claims["client_id"]) == (
        "clinical-orders",
        "u-1",
        "app-a",
    )


async def test_the_101st_request_in_a_window_is_429_and_other_clients_are_unaffected(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(100):
        assert (
            await client.get("/api/v1/orders/o-1", headers=bearer("clinician"))
        ).status_code == 200
    refused = await client.get("/api/v1/orders/o-1", headers=bearer("clinician"))
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert (await client.get("/api/v1/orders/o-1", headers=bearer("other-app"))).status_code == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"{not json", 400), (b"[1, 2]", 400), (b"x" * 4096, 413)],
)
async def test_bodies_that_are_not_a_json_object_or_too_large_are_refused(
    client: httpx.AsyncClient, body: bytes, status: int
) -> None:
    answer = await client.post("/api/v1/orders", headers=bearer("clinician"), content=body)
    assert answer.status_code == status


async def test_a_service_refusal_keeps_its_meaning(
    client: httpx.AsyncClient, downstream: FakeDownstream
) -> None:
    violations = ({"field": "order_id", "description": "not a UUID"},)
    downstream.answer = DownstreamAnswer("INVALID_ARGUMENT", "bad order_id", violations=violations)
    answer = await client.get("/api/v1/orders/o-1", headers=bearer("clinician"))
    assert answer.status_code == 400
    assert answer.json()["details"] == list(violations)
    downstream.answer = DownstreamAnswer("PERMISSION_DENIED", "signing needs MFA")
    assert (await client.get("/api/v1/orders/o-1", headers=bearer("clinician"))).status_code == 403


async def test_every_answer_has_security_headers_a_request_id_and_trace_context(
    client: httpx.AsyncClient, downstream: FakeDownstream
) -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    answer = await client.get(
        "/api/v1/orders/o-1",
        headers={**bearer("clinician"), "x-request-id": "req-42", "traceparent": parent},
    )
    assert answer.headers["x-request-id"] == "req-42"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["traceparent"].split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"
    call, _ = downstream.calls[-1]
    assert call.request_id == "req-42"
    fresh = await client.get(
        "/healthz", headers={"x-request-id": "bad id with spaces", "traceparent": "00-zz"}
    )
    assert fresh.headers["x-request-id"] != "bad id with spaces"
    assert fresh.headers["traceparent"].split("-")[1] != "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_cors_allows_registered_browser_origins_only(client: httpx.AsyncClient) -> None:
    preflight = {
        "access-control-request-method": "GET",
        "access-control-request-headers": "authorization",
    }
    ok = await client.options("/api/v1/orders", headers={"origin": ORIGIN, **preflight})
    assert ok.headers["access-control-allow-origin"] == ORIGIN
    refused = await client.options(
        "/api/v1/orders", headers={"origin": "http://evil.test", **preflight}
    )
    assert "access-control-allow-origin" not in refused.headers


async def test_the_jwks_publishes_the_internal_signing_keys(client: httpx.AsyncClient) -> None:
    keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    assert [(k["kty"], k["crv"], k["alg"]) for k in keys] == [("OKP", "Ed25519", "EdDSA")]
