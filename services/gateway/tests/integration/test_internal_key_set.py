"""Services read the gateway's signing keys from its JWKS, across a key rotation.

The gateway serves ``/.well-known/jwks.json`` over real HTTP; a service's verifier, built from
its settings (``JWT_JWKS_URL``, no ``JWT_PUBLIC_KEYS``), reads it. Rotating the gateway's key
(`rotate_key_file`, then a restart, as `python -m gateway.entrypoints.rotate_keys` does) needs
no restart of any service: the new key is trusted at its first token, the retired one once the
service's copy of the set is older than its maximum age.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from clinical_testing.keycloak import Keycloak
from clinical_testing.service_process import free_tcp_port
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from clinical_platform.grpc_auth import authenticate
from clinical_platform.jwks import KeySetUnavailableError, RemoteKeySet
from clinical_platform.principals import Principal, Role
from clinical_platform.runtime import JWKS_MAX_AGE_S, JWKS_MIN_REFRESH_S, token_verifier
from clinical_platform.tokens import AuthenticationError, TokenVerifier
from gateway.adapters.internal_tokens import InternalTokenIssuer, rotate_key_file
from gateway.bootstrap import gateway_http_app, serving_http
from gateway.settings import GatewaySettings
from orders.settings import OrdersSettings

pytestmark = pytest.mark.integration

CLINICIAN = Principal(subject="clinician-jwks", roles=frozenset({Role.CLINICIAN}))
AUDIENCE = "clinical-orders"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def serving_gateway(keycloak: Keycloak, keys: Path, port: int) -> AsyncIterator[str]:
    """The gateway's HTTP side on ``port``, signing with the keys in ``keys``; its JWKS URL."""
    settings = GatewaySettings(oidc_issuer=keycloak.issuer, signing_keys_file=keys,
                               access_trail=False)  # fmt: skip
    async with (
        gateway_http_app(settings) as (asgi, _),
        serving_http(asgi, "127.0.0.1", port),
    ):
        yield f"http://127.0.0.1:{port}/.well-known/jwks.json"


def gateway_token(keys: Path) -> str:
    """What the gateway mints for orders after a token exchange, from its current key file."""
    issuer = InternalTokenIssuer.from_pem_file(keys, issuer="clinical-platform", ttl_s=60)
    return issuer.mint(CLINICIAN, audience=AUDIENCE)


def service_verifier(url: str, clock: Callable[[], float]) -> TokenVerifier:
    """The orders service's verifier as its settings build it, on a clock the test moves."""
    verifier = token_verifier(OrdersSettings.model_validate({"JWT_JWKS_URL": url}))
    assert verifier.key_set is not None
    assert not verifier.public_keys
    key_set = RemoteKeySet(url, min_refresh_interval_s=JWKS_MIN_REFRESH_S,
                           max_age_s=JWKS_MAX_AGE_S, clock=clock)  # fmt: skip
    return replace(verifier, key_set=key_set)


async def test_a_rotated_key_is_trusted_at_once_and_a_retired_one_after_the_maximum_age(
    keycloak: Keycloak, tmp_path: Path
) -> None:
    keys, port, clock = tmp_path / "gateway-keys.pem", free_tcp_port(), Clock()
    rotate_key_file(keys)
    # The gateway's tokens serve one call each: a fresh one per check, signed by the same key.
    first_key = InternalTokenIssuer.from_pem_file(keys, issuer="clinical-platform", ttl_s=60)

    def first() -> str:
        return first_key.mint(CLINICIAN, audience=AUDIENCE)

    async with serving_gateway(keycloak, keys, port) as url:
        verifier = service_verifier(url, clock)
        assert (await verifier.verify_current(first())).subject == CLINICIAN.subject

    rotate_key_file(keys)  # a new key signs; the first stays published for its tokens
    clock.now += JWKS_MIN_REFRESH_S
    async with serving_gateway(keycloak, keys, port):
        second_key = InternalTokenIssuer.from_pem_file(keys, issuer="clinical-platform", ttl_s=60)
        assert (await verifier.verify_current(gateway_token(keys))).subject == CLINICIAN.subject
        assert (await verifier.verify_current(first())).subject == CLINICIAN.subject

    rotate_key_file(keys, keep=0)  # both earlier keys retired
    async with serving_gateway(keycloak, keys, port):
        # The service's copy of the set is not yet old: the keys it knows still verify ...
        assert (await verifier.verify_current(first())).subject == CLINICIAN.subject
        clock.now += JWKS_MAX_AGE_S
        # ... and once it is, the set is read again, without them.
        with pytest.raises(AuthenticationError, match="not signed by a trusted key"):
            await verifier.verify_current(first())
        with pytest.raises(AuthenticationError, match="not signed by a trusted key"):
            await verifier.verify_current(second_key.mint(CLINICIAN, audience=AUDIENCE))
        assert (await verifier.verify_current(gateway_token(keys))).subject == CLINICIAN.subject


async def test_tokens_naming_unknown_keys_read_the_set_at_most_once_per_interval(
    keycloak: Keycloak, tmp_path: Path
) -> None:
    keys, clock = tmp_path / "gateway-keys.pem", Clock()
    rotate_key_file(keys)
    async with serving_gateway(keycloak, keys, free_tcp_port()) as url:
        verifier = service_verifier(url, clock)
        await verifier.verify_current(gateway_token(keys))
        assert verifier.key_set is not None
        forged = InternalTokenIssuer([Ed25519PrivateKey.generate()], issuer="clinical-platform")

        for _ in range(50):
            with pytest.raises(AuthenticationError):
                await verifier.verify_current(forged.mint(CLINICIAN, audience=AUDIENCE))
        assert verifier.key_set.refreshes == 0
        clock.now += JWKS_MIN_REFRESH_S
        with pytest.raises(AuthenticationError):
            await verifier.verify_current(forged.mint(CLINICIAN, audience=AUDIENCE))
        assert verifier.key_set.refreshes == 1


async def test_a_service_that_cannot_read_the_set_answers_unavailable_not_unauthenticated(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "gateway-keys.pem"
    rotate_key_file(keys)
    url = f"http://127.0.0.1:{free_tcp_port()}/.well-known/jwks.json"  # nobody listens
    verifier = token_verifier(OrdersSettings.model_validate({"JWT_JWKS_URL": url}))
    token = gateway_token(keys)

    with pytest.raises(KeySetUnavailableError):
        await verifier.verify_current(token)
    context = AbortingContext(token)
    with pytest.raises(grpc.aio.AbortError):
        await authenticate(context, verifier)
    assert context.code == grpc.StatusCode.UNAVAILABLE


class AbortingContext:
    """The part of a servicer context `authenticate` uses: metadata in, the abort out."""

    def __init__(self, token: str) -> None:
        self._token = token
        self.code: grpc.StatusCode | None = None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self._token}"),)

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        raise grpc.aio.AbortError(details)
