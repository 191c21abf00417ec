"""The real Keycloak for the gateway's integration tests, and gateways in this process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from clinical_testing.keycloak import Keycloak, running_keycloak

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
