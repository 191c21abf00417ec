"""The real Keycloak for the gateway's integration tests, and gateways in this process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from clinical_testing.keycloak import Keycloak, running_keycloak

from clinical_platform.grpc_server import GrpcService, start_grpc_server
from clinical_platform.tokens import TokenVerifier
from gateway.adapters.internal_tokens import InternalTokenIssuer, rotate_key_file
from gateway.application import GatewayApp
from gateway.bootstrap import gateway_http_app
from gateway.settings import GatewaySettings

GatewayFactory = Callable[..., Awaitable[tuple[httpx.AsyncClient, GatewayApp]]]


@pytest.fixture(scope="session")
def keycloak() -> Iterator[Keycloak]:
    with running_keycloak() as server:
        yield server


@pytest.fixture(scope="session")
def clinician_otp_token(keycloak: Keycloak) -> str:
    """One OTP login per session: Keycloak accepts each TOTP code once."""
    return keycloak.user_token("clinician", "user/*.cruds", otp=True)


@pytest.fixture
async def make_gateway(keycloak: Keycloak, tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    """``client, app = await make_gateway(**settings)``: the composition root's ASGI app,
    trusting the real Keycloak, called over httpx."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**overrides: Any) -> tuple[httpx.AsyncClient, GatewayApp]:
            overrides.setdefault("signing_keys_file", tmp_path / f"keys-{id(overrides)}.pem")
            overrides.setdefault("access_trail", False)  # no Kafka needed unless asked for
            settings = GatewaySettings(oidc_issuer=keycloak.issuer, **overrides)
            asgi, app = await stack.enter_async_context(gateway_http_app(settings))
            transport = httpx.ASGITransport(app=asgi)
            client = httpx.AsyncClient(transport=transport, base_url="http://gateway")
            return await stack.enter_async_context(client), app

        yield make


def internal_verifiers(keys: Path) -> Callable[[str], TokenVerifier]:
    """New gateway signing keys at ``keys``; for an audience, the verifier a service under test
    trusts them with (the gateway's tokens only)."""
    rotate_key_file(keys)
    public_pem = InternalTokenIssuer.from_pem_file(keys, issuer="", ttl_s=60).public_pem()

    def verifier(audience: str) -> TokenVerifier:
        return TokenVerifier.from_pem(public_pem, issuer="clinical-platform", audience=audience)

    return verifier


async def serve(stack: contextlib.AsyncExitStack,
                services: Mapping[str, Sequence[GrpcService]]) -> dict[str, str]:  # fmt: skip
    """Each service's gRPC services on a free port until ``stack`` closes; the gateway's
    ``<name>_address`` settings for them."""
    addresses = {}
    for name, served in services.items():
        server = await start_grpc_server(host="127.0.0.1", port=0, services=served)
        stack.push_async_callback(server.stop, 0)
        addresses[f"{name}_address"] = f"127.0.0.1:{server.port}"
    return addresses
