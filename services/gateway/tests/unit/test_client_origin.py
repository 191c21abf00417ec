"""The end user's address and user agent: read at the edge (X-Forwarded-For only from trusted
proxies) and forwarded to the services in gRPC metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from clinical_platform.grpc_server import GrpcService, start_grpc_server
from gateway.adapters.downstream import GrpcDownstream
from gateway.adapters.internal_tokens import InternalTokenIssuer
from gateway.adapters.rate_limits import WindowRateLimiter
from gateway.adapters.refusal_log import RefusalLog
from gateway.application import GatewayApp
from gateway.domain.identity import IdentityMapping
from gateway.domain.origin import ClientOrigin, client_origin, current_origin, trusted_networks
from gateway.entrypoints.http import build_http_app
from gateway.ports import DownstreamAnswer, DownstreamCall
from gateway.settings import GatewaySettings

from .conftest import AUDIENCES, FakeVerifier

pytestmark = pytest.mark.unit

PROXIES = trusted_networks(["10.0.0.7", "10.1.0.0/16"])
CLAIMS = {
    "sub": "lab-1",
    "azp": "lab-app",
    "scope": "user/*.rs",
    "realm_access": {"roles": ["lab"]},
}


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("198.51.100.4", ["203.0.113.9"], "198.51.100.4"),  # not a proxy: its header is nothing
        ("10.0.0.7", ["203.0.113.9"], "203.0.113.9"),
        ("10.0.0.7", ["192.0.2.1, 203.0.113.9, 10.1.4.4"], "203.0.113.9"),  # hops stripped
        ("10.0.0.7", ["192.0.2.1", "203.0.113.9"], "203.0.113.9"),  # two headers, in order
        ("10.0.0.7", ["10.1.2.3"], "10.1.2.3"),  # only proxies: the farthest one
        ("10.0.0.7", ["203.0.113.9, not-an-address"], "10.0.0.7"),
        ("10.0.0.7", [], "10.0.0.7"),
        ("2001:db8::1", ["203.0.113.9"], "2001:db8::1"),
        ("", [], ""),
    ],
)
def test_the_client_is_the_peer_unless_a_trusted_proxy_names_it(
    peer: str, forwarded_for: list[str], client: str
) -> None:
    assert client_origin(peer, forwarded_for, "", PROXIES).source_ip == client


def test_with_no_trusted_proxy_a_forwarded_header_counts_for_nothing() -> None:
    assert client_origin("127.0.0.1", ["203.0.113.9"], "", ()).source_ip == "127.0.0.1"


def test_a_long_user_agent_is_cut_to_what_an_event_may_hold() -> None:
    assert len(client_origin("127.0.0.1", [], "x" * 2000, ()).user_agent) == 512


def test_a_trusted_proxy_that_is_no_address_stops_start_up() -> None:
    assert GatewaySettings(trusted_proxies=("10.0.0.0/8",)).trusted_proxies == ("10.0.0.0/8",)
    with pytest.raises(ValidationError, match="trusted_proxies"):
        GatewaySettings(trusted_proxies=("proxy.internal",))


class OriginRecorder:
    """A downstream that answers OK and keeps the origin current at each call."""

    def __init__(self) -> None:
        self.origins: list[ClientOrigin | None] = []

    async def call(self, call: DownstreamCall, token: str) -> DownstreamAnswer:
        self.origins.append(current_origin.get())
        return DownstreamAnswer(status="OK", body={})


@pytest.mark.parametrize(("proxies", "seen"), [((), "127.0.0.1"), (("127.0.0.1",), "203.0.113.9")])
async def test_the_edge_makes_the_requests_origin_current_for_its_calls(
    proxies: tuple[str, ...], seen: str
) -> None:
    recorder = OriginRecorder()
    issuer = InternalTokenIssuer([Ed25519PrivateKey.generate()], issuer="clinical-platform")
    app = GatewayApp(
        verifier=FakeVerifier({"lab": CLAIMS}), mapping=IdentityMapping(),
        rate_limiter=WindowRateLimiter("20/minute"), tokens=issuer, downstream=recorder,
        audit=RefusalLog(), audiences=AUDIENCES,
    )  # fmt: skip
    asgi = build_http_app(app, jwks=issuer.jwks(), max_body_bytes=4096, cors_origins=[],
                          trusted_proxies=trusted_networks(proxies))  # fmt: skip
    transport = httpx.ASGITransport(app=asgi, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        answer = await http.get(
            "/api/v1/orders/5f0c6a52-8d3e-4a4e-9d59-0b7a2c8f1e11",
            headers={"authorization": "Bearer lab", "user-agent": "Mozilla/5.0 (ward)",
                     "x-forwarded-for": "203.0.113.9"},
        )  # fmt: skip

    assert answer.status_code == 200, answer.text
    assert recorder.origins == [ClientOrigin(seen, "Mozilla/5.0 (ward)")]
    assert current_origin.get() is None  # nothing left behind after the request


@pytest.fixture
async def metadata_server() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A gRPC server answering the audit service's Verify with nothing; the metadata it saw."""
    seen: list[dict[str, str]] = []

    async def verify(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        seen.append({k: str(v) for k, v in context.invocation_metadata() or ()})
        return b""

    def register(server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(verify)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "clinical.audit.v1.AuditService", {"Verify": handler}),))  # fmt: skip

    service = GrpcService("clinical.audit.v1.AuditService", register)
    server = await start_grpc_server(host="127.0.0.1", port=0, services=[service])
    try:
        yield f"127.0.0.1:{server.port}", seen
    finally:
        await server.stop(grace_seconds=0)


async def test_calls_carry_the_end_users_address_and_user_agent(
    metadata_server: tuple[str, list[dict[str, Any]]],
) -> None:
    address, seen = metadata_server
    downstream = GrpcDownstream({"audit": address})
    call = DownstreamCall("audit", "Verify", {"topic": "t"})
    try:
        await downstream.call(call, "token")  # outside a request: no origin to forward
        reset = current_origin.set(ClientOrigin("203.0.113.9", "Mozilla/5.0 (ward) ✓"))
        try:
            await downstream.call(call, "token")
        finally:
            current_origin.reset(reset)
    finally:
        await downstream.close()

    assert "x-source-ip" not in seen[0]
    assert "x-user-agent" not in seen[0]
    assert (seen[1]["x-source-ip"], seen[1]["x-user-agent"]) == (
        "203.0.113.9",
        "Mozilla/5.0 (ward) ",
    )
